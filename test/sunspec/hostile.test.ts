/**
 * The SunSpec driver against devices that misbehave in ways other than silence (issue 14, points 4 and 7):
 * a device slower than the tick, and one that closes the TCP connection after every answer. Both are
 * served over real Modbus TCP on 127.0.0.1 by test/sunspec/hostile-server.ts; request delays are real
 * time (that is what the device does), the driver's own clock is virtual.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { decodeRaw } from '../../hal/inverter/sunspec/codec.ts';
import { SunspecInverter } from '../../hal/inverter/sunspec/driver.ts';
import { VirtualClock } from '../../hal/sim/virtual-clock.ts';
import { startHostileServer, type HostileServer } from './hostile-server.ts';

const T0 = Date.UTC(2026, 0, 15, 12);

function driverFor(h: HostileServer, clock: VirtualClock, timeoutMs = 500): SunspecInverter {
  return new SunspecInverter({
    link: { kind: 'tcp', host: '127.0.0.1', port: h.port, unitId: 1 },
    timeoutMs,
    retries: 1,
    reversionS: 10,
    efficiency: 0.95,
    backoffMinMs: 0,
    backoffMaxMs: 0,
    clock,
  });
}

/** When the device took a write of WSet = -powerW (704 WSet is negative for charging; WSet_SF -1 on this device), at or after `sinceMs`. */
function wsetWrittenAt(h: HostileServer, powerW: number, sinceMs: number): number | undefined {
  const at = h.device.addressOf(704, 'WSet');
  for (const w of h.writes) {
    if (w.atMs < sinceMs || at < w.address || at + 2 > w.address + w.values.length) continue;
    const raw = decodeRaw('int32', w.values.slice(at - w.address, at - w.address + 2)) as number;
    if (raw * 0.1 === (powerW === 0 ? 0 : -powerW)) return w.atMs;
  }
  return undefined;
}

/** WSet values the device took at or after `sinceMs`, in W as the port signs them. */
function wsetWrites(h: HostileServer, sinceMs: number): number[] {
  const at = h.device.addressOf(704, 'WSet');
  return h.writes
    .filter((w) => w.atMs >= sinceMs && at >= w.address && at + 2 <= w.address + w.values.length)
    .map((w) => -((decodeRaw('int32', w.values.slice(at - w.address, at - w.address + 2)) as number) / 10) || 0);
}

async function waitFor<T>(fn: () => T | undefined, limitMs: number): Promise<T | undefined> {
  const end = performance.now() + limitMs;
  for (;;) {
    const v = fn();
    if (v !== undefined || performance.now() > end) return v;
    await sleep(5);
  }
}

/**
 * The runtime's tick as it was when the bug was found: every tick asks for a refresh and waits for it at
 * most one tick; unchanged setpoints are not re-sent, so most ticks only poll.
 */
async function tickLoop(driver: SunspecInverter, clock: VirtualClock, ticks: number, tickMs: number, onTick?: (i: number) => void): Promise<void> {
  for (let i = 0; i < ticks; i++) {
    const start = performance.now();
    clock.advance(tickMs);
    await Promise.race([driver.refresh(), sleep(tickMs)]);
    onTick?.(i);
    const left = tickMs - (performance.now() - start);
    if (left > 0) await sleep(left);
  }
}

test('SunSpec command queue is unbounded and never coalesced: with polls slower than the tick a new setpoint still reaches the device within one request and its write', async () => {
  // 2 reads per poll at 80 ms each: a poll takes 160 ms against a 100 ms tick (the 1.3 s poll at a 1 s tick, scaled)
  const delayMs = 80;
  const tickMs = 100;
  const clock = new VirtualClock(T0);
  const h = await startHostileServer({ clock });
  const driver = driverFor(h, clock);
  try {
    await driver.open();
    h.opts.delayMs = delayMs;
    const lags: number[] = [];
    const setpoints = new Map([[5, 2000], [15, -3000], [25, 4000], [35, -5000]]);
    const issued: { w: number; atMs: number }[] = [];
    await tickLoop(driver, clock, 40, tickMs, (i) => {
      const w = setpoints.get(i);
      if (w === undefined) return;
      issued.push({ w, atMs: performance.now() });
      void driver.setPowerW(w);
    });
    for (const { w, atMs } of issued) {
      const at = await waitFor(() => wsetWrittenAt(h, w, atMs), 5000);
      assert.ok(at !== undefined, `setpoint ${w} W never reached the device`);
      lags.push(at - atMs);
    }
    // the request on the wire, then the write itself; scheduling slack on a shared machine on top
    const boundMs = 2 * delayMs + 150;
    assert.ok(Math.max(...lags) <= boundMs, `dispatch -> WSet lags ${lags.map((l) => l.toFixed(0)).join(', ')} ms; bound ${boundMs} ms (growing = a backlog of polls)`);
    assert.equal(driver.state().fault, undefined, driver.state().fault?.message);
  } finally {
    await driver.close();
    await h.close();
  }
});

