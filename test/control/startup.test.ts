/**
 * Start-up reconciliation (issue 14 point 2): after a start the core knows nothing it has not seen. Until a
 * fresh inverter reading is in, the plan is zero power, no grid-forming, and an open contactor stays open;
 * then the phase is picked from what the contactor and the grid show, and one `startup` event says what was
 * found and what the persisted state said.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { decide, initialMemory } from '../../src/control/decide.ts';
import type { Memory, Plan, RestoredState } from '../../src/control/types.ts';
import type { ControlSettings } from '../../src/config/types.ts';
import { T0, settings, snapshot, runDecide } from '../helpers/control.ts';

type Over = Parameters<typeof snapshot>[1];

const run = runDecide;

const c = settings({ vehicle: { departureTime: null, targetSocPct: 80 }, backup: { reconnectDelayS: 300, contactorTimeoutS: 2 }, control: { faultAfterS: 10 } });
const OPEN = { commandedClosed: false, feedbackClosed: false };
const islandedHourAgo: RestoredState = {
  island: { phase: 'islanded', sinceMs: T0 - 3_600_000, outageStartMs: T0 - 3_600_000, gridStableSinceMs: T0 - 600_000 },
  savedAtMs: T0 - 5_000,
};
const startupEvents = (plans: Plan[]) => plans.flatMap((p) => p.events.filter((e) => e.kind === 'startup'));

describe('regression: restart mid-island closes the contactor and starts charging (issue 14.2)', () => {
  test('grid back, contactor open, inverter still forming: the first plan closes nothing and charges nothing', () => {
    const [p] = run(c, [[0, { grid: { sensePresent: true }, contactor: OPEN, inverter: { gridForming: true }, vehicle: { socPct: 30 } }]], initialMemory(T0, islandedHourAgo));
    assert.equal(p.contactorClosed, false);
    assert.equal(p.setpointW, 0);
    assert.equal(p.gridForming, false);
  });

  test('it rejoins through the interlock: the grid watched for the reconnect delay from the start, not from before it', () => {
    const steps: [number, Over][] = [[0, { grid: { sensePresent: true }, contactor: OPEN, inverter: { gridForming: true }, vehicle: { socPct: 30 } }]];
    for (let t = 1; t < 300; t += 7) steps.push([t, { grid: { sensePresent: true }, contactor: OPEN, vehicle: { socPct: 30 } }]);
    steps.push([300, { grid: { sensePresent: true }, contactor: OPEN, vehicle: { socPct: 30 } }]);
    steps.push([301, { grid: { sensePresent: true }, contactor: { commandedClosed: true, feedbackClosed: true }, vehicle: { socPct: 30 } }]);
    const plans = run(c, steps, initialMemory(T0, islandedHourAgo));
    assert.ok(plans.slice(0, -2).every((p) => !p.contactorClosed && p.setpointW === 0 && !p.gridForming));
    assert.equal(plans.at(-2)!.contactorClosed, true, 'grid present 300 s since the start, inverter not forming, setpoint 0');
    assert.equal(plans.at(-2)!.setpointW, 0);
    assert.equal(plans.at(-1)!.backup.phase, 'on-grid');
    assert.equal(plans.at(-1)!.mode, 'charge', 'charging once back on the grid');
    const ev = startupEvents(plans);
    assert.equal(ev.length, 1);
    assert.match(ev[0].message, /open/);
    assert.match(ev[0].message, /islanded/, 'says what the persisted state was');
  });
});

describe('start-up reconciliation', () => {
  test('no fresh inverter reading: zero power, an open contactor stays open, fault after control.faultAfterS', () => {
    const silent = { atMs: undefined, gridForming: undefined };
    const plans = run(c, [
      [0, { grid: { sensePresent: true }, contactor: OPEN, inverter: silent, vehicle: { socPct: 30 } }],
      [5, { grid: { sensePresent: true }, contactor: OPEN, inverter: silent, vehicle: { socPct: 30 } }],
      [10, { grid: { sensePresent: true }, contactor: OPEN, inverter: silent, vehicle: { socPct: 30 } }],
      [400, { grid: { sensePresent: true }, contactor: OPEN, inverter: silent, vehicle: { socPct: 30 } }],
    ], initialMemory(T0));
    assert.ok(plans.every((p) => p.setpointW === 0 && !p.contactorClosed && !p.gridForming));
    assert.equal(plans[0].mode, 'idle');
    assert.equal(plans[2].mode, 'fault');
    assert.equal(plans[3].mode, 'fault');
    assert.equal(startupEvents(plans).length, 0, 'nothing reconciled yet');
  });

  test('a closed contactor on a present grid stays closed while waiting for the inverter; no charging yet', () => {
    const [p] = run(c, [[0, { inverter: { atMs: undefined }, vehicle: { socPct: 30 } }]], initialMemory(T0));
    assert.equal(p.contactorClosed, true);
    assert.equal(p.setpointW, 0);
  });

  test('contactor closed, grid present: on-grid at once, charging in the first plan; one event', () => {
    const plans = run(c, [[0, { vehicle: { socPct: 30 } }], [1, { vehicle: { socPct: 30 } }]], initialMemory(T0, islandedHourAgo));
    assert.equal(plans[0].backup.phase, 'on-grid');
    assert.equal(plans[0].mode, 'charge');
    assert.equal(plans[0].contactorClosed, true);
    const ev = startupEvents(plans);
    assert.equal(ev.length, 1);
    assert.match(ev[0].message, /closed/);
  });

  test('contactor closed, grid absent: the island sequence starts (opening), the outage start kept', () => {
    const [p] = run(c, [[0, { grid: { sensePresent: false } }]], initialMemory(T0, islandedHourAgo));
    assert.equal(p.backup.phase, 'opening');
    assert.equal(p.contactorClosed, false);
    assert.equal(p.gridForming, false);
    assert.equal(p.backup.outageStartMs, T0 - 3_600_000);
  });

  test('contactor open (confirmed), grid absent: islanded through the normal forming rules', () => {
    const plans = run(c, [
      [0, { grid: { sensePresent: false }, contactor: OPEN, inverter: { gridForming: true } }],
      [1, { grid: { sensePresent: false }, contactor: OPEN, inverter: { gridForming: true } }],
    ], initialMemory(T0, islandedHourAgo));
    assert.equal(plans.at(-1)!.backup.phase, 'islanded');
    assert.equal(plans.at(-1)!.gridForming, true);
    assert.equal(plans.at(-1)!.contactorClosed, false);
    assert.equal(plans.at(-1)!.backup.outageStartMs, T0 - 3_600_000);
  });

  test('contactor open, grid absent, inverter that cannot island: the house waits dark for the grid', () => {
    const plans = run(c, [
      [0, { grid: { sensePresent: false }, contactor: OPEN, inverter: { islandCapable: false } }],
      [1, { grid: { sensePresent: false }, contactor: OPEN, inverter: { islandCapable: false } }],
    ], initialMemory(T0));
    assert.ok(plans.every((p) => !p.gridForming && !p.contactorClosed && p.setpointW === 0));
  });

  test('without a feedback line the command is the contactor state; the restored grid-stable time is not trusted', () => {
    const restored: RestoredState = { island: { phase: 'rejoining', sinceMs: T0 - 400_000, outageStartMs: T0 - 900_000, gridStableSinceMs: T0 - 400_000 }, savedAtMs: T0 - 1000 };
    const noFeedback = { commandedClosed: false, feedbackClosed: undefined };
    const plans = run(c, [
      [0, { contactor: noFeedback }],
      [1, { contactor: noFeedback }],
      [2, { contactor: noFeedback }],
    ], initialMemory(T0, restored));
    assert.ok(plans.every((p) => !p.contactorClosed), 'the grid was not watched before the start');
    assert.ok(plans.every((p) => p.setpointW === 0));
  });

  test('initialMemory without a restored state starts reconciling too', () => {
    const m = initialMemory(T0);
    assert.ok(m.startup);
    assert.equal(m.startup!.sinceMs, T0);
    const r = initialMemory(T0, islandedHourAgo);
    assert.deepEqual(r.startup!.restored, islandedHourAgo.island);
  });
});

describe('start-up with a persisted state that is not one', () => {
  for (const [name, island] of [
    ['unknown phase', { phase: 'floating', sinceMs: T0 - 1000 }],
    ['non-numeric time', { phase: 'islanded', sinceMs: Number.NaN }],
    ['outage start not a number', { phase: 'islanded', sinceMs: T0 - 1000, outageStartMs: 'yesterday' }],
  ] as const)
    test(`${name}: ignored, said in the startup event, nothing thrown`, () => {
      const m = initialMemory(T0, { island: island as unknown as RestoredState['island'], savedAtMs: Number.NaN });
      const plans = run(c, [[0, {}]], m);
      assert.equal(plans[0].backup.phase, 'on-grid');
      const ev = startupEvents(plans);
      assert.equal(ev.length, 1);
      assert.match(ev[0].message, /not one \(ignored\)/);
    });
});
