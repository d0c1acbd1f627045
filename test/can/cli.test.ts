/** `wallbox can decode` and `wallbox can record` (the capture half on the in-memory bus; the real interface is absent here). */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli.ts';
import { recordCapture } from '../../src/cli/can.ts';
import { parseCandump } from '../../hal/inverter/can/candump.ts';
import { InMemoryCanBus } from '../../hal/inverter/can/memory-bus.ts';
import { VirtualClock } from '../../hal/sim/virtual-clock.ts';

function io() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (s: string) => out.push(s), err: (s: string) => err.push(s), env: { WALLBOX_CONFIG: '/nonexistent/wallbox.json' } as NodeJS.ProcessEnv }, out, err };
}

describe('wallbox can decode', () => {
  const dir = mkdtempSync(join(tmpdir(), 'can-cli-'));
  const file = join(dir, 'capture.log');
  writeFileSync(
    file,
    [
      '(1700000000.100000) can0 356#7A13F2FE6B01',
      '(1700000000.200000) can0 35A#AAAAAA02AAAA6A06',
      '(1700000000.300000) can0 305#000238FF00000000',
      '(1700000000.400000) can0 356#7A13',
      'not a frame',
    ].join('\n'),
  );

  it('prints one JSON line per frame with names, senders and units, and reports what it cannot read', async () => {
    const c = io();
    const code = await main(['can', 'decode', file, '--profile', 'sma'], c.io);
    assert.equal(code, 1, 'a line that is not candump makes the exit 1');
    const lines = c.out.map((l) => JSON.parse(l));
    assert.equal(lines.length, 5);
    assert.deepEqual(lines[0], {
      t: 1700000000.1,
      iface: 'can0',
      id: '356',
      raw: '7A 13 F2 FE 6B 01',
      name: 'measurements',
      from: 'bms',
      fields: [
        { name: 'voltageV', value: 49.86, unit: 'V' },
        { name: 'currentA', value: -27, unit: 'A' },
        { name: 'temperatureC', value: 36.3, unit: '°C' },
      ],
    });
    const alarms = Object.fromEntries(lines[1].fields.map((f: { name: string; value: string }) => [f.name, f.value]));
    assert.equal(alarms['warning.bmsInternal'], 'active');
    assert.equal(alarms['alarm.general'], 'ok');
    // a Sunny Island keepalive under the SMA profile: 51.2 V, -20.0 A
    assert.deepEqual(lines[2].fields, [{ name: 'dcVoltageV', value: 51.2, unit: 'V' }, { name: 'dcCurrentA', value: -20, unit: 'A' }]);
    assert.equal(lines[3].error, 'wrong_dlc');
    assert.deepEqual([lines[4].line, lines[4].error], [5, 'not_candump']);
    assert.match(c.err.at(-1)!, /4 frames \(1 not decodable with sma\), 1 lines not candump/);
  });

  it('without --profile and without a usable config: the default profile, and it says so', async () => {
    const c = io();
    await main(['can', 'decode', file], c.io);
    assert.match(c.err.join('\n'), /cannot be used.*decoding with pylontech-1\.2/s);
    // pylontech-1.2: a Pylon inverter's 0x305 carries nothing
    assert.deepEqual(JSON.parse(c.out[2]).fields, []);
  });

  it('bad arguments: an unknown profile, no file, a missing file', async () => {
    let c = io();
    assert.equal(await main(['can', 'decode', file, '--profile', 'byd'], c.io), 2);
    assert.match(c.err.join(), /--profile: "byd" is not a known profile \(one of pylontech-1\.2, pylontech-1\.3, sma\)/);
    c = io();
    assert.equal(await main(['can', 'decode'], c.io), 2);
    assert.match(c.err.join(), /takes one FILE/);
    c = io();
    assert.equal(await main(['can', 'decode', join(dir, 'nope.log')], c.io), 1);
    assert.match(c.err.join(), /cannot read .*nope\.log/);
    c = io();
    assert.equal(await main(['can', 'frobnicate'], c.io), 2);
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('wallbox can record', () => {
  it('on this machine (no can0): exit 1 with the interface named and how to create it', async () => {
    const c = io();
    assert.equal(await main(['can', 'record', '--interface', 'can0', '--duration', '0.1'], c.io), 1);
    assert.match(c.err.join(), /CAN interface can0: .*ip link set can0 up type can bitrate 500000/);
  });

  it('writes every frame it hears as a candump line that reads back the same', async () => {
    const clock = new VirtualClock(Date.UTC(2026, 0, 15, 12));
    const bus = new InMemoryCanBus(clock, 'can0');
    const listener = bus.channel('recorder');
    await listener.open();
    const talker = bus.channel('inverter');
    await talker.open();
    const lines: string[] = [];
    let stop!: () => void;
    const done = recordCapture(listener, (l) => lines.push(l), () => clock.wallMs(), new Promise<void>((r) => (stop = r)));
    talker.send({ id: 0x305, data: new Uint8Array(8) });
    clock.advance(1234);
    talker.send({ id: 0x356, data: Uint8Array.from([0x7a, 0x13, 0xf2, 0xfe, 0x6b, 0x01]) });
    stop();
    const n = await done;
    assert.equal(n.frames, 2);
    assert.deepEqual(lines, ['(1768478400.000000) can0 305#0000000000000000', '(1768478401.234000) can0 356#7A13F2FE6B01']);
    const back = parseCandump(lines.join('\n'));
    assert.deepEqual(back.frames.map((f) => [f.timeUs, f.frame.id]), [[1768478400000000, 0x305], [1768478401234000, 0x356]]);
  });
});
