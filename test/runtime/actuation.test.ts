/**
 * Actuation that no device can hold up (issue 14, points 3, 6 and 7): the contactor opens without waiting
 * on the inverter, an event is decided on the readings in hand, a port call that does not answer is a
 * fault of that port and not a stall, and stop() is bounded whatever the devices do.
 * Everything runs on the virtual clock; the tests move it themselves and never wait on `settled()`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtualClock } from '../../hal/sim/virtual-clock.ts';
import { SimSite } from '../../hal/sim/site.ts';
import { loadConfig } from '../../src/config/load.ts';
import { Runtime } from '../../src/runtime.ts';
import type { Plan, Snapshot } from '../../src/control/types.ts';
import { ControlledInverter, drive, flush, stepUntil } from './stand-ins.ts';

const T = Date.parse('2026-11-23T18:00:00Z');
const DEBOUNCE_MS = 20;

function rig(o: { socPct?: number; charging?: boolean } = {}) {
  const clock = new VirtualClock(T);
  const site = new SimSite({
    clock, vehicle: { capacityWh: 50000, socPct: o.socPct ?? 85, maxChargeW: 11000, maxDischargeW: 11000 },
    inverter: { ratedW: 11000, efficiency: 0.95 }, houseLoadW: 500, sheddableLoadsW: [300], gridSenseDebounceMs: DEBOUNCE_MS,
  });
  const config = loadConfig(null, {
    timezone: 'UTC', uplink: { url: null },
    vehicle: o.charging ? { departureTime: null, chargeStrategy: 'immediate', targetSocPct: 80 } : { departureTime: null },
  });
  const ports = site.ports();
  const inverter = new ControlledInverter(site.inverter, clock);
  const ticks: { plan: Plan; snapshot: Snapshot; atMs: number }[] = [];
  const rt = new Runtime({ ports: { ...ports, inverter }, config, onTick: (plan, snapshot) => ticks.push({ plan, snapshot, atMs: clock.nowMs() }) });
  // the contactor output as written, with the clock time of each write
  const contactorWrites: { atMs: number; closed: boolean }[] = [];
  site.lines.contactor.watch((level) => contactorWrites.push({ atMs: clock.nowMs(), closed: level === 1 }));
  site.startPhysics(1000);
  return { clock, site, config, inverter, rt, ticks, contactorWrites };
}

/** Stop the runtime with the clock moving, whatever it is waiting for; the inverter answers again first. */
async function shutdown(r: ReturnType<typeof rig>): Promise<void> {
  r.inverter.release();
  await drive(r.clock, r.rt.stop(), 60_000).catch(() => undefined);
  r.site.stopPhysics();
}

test('opening the contactor waits behind the inverter: a grid-sense edge opens it at once while the inverter hangs', async () => {
  const r = rig({ socPct: 40, charging: true });
  try {
    await drive(r.clock, r.rt.start());
    assert.ok(await stepUntil(r.clock, () => r.site.inverter.setpointW > 0, 10_000, 100), 'the car charges before the outage');
    // the inverter stops answering anything, then the grid goes
    r.inverter.hang = new Set(['refresh', 'setPowerW', 'setGridForming']);
    const lostAtMs = r.clock.nowMs();
    r.site.setGrid(false);
    const opened = await stepUntil(r.clock, () => r.contactorWrites.some((w) => !w.closed), 3000, 1);
    assert.ok(opened, `the contactor was never commanded open (writes: ${JSON.stringify(r.contactorWrites)})`);
    const openAtMs = r.contactorWrites.find((w) => !w.closed)!.atMs;
    assert.ok(openAtMs - lostAtMs <= DEBOUNCE_MS + 5, `edge → contactor open took ${openAtMs - lostAtMs} ms of clock time (debounce ${DEBOUNCE_MS} ms)`);
    // the zero setpoint went out at the same time, and is still unanswered: the open did not wait for it
    const zero = r.inverter.calls.find((c) => c.method === 'setPowerW' && c.value === 0 && c.startedMs >= lostAtMs);
    assert.ok(zero, 'a zero setpoint was sent with the open');
    assert.ok(zero.startedMs <= openAtMs, 'the zero setpoint was issued no later than the open');
    assert.equal(zero.answeredMs, undefined, 'the inverter had not answered when the contactor opened');
  } finally {
    await shutdown(r);
  }
});

