/**
 * Issue 15, point 3: ages and durations on the wall clock. After the wall clock stepped back an hour, frozen
 * readings looked fresh and a running dispatch paused; a forward step let a counter reset be booked as
 * energy. Now ages, durations and timers run on the monotonic clock and the calendar only decides calendar
 * things; a step is an event. The figures checked here come from the simulated devices (what the inverter
 * physically exported, when its power actually flowed), never from the plans.
 */
import { describe, it, mock } from 'node:test';
import assert from 'node:assert/strict';
import { systemClock } from '../../hal/system-clock.ts';
import { VirtualClock } from '../../hal/sim/virtual-clock.ts';
import { parseScenario, runScenario, type SimulationResult } from '../../src/simulate.ts';

const POWER_W = 5000;
const DURATION_S = 600;

function stepScenario(stepS: number | undefined) {
  return parseScenario({
    start: '2026-06-01T10:00:00Z',
    timezone: 'UTC',
    durationS: 1500,
    sampleS: 1,
    vehicle: { capacityWh: 60000, socPct: 80 },
    config: { vehicle: { v2gEnabled: true, departureTime: null, dischargeFloorPct: 30 } },
    events: [
      { at: 60, dispatch: { id: 'step', powerW: -POWER_W, durationS: DURATION_S } },
      ...(stepS === undefined ? [] : [{ at: 300, clockStep: stepS }]),
    ],
  });
}

/** Seconds during which the simulated inverter physically exported more than half the dispatch's power. */
function exportingS(r: SimulationResult): number {
  return r.samples.filter((s) => s.powerW < -POWER_W / 2).length;
}

describe('the two clocks (issue 15, point 3)', () => {
  it('the system clock: a wall-clock step back moves wallMs, never the monotonic nowMs', (t) => {
    const realMs = Date.now();
    const before = systemClock.nowMs();
    t.after(() => mock.timers.reset());
    mock.timers.enable({ apis: ['Date'], now: realMs - 3_600_000 });
    const after = systemClock.nowMs();
    const wall = systemClock.wallMs();
    assert.ok(after >= before, `monotonic clock went back ${before - after} ms when the wall clock was set back`);
    assert.ok(after - before < 5_000, `monotonic clock jumped ${after - before} ms`);
    assert.ok(Math.abs(wall - (realMs - 3_600_000)) < 5_000, 'wallMs follows the wall clock');
  });

  it('the virtual clock: stepWall moves the calendar and fires no timer', () => {
    const c = new VirtualClock(1_000_000);
    let fired = 0;
    c.setTimer(() => fired++, 10_000);
    c.stepWall(3_600_000);
    assert.equal(c.nowMs(), 1_000_000);
    assert.equal(c.wallMs(), 4_600_000);
    assert.equal(fired, 0);
    c.stepWall(-7_200_000);
    assert.equal(c.wallMs(), 1_000_000 - 3_600_000);
    c.advance(10_000);
    assert.equal(fired, 1);
    assert.equal(c.wallMs() - c.nowMs(), -3_600_000);
  });

  for (const stepS of [-3600, 3600]) {
    it(`clockStep ${stepS > 0 ? '+' : ''}${stepS} s during a dispatch: its duration, its ledger row and the exported energy agree`, async () => {
      const r = await runScenario(stepScenario(stepS));
      const plain = await runScenario(stepScenario(undefined));
      // what the inverter physically did: the same as without a step
      const seconds = exportingS(r);
      assert.ok(Math.abs(seconds - DURATION_S) <= 3, `the inverter exported for ${seconds} s, the dispatch asked for ${DURATION_S} s`);
      assert.ok(Math.abs(seconds - exportingS(plain)) <= 2, `with the step ${seconds} s, without ${exportingS(plain)} s`);
      const exportedWh = r.site.inverter.exportedWh;
      const expectedWh = (POWER_W * DURATION_S) / 3600;
      assert.ok(Math.abs(exportedWh - expectedWh) < expectedWh * 0.02, `inverter exported ${exportedWh.toFixed(1)} Wh, ${expectedWh.toFixed(1)} Wh expected`);
      // the answer, the ledger row and the device agree
      const final = r.summary.dispatches.find((d) => d.id === 'step');
      assert.equal(final?.status, 'completed');
      assert.ok(final?.deliveredWh !== null && Math.abs(final!.deliveredWh! - exportedWh) < exportedWh * 0.01 + 1, `delivered ${final?.deliveredWh} Wh vs ${exportedWh.toFixed(1)} Wh measured`);
      const row = r.ledger.find((l) => l.dispatchId === 'step');
      assert.ok(row, 'a ledger row');
      assert.ok(row!.endMs > row!.startMs, 'start before end');
      const lengthS = (row!.endMs - row!.startMs) / 1000;
      assert.ok(Math.abs(lengthS - DURATION_S) <= 2, `ledger row spans ${lengthS} s`);
      assert.ok(Math.abs(row!.exportedWh - exportedWh) < exportedWh * 0.01 + 1, `ledger ${row!.exportedWh} Wh vs ${exportedWh.toFixed(1)} Wh measured`);
      // the row is stamped on the new calendar: its end is where the wall clock was when the device stopped
      const stopAtS = 60 + DURATION_S;
      const startMs = Date.parse('2026-06-01T10:00:00Z');
      assert.ok(Math.abs(row!.endMs - (startMs + stopAtS * 1000 + stepS * 1000)) <= 3000, `ledger end ${new Date(row!.endMs).toISOString()}`);
      // the step is an event
      const ev = r.eventLog.find((e) => e.kind === 'clock');
      assert.ok(ev, 'a clock event');
      assert.match(ev!.message, new RegExp(`stepped ${stepS > 0 ? 'forward' : 'back'} by 1 h`));
      assert.equal(r.summary.floorBreaches, 0);
    });
  }

  it('a wall-clock step back does not keep frozen readings fresh: the inverter going silent is still a fault', async () => {
    const r = await runScenario(
      parseScenario({
        start: '2026-06-01T10:00:00Z', timezone: 'UTC', durationS: 200, sampleS: 1,
        vehicle: { capacityWh: 60000, socPct: 40 },
        config: { vehicle: { v2gEnabled: true, departureTime: null, targetSocPct: 80 }, control: { inverterMaxAgeS: 5, faultAfterS: 10 } },
        events: [{ at: 50, clockStep: -3600 }, { at: 60, inverterFrozen: true }],
      }),
    );
    // the car was charging; with the inverter silent the runtime must command zero within age + fault time
    const zeroAt = r.site.actuations.find((a) => a.what === 'setpoint' && a.value === 0 && a.atMs >= Date.parse('2026-06-01T10:01:00Z'));
    assert.ok(zeroAt, `no zero setpoint after the inverter froze (modes ${JSON.stringify(r.summary.modes)})`);
    const afterS = (zeroAt!.atMs - Date.parse('2026-06-01T10:01:00Z')) / 1000;
    assert.ok(afterS <= 5 + 10 + 2, `zero ${afterS} s after the inverter froze`);
    assert.ok(r.eventLog.some((e) => e.kind === 'fault' && e.severity === 'alarm'), 'a fault event');
  });

  it('a wall-clock step forward books no counter jump as energy', async () => {
    const r = await runScenario(stepScenario(7 * 24 * 3600));
    const row = r.ledger.find((l) => l.dispatchId === 'step');
    assert.ok(row);
    assert.ok(Math.abs(row!.exportedWh - r.site.inverter.exportedWh) < r.site.inverter.exportedWh * 0.01 + 1, `ledger ${row!.exportedWh} Wh, inverter ${r.site.inverter.exportedWh} Wh`);
    assert.ok(Math.abs(r.summary.exportedWh - r.site.inverter.exportedWh) < 1);
  });
});

