/**
 * The real SocketCAN channel. This machine has no SocketCAN (no AF_CAN, no can0): opening fails, and the
 * error must name the interface and how to create it. The diagnosis is also checked against made-up kernel
 * trees for the other causes (interface down, not a CAN interface, no SocketCAN module).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { diagnoseCanOpen, SocketcanChannel } from '../../hal/inverter/can/socketcan-channel.ts';
import { CanBmsInverter } from '../../hal/inverter/can/driver.ts';
import { PROFILES } from '../../hal/inverter/can/profiles.ts';
import { systemClock } from '../../hal/system-clock.ts';
import { PACK } from './harness.ts';

describe('SocketCAN channel', { skip: existsSync('/sys/class/net/can0') ? 'this machine has a can0' : false }, () => {
  it('opening a missing can0 rejects naming can0 and how to bring it up', async () => {
    const ch = new SocketcanChannel('can0', { clock: systemClock });
    await assert.rejects(ch.open(), (e: Error) => {
      assert.match(e.message, /CAN interface can0/);
      assert.match(e.message, /does not exist/);
      assert.ok(e.message.includes('ip link set can0 up type can bitrate 500000'), e.message);
      assert.ok(e.message.includes('systemd/80-can0.network'), e.message);
      return true;
    });
    // nothing half-open: send fails cleanly, close is harmless
    const errors: string[] = [];
    ch.onError((err) => errors.push(err.code));
    assert.equal(ch.send({ id: 0x351, data: new Uint8Array(8) }), false);
    assert.deepEqual(errors, ['send_failed']);
    await ch.close();
  });

  it('through the driver: open() rejects with the driver and the interface named, and close() still resolves', async () => {
    const d = new CanBmsInverter({
      channel: () => new SocketcanChannel('can0', { clock: systemClock }),
      profile: PROFILES['pylontech-1.3'],
      pack: PACK,
      ratedW: 5000,
      efficiency: 0.95,
      keepaliveTimeoutMs: 10_000,
      socMaxAgeMs: 30_000,
      car: () => ({}),
      clock: systemClock,
    });
    await assert.rejects(d.open(), /CAN BMS \(pylontech-1\.3\): CAN interface can0: .*ip link set can0 up type can bitrate 500000/);
    await d.refresh();
    await d.setPowerW(1000);
    await d.close();
  });
});

describe('SocketCAN open diagnosis', () => {
  const tree = (files: Record<string, string>): string => {
    const root = mkdtempSync(join(tmpdir(), 'can-sys-'));
    for (const [p, text] of Object.entries(files)) {
      mkdirSync(join(root, p, '..'), { recursive: true });
      writeFileSync(join(root, p), text);
    }
    return root;
  };
  const cases: [string, Record<string, string>, RegExp][] = [
    ['missing interface', { 'proc/net/can/version': '' }, /can0: the interface does not exist: .*dtoverlay=mcp2515-can0.*ip link set can0 up type can bitrate 500000/],
    ['missing interface and no SocketCAN', {}, /does not exist.*no SocketCAN loaded either.*modprobe can_raw/],
    ['not a CAN interface', { 'proc/net/can/version': '', 'sys/class/net/can0/type': '1\n', 'sys/class/net/can0/operstate': 'up\n' }, /can0 exists but is not a CAN interface \(type 1\)/],
    ['no SocketCAN module', { 'sys/class/net/can0/type': '280\n', 'sys/class/net/can0/operstate': 'up\n' }, /no SocketCAN raw sockets.*modprobe can_raw/],
    ['interface down', { 'proc/net/can/version': '', 'sys/class/net/can0/type': '280\n', 'sys/class/net/can0/operstate': 'down\n' }, /the interface is down: bring it up with "ip link set can0 up type can bitrate 500000"/],
  ];
  for (const [what, files, re] of cases) {
    it(what, () => {
      const root = tree(files);
      try {
        const msg = diagnoseCanOpen('can0', 'Error while creating channel', root);
        assert.match(msg, re);
        assert.match(msg, /^CAN interface can0: /);
        assert.match(msg, /\[socketcan: Error while creating channel\]$/);
      } finally {
        rmSync(root, { recursive: true, force: true });
      }
    });
  }
});

describe('SocketCAN channel over a stand-in for node-can\'s RawChannel', () => {
  /** What node-can's RawChannel does, as far as the channel uses it: listeners, start/stop, send's return value. */
  class FakeRaw {
    listeners: Record<string, ((...a: unknown[]) => void)[]> = {};
    started = false;
    stopped = false;
    sent: { id: number; ext: boolean; rtr: boolean; data: Buffer }[] = [];
    sendResult: number | Error = 16;
    constructor(readonly iface: string, readonly options: unknown) {}
    addListener(ev: string, cb: (...a: unknown[]) => void) {
      (this.listeners[ev] ??= []).push(cb);
    }
    start() {
      this.started = true;
    }
    stop() {
      this.stopped = true;
    }
    send(m: { id: number; ext: boolean; rtr: boolean; data: Buffer }) {
      if (this.sendResult instanceof Error) throw this.sendResult;
      this.sent.push(m);
      return this.sendResult;
    }
    emit(ev: string, ...a: unknown[]) {
      for (const l of this.listeners[ev] ?? []) l(...a);
    }
  }

  it('frames in and out, error frames counted, a refused send and a stopped interface reported', async () => {
    let raw!: FakeRaw;
    const clock = { ...systemClock, nowMs: () => 42_000 };
    const ch = new SocketcanChannel('can0', { clock, createRawChannel: (iface, options) => (raw = new FakeRaw(iface, options)) as never });
    await ch.open();
    assert.deepEqual([raw.iface, raw.options, raw.started], ['can0', { timestamps: true, non_block_send: true }, true]);
    const got: unknown[] = [];
    const errors: string[] = [];
    ch.onFrame((f) => got.push({ id: f.id, data: [...f.data], atMs: f.atMs, extended: f.extended }));
    ch.onError((e) => errors.push(`${e.code}: ${e.message}`));
    raw.emit('onMessage', { id: 0x305, ext: false, rtr: false, data: Buffer.from([0, 2, 0x38, 0xff, 0, 0, 0, 0]) });
    raw.emit('onMessage', { id: 0x20000004, ext: false, err: true, data: Buffer.alloc(8) });
    assert.deepEqual(got, [{ id: 0x305, data: [0, 2, 0x38, 0xff, 0, 0, 0, 0], atMs: 42_000, extended: false }]);
    assert.equal(ch.errorFrames, 1);
    assert.equal(ch.send({ id: 0x351, data: Uint8Array.from([1, 2]) }), true);
    assert.deepEqual(raw.sent.map((m) => [m.id, m.ext, [...m.data]]), [[0x351, false, [1, 2]]]);
    raw.sendResult = -1;
    assert.equal(ch.send({ id: 0x351, data: new Uint8Array(8) }), false);
    raw.sendResult = new Error('Invalid channel!');
    assert.equal(ch.send({ id: 0x351, data: new Uint8Array(8) }), false);
    assert.equal(ch.send({ id: 0x800, data: new Uint8Array(1) }), false, 'an 11-bit id beyond 0x7FF never reaches the socket');
    raw.emit('onStopped');
    assert.equal(ch.send({ id: 0x351, data: new Uint8Array(8) }), false);
    assert.deepEqual(errors.map((e) => e.split(':')[0]), ['send_failed', 'send_failed', 'send_failed', 'stopped', 'send_failed']);
    assert.match(errors[0], /refused by the kernel/);
    assert.match(errors[3], /can0 stopped/);
    await ch.close();
  });
});