test('every event waits for a full poll: a dispatch is decided and sent while a slow inverter poll is still running', async () => {
  const r = rig();
  try {
    r.inverter.delayMs.refresh = 800;
    await drive(r.clock, r.rt.start());
    // the next tick starts a poll that takes 800 ms
    assert.ok(await stepUntil(r.clock, () => r.inverter.pending('refresh').length > 0, 2000, 10), 'a poll is running');
    const pollStartedMs = r.inverter.pending('refresh')[0].startedMs;
    const req = { id: 'fast-1', powerW: -4000, durationS: 600 };
    r.rt.submit({ kind: 'dispatch', request: req, body: JSON.stringify(req), receivedMs: r.clock.nowMs(), source: 'device' });
    await flush();
    const sent = r.inverter.calls.find((c) => c.method === 'setPowerW' && c.value === -4000);
    assert.ok(sent, `the setpoint was not sent while the poll ran (calls: ${JSON.stringify(r.inverter.calls.slice(-5))})`);
    const poll = r.inverter.calls.find((c) => c.method === 'refresh' && c.startedMs === pollStartedMs)!;
    assert.equal(poll.answeredMs, undefined, 'the setpoint went out before the poll completed');
    assert.equal(r.site.inverter.setpointW, -4000);
  } finally {
    await shutdown(r);
  }
});

test('a setpoint write that never answers is a fault of the inverter with its cause, not a stall; it clears when the inverter answers', async () => {
  const r = rig();
  try {
    await drive(r.clock, r.rt.start());
    r.inverter.hang = new Set(['setPowerW']);
    const req = { id: 'hang-1', powerW: -4000, durationS: 600 };
    r.rt.submit({ kind: 'dispatch', request: req, body: JSON.stringify(req), receivedMs: r.clock.nowMs(), source: 'device' });
    const ticksBefore = r.ticks.length;
    const faulted = await stepUntil(r.clock, () => /setPowerW did not answer within \d+ ms/.test(r.ticks.at(-1)?.snapshot.inverter.fault ?? ''), 10_000, 10);
    assert.ok(faulted, `no timeout fault in the snapshot (last: ${r.ticks.at(-1)?.snapshot.inverter.fault})`);
    assert.equal(r.ticks.at(-1)!.plan.setpointW, 0, 'a port in fault: zero power at once');
    await stepUntil(r.clock, () => false, 5000, 100);
    assert.ok(r.ticks.length - ticksBefore >= 6, `the loop kept deciding (${r.ticks.length - ticksBefore} decisions in 6.5 s)`);
    assert.ok(r.inverter.pending('setPowerW').length <= 2, `calls to a silent device are bounded (${r.inverter.pending('setPowerW').length} unanswered)`);
    r.inverter.release();
    const cleared = await stepUntil(r.clock, () => !/did not answer/.test(r.ticks.at(-1)?.snapshot.inverter.fault ?? ''), 3000, 10);
    assert.ok(cleared, `the fault stayed after the inverter answered: ${r.ticks.at(-1)?.snapshot.inverter.fault}`);
  } finally {
    await shutdown(r);
  }
});

test('stop() with a hanging inverter: power to zero first, then the ports closed, within a bound, never rejecting', async () => {
  const r = rig();
  try {
    await drive(r.clock, r.rt.start());
    const req = { id: 'stop-1', powerW: -4000, durationS: 600 };
    r.rt.submit({ kind: 'dispatch', request: req, body: JSON.stringify(req), receivedMs: r.clock.nowMs(), source: 'device' });
    await stepUntil(r.clock, () => false, 2000, 100);
    assert.equal(r.site.inverter.setpointW, -4000);
    r.inverter.hang = new Set(['refresh', 'setPowerW', 'setGridForming', 'close']);
    const stopAtMs = r.clock.nowMs();
    let stopped = false;
    const done = r.rt.stop().then(() => {
      stopped = true;
    });
    await flush();
    const zero = r.inverter.calls.find((c) => c.method === 'setPowerW' && c.value === 0 && c.startedMs >= stopAtMs);
    assert.ok(zero, 'stop sends the zero setpoint at once');
    assert.ok(await stepUntil(r.clock, () => stopped, 20_000, 50), 'stop() resolved');
    await done;
    assert.ok(r.clock.nowMs() - stopAtMs <= 10_000, `stop took ${r.clock.nowMs() - stopAtMs} ms of clock time`);
    const firstClose = r.inverter.calls.findIndex((c) => c.method === 'close');
    assert.ok(firstClose < 0 || r.inverter.calls.indexOf(zero) < firstClose, 'power to zero before closing');
  } finally {
    r.inverter.release();
    r.site.stopPhysics();
  }
});

test('a stop during start-up still sets the power to zero once the inverter has opened', async () => {
  const r = rig();
  try {
    // what a crashed process left in force on the device
    await r.site.inverter.setPowerW(-4000);
    r.inverter.delayMs.open = 400;
    const started = r.rt.start();
    await stepUntil(r.clock, () => false, 100, 10);
    const stopped = r.rt.stop();
    await drive(r.clock, Promise.all([started, stopped]), 20_000);
    assert.ok(r.inverter.calls.some((c) => c.method === 'setPowerW' && c.value === 0), 'a zero setpoint was sent');
    assert.equal(r.site.inverter.setpointW, 0);
  } finally {
    r.site.stopPhysics();
  }
});