describe('the core on two clocks', () => {
  it('drift below CLOCK_STEP_MIN_MS is no step; a step is one event; departure follows the calendar', async () => {
    const { decide, initialMemory, CLOCK_STEP_MIN_MS } = await import('../../src/control/decide.ts');
    const { snapshot, settings, T0 } = await import('../helpers/control.ts');
    const c = settings({ vehicle: { departureTime: '07:30', targetSocPct: 80 }, timezone: 'UTC' });
    let m = initialMemory(T0);
    const run = (i: number, offsetMs: number) => {
      const now = T0 + i * 1000;
      const p = decide(snapshot(now, { wallMs: now + offsetMs }), c, m, now);
      m = p.memory;
      return p;
    };
    run(0, 0);
    assert.equal(run(1, CLOCK_STEP_MIN_MS - 1).events.filter((e) => e.kind === 'clock').length, 0);
    const stepped = run(2, CLOCK_STEP_MIN_MS - 1 - 3_600_000);
    assert.deepEqual(stepped.events.filter((e) => e.kind === 'clock').map((e) => e.severity), ['warning']);
    assert.equal(run(3, CLOCK_STEP_MIN_MS - 1 - 3_600_000).events.filter((e) => e.kind === 'clock').length, 0);
    // the departure is the next 07:30 after the calendar time, not after the monotonic time
    const wall = T0 + 2000 + CLOCK_STEP_MIN_MS - 1 - 3_600_000;
    const next = new Date(wall);
    next.setUTCHours(7, 30, 0, 0);
    if (next.getTime() <= wall) next.setUTCDate(next.getUTCDate() + 1);
    assert.equal(stepped.departureAtMs, next.getTime());
  });
});