test('commands coalesce: the latest setpoint wins over queued ones, grid-forming off issued first is written first', async () => {
  const clock = new VirtualClock(T0);
  const h = await startHostileServer({ clock });
  const driver = driverFor(h, clock);
  try {
    await driver.open();
    await driver.setGridForming(true);
    h.opts.delayMs = 40;
    const t0 = performance.now();
    const poll = driver.refresh(); // a poll on the wire
    const again = driver.refresh();
    assert.equal(again, poll, 'a refresh while one runs is the same refresh');
    const calls = [driver.setPowerW(1000), driver.setGridForming(false), driver.setPowerW(2000), driver.setPowerW(3000)];
    assert.ok(driver.pendingCommands.length <= 2, `pending: ${driver.pendingCommands.join(', ')}`);
    await Promise.all([...calls, poll]);
    const written = wsetWrites(h, t0);
    assert.equal(written.at(-1), 3000, `WSet writes ${written.join(', ')}`);
    assert.ok(!written.includes(2000), `a superseded setpoint was written: ${written.join(', ')}`);
    assert.ok(written.length <= 2, `WSet writes ${written.join(', ')}`);
    const cat = h.device.addressOf(702, 'IntIslandCat');
    const gfAt = h.writes.findIndex((w) => w.atMs >= t0 && w.address === cat);
    const lastW = h.writes.findIndex((w) => w.atMs >= t0 && wsetWritten(h, w, 3000));
    assert.ok(gfAt >= 0 && lastW > gfAt, 'setGridForming(false) issued before setPowerW(3000) is written before it');
    assert.equal(h.device.registers(cat, 1)[0], 1 << 0, 'grid-forming off');
  } finally {
    await driver.close();
    await h.close();
  }
});

function wsetWritten(h: HostileServer, w: { address: number; values: number[] }, powerW: number): boolean {
  const at = h.device.addressOf(704, 'WSet');
  if (at < w.address || at + 2 > w.address + w.values.length) return false;
  return (decodeRaw('int32', w.values.slice(at - w.address, at - w.address + 2)) as number) === -powerW * 10;
}

test('a device that closes the connection after every answer: open() within its bound, ticks keep coming, a setpoint reaches the device, any fault says why', async () => {
  const clock = new VirtualClock(T0);
  const h = await startHostileServer({ clock, opts: { closeAfterAnswer: true } });
  const driver = driverFor(h, clock, 300);
  const unhandled: unknown[] = [];
  const onUnhandled = (e: unknown) => unhandled.push(e);
  process.on('unhandledRejection', onUnhandled);
  try {
    const openStart = performance.now();
    await driver.open();
    const openMs = performance.now() - openStart;
    // default open bound: 4 x 2 x 300 ms x 2 tries = 4.8 s
    assert.ok(openMs < 4800, `open took ${openMs.toFixed(0)} ms`);

    const tickMs = 200;
    let ticks = 0;
    const refreshMs: number[] = [];
    const t0 = performance.now();
    await tickLoop(driver, clock, 15, tickMs, (i) => {
      ticks++;
      if (i === 5) void driver.setPowerW(-5000);
    });
    for (let i = 0; i < 5; i++) {
      const a = performance.now();
      await driver.refresh();
      refreshMs.push(performance.now() - a);
    }
    assert.equal(ticks, 15);
    const at = await waitFor(() => wsetWrittenAt(h, -5000, t0), 3000);
    assert.ok(at !== undefined, `the setpoint never reached the device (fault: ${driver.state().fault?.message ?? 'none'})`);
    // one refresh = one identity read after the reconnect + the planned reads, not a walk of the chain
    assert.ok(Math.max(...refreshMs) < 600, `refresh took ${refreshMs.map((x) => x.toFixed(0)).join(', ')} ms`);
    const f = driver.state().fault;
    if (f) assert.match(f.message, /tcp:\/\/127\.0\.0\.1:\d+ unit 1: .+/);
    assert.equal(f, undefined, f?.message);
    assert.ok(driver.state().reading!.atMs === clock.nowMs(), 'the reading is fresh');
    assert.equal(driver.state().reading!.setpointW, -5000);
    assert.deepEqual(unhandled, []);
  } finally {
    process.off('unhandledRejection', onUnhandled);
    await driver.close();
    await h.close();
  }
});

test('a device that stops answering mid-tick: every call resolves within its bound and the fault names what was pending', async () => {
  const clock = new VirtualClock(T0);
  const h = await startHostileServer({ clock });
  const driver = driverFor(h, clock, 200);
  try {
    await driver.open();
    h.opts.delayMs = 60_000; // answers nothing in time
    const bound = 2 * 200 * 2;
    for (const call of [() => driver.refresh(), () => driver.setPowerW(-4000), () => driver.setGridForming(true)]) {
      const a = performance.now();
      await call();
      assert.ok(performance.now() - a <= bound + 150, `a call took ${(performance.now() - a).toFixed(0)} ms; bound ${bound} ms`);
    }
    const f = driver.state().fault;
    assert.ok(f, 'fault');
    assert.match(f.code, /^(timeout|disconnected)$/);
    assert.match(f.message, /tcp:\/\/127\.0\.0\.1:\d+ unit 1: /);
  } finally {
    await driver.close();
    await h.close();
  }
});
