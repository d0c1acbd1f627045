/**
 * The islanding interlock (invariant 5, issue 14 point 1): the grid contactor is commanded closed only when
 * (a) the grid has been seen present for `backup.reconnectDelayS`, (b) a fresh inverter reading, taken after
 * grid-forming was commanded off, says it is not forming, and (c) the setpoint of this plan and of the last
 * one is 0. A fault while islanded stops grid-forming and leaves the contactor open.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { decide, initialMemory } from '../../src/control/decide.ts';
import { interlock, type InterlockInputs } from '../../src/control/interlock.ts';
import type { Memory, Plan } from '../../src/control/types.ts';
import type { ControlSettings } from '../../src/config/types.ts';
import { T0, settings, snapshot, runDecide } from '../helpers/control.ts';

type Over = Parameters<typeof snapshot>[1];

const run = runDecide;

const c = settings({ vehicle: { departureTime: null }, backup: { reconnectDelayS: 300, contactorTimeoutS: 2 }, control: { faultAfterS: 10, faultClearS: 10, inverterMaxAgeS: 5 } });
const OPEN = { commandedClosed: false, feedbackClosed: false };
const GRID_DOWN = { grid: { sensePresent: false } };
const GRID_UP = { grid: { sensePresent: true } };

/** An outage that islands the house at 1 s (contactor confirmed open, grid-forming). */
const ISLAND: [number, Over][] = [
  [0, GRID_DOWN],
  [1, { ...GRID_DOWN, contactor: OPEN }],
  [2, { ...GRID_DOWN, contactor: OPEN, inverter: { gridForming: true } }],
];

describe('regression: fault during island closes the contactor at once (issue 14.1)', () => {
  test('e-stop 2 s after the grid came back, the inverter still forming: contactor stays open, forming stops', () => {
    const plans = run(c, [
      ...ISLAND,
      [100, { ...GRID_UP, contactor: OPEN, inverter: { gridForming: true } }],
      [102, { ...GRID_UP, contactor: OPEN, inverter: { gridForming: true }, estopPressed: true }],
      [103, { ...GRID_UP, contactor: OPEN, inverter: { gridForming: false }, estopPressed: true }],
      [200, { ...GRID_UP, contactor: OPEN, inverter: { gridForming: false }, estopPressed: true }],
      [399, { ...GRID_UP, contactor: OPEN, inverter: { gridForming: false }, estopPressed: true }],
    ]);
    assert.equal(plans[2].gridForming, true, 'islanded before the fault');
    for (const p of plans.slice(4)) {
      assert.equal(p.mode, 'fault');
      assert.equal(p.contactorClosed, false, `at ${p.memory.lastTickMs! - T0} ms the grid had been back < 300 s`);
      assert.equal(p.gridForming, false);
      assert.equal(p.setpointW, 0);
      assert.equal(p.backup.outageStartMs, T0, 'the outage start is kept');
    }
  });

  test('after the fault, rejoin only through the normal sequence once (a)–(c) hold', () => {
    const plans = run(c, [
      ...ISLAND,
      [100, { ...GRID_UP, contactor: OPEN, inverter: { gridForming: true } }],
      [102, { ...GRID_UP, contactor: OPEN, inverter: { gridForming: true }, estopPressed: true }],
      [103, { ...GRID_UP, contactor: OPEN, inverter: { gridForming: false } }],
      [399, { ...GRID_UP, contactor: OPEN, inverter: { gridForming: true } }],
      [401, { ...GRID_UP, contactor: OPEN, inverter: { gridForming: true } }],
      [402, { ...GRID_UP, contactor: OPEN, inverter: { gridForming: false } }],
      [403, { ...GRID_UP, contactor: { commandedClosed: true, feedbackClosed: true } }],
    ]);
    assert.equal(plans[6].contactorClosed, false, '299 s after the grid returned');
    assert.equal(plans[6].gridForming, true, 'the fault cleared: the house is served again until the grid is stable');
    assert.deepEqual([plans[7].backup.phase, plans[7].gridForming, plans[7].contactorClosed], ['rejoining', false, false]);
    assert.equal(plans[8].contactorClosed, true, '302 s after the grid returned, a reading after forming-off says not forming, setpoint 0');
    assert.equal(plans[8].setpointW, 0);
    assert.equal(plans[9].backup.phase, 'on-grid');
    assert.ok(plans.slice(3).every((p) => p.backup.outageStartMs === T0 || p.backup.phase === 'on-grid'), 'the outage start is kept through the fault');
  });

  test('a fault while opening or dropped keeps the contactor open on a live grid', () => {
    const opening = run(c, [
      [0, GRID_DOWN],
      [0.5, { ...GRID_UP, contactor: { commandedClosed: false, feedbackClosed: true }, estopPressed: true }],
      [1, { ...GRID_UP, contactor: OPEN, estopPressed: true }],
    ]);
    assert.deepEqual(opening.slice(1).map((p) => p.contactorClosed), [false, false]);
  });
});

describe('regression: silent inverter while islanded then grid returns closes contactor after faultAfterS (issue 14.1)', () => {
  test('no fresh reading: the house waits dark, whatever the fault timers do', () => {
    const silent = { atMs: T0 + 40_000, gridForming: true };
    const steps: [number, Over][] = [...ISLAND, [40, { ...GRID_DOWN, contactor: OPEN, inverter: { gridForming: true } }]];
    for (let t = 50; t <= 500; t += 5) steps.push([t, { ...GRID_UP, contactor: OPEN, inverter: silent }]);
    const plans = run(c, steps);
    const after = plans.slice(4);
    assert.ok(after.some((p) => p.mode === 'fault'), 'the silent inverter becomes a fault');
    for (const p of after) {
      assert.equal(p.contactorClosed, false);
      assert.equal(p.gridForming, false);
    }
  });

  test('once the inverter answers again, not forming, the house rejoins', () => {
    const silent = { atMs: T0 + 40_000, gridForming: true };
    const steps: [number, Over][] = [...ISLAND, [40, { ...GRID_DOWN, contactor: OPEN, inverter: { gridForming: true } }]];
    for (let t = 50; t <= 400; t += 10) steps.push([t, { ...GRID_UP, contactor: OPEN, inverter: silent }]);
    steps.push([401, { ...GRID_UP, contactor: OPEN, inverter: { gridForming: false } }]);
    steps.push([402, { ...GRID_UP, contactor: OPEN, inverter: { gridForming: false } }]);
    const plans = run(c, steps);
    assert.equal(plans.at(-1)!.contactorClosed, true);
  });
});

describe('interlock rule', () => {
  const base: InterlockInputs = {
    nowMs: T0 + 400_000, gridStableSinceMs: T0, gridSource: 'sense', reconnectDelayS: 300, inverterMaxAgeS: 5,
    inverter: { atMs: T0 + 400_000, gridForming: false, islandCapable: true }, formingOffAtMs: T0 + 399_000, setpointW: 0, lastSetpointW: 0,
  };
  test('all three conditions hold', () => assert.deepEqual(interlock(base), { ok: true, missing: [] }));
  const cases: [string, Partial<InterlockInputs>, RegExp][] = [
    ['grid back too short', { gridStableSinceMs: T0 + 100_001 }, /grid/],
    ['grid not seen present', { gridStableSinceMs: undefined }, /grid/],
    ['stale reading', { inverter: { atMs: T0 + 394_000, gridForming: false, islandCapable: true } }, /reading/],
    ['no reading', { inverter: { gridForming: false, islandCapable: true } }, /reading/],
    ['non-finite reading time', { inverter: { atMs: Number.NaN, gridForming: false, islandCapable: true } }, /reading/],
    ['forming', { inverter: { atMs: T0 + 400_000, gridForming: true, islandCapable: true } }, /forming/],
    ['forming state unknown', { inverter: { atMs: T0 + 400_000, islandCapable: true } }, /forming/],
    ['reading older than the forming-off command', { formingOffAtMs: T0 + 400_000 }, /forming/],
    ['inverter fault', { inverter: { atMs: T0 + 400_000, gridForming: false, islandCapable: true, fault: 'timeout' } }, /inverter/],
    ['setpoint of this plan', { setpointW: -1 }, /setpoint/],
    ['last setpoint', { lastSetpointW: 3000 }, /setpoint/],
  ];
  for (const [name, over, why] of cases)
    test(`refused: ${name}`, () => {
      const r = interlock({ ...base, ...over });
      assert.equal(r.ok, false);
      assert.match(r.missing.join('; '), why);
    });
  test('an inverter that cannot island needs only a fresh reading (forming state not reported)', () => {
    assert.equal(interlock({ ...base, inverter: { atMs: T0 + 400_000, islandCapable: false } }).ok, true);
    assert.equal(interlock({ ...base, inverter: { atMs: T0 + 390_000, islandCapable: false } }).ok, false);
  });
});

describe('the interlock on every path that closes an open contactor', () => {
  test('faultOpensContactor "always": after the fault the contactor recloses only through the interlock', () => {
    const always = settings({ vehicle: { departureTime: null }, backup: { reconnectDelayS: 300 }, control: { faultOpensContactor: 'always', faultClearS: 10 } });
    const plans = run(always, [
      [0, { commands: [] }],
      [1, { estopPressed: true }],
      [2, { contactor: OPEN }],
      [20, { contactor: OPEN, inverter: { atMs: T0 + 10_000 } }],
      [30, { contactor: OPEN }],
      [31, { contactor: OPEN }],
    ]);
    assert.equal(plans[1].contactorClosed, false);
    // the grid has been present only since the start (31 s): the reconnect delay still applies
    assert.ok(plans.slice(2).every((p) => !p.contactorClosed));
    assert.ok(plans.slice(2).every((p) => p.setpointW === 0), 'zero power while the contactor is open');
  });

  test('the grid stable for the delay, the fault cleared: the contactor closes, power after it is confirmed', () => {
    const always = settings({ vehicle: { departureTime: null }, backup: { reconnectDelayS: 300 }, control: { faultOpensContactor: 'always', faultClearS: 10 } });
    const plans = run(always, [
      [0, {}],
      [1, { estopPressed: true }],
      [2, { contactor: OPEN }],
      [301, { contactor: OPEN }],
      [311, { contactor: OPEN }],
      [312, { contactor: OPEN }],
      [313, { contactor: { commandedClosed: true, feedbackClosed: true } }],
    ]);
    assert.equal(plans[3].contactorClosed, true, 'the fault cleared, the grid present 301 s: the house goes back on the grid');
    assert.equal(plans[3].setpointW, 0);
    assert.equal(plans[6].contactorClosed, true);
  });
});

describe('a config reload goes through the same interlock', () => {
  test('mid-island, a reload that turns backup off or shortens nothing closes no contactor onto the grid', () => {
    let mem = initialMemory(T0);
    for (const [t, over] of ISLAND) mem = decide(snapshot(T0 + t * 1000, over), c, mem, T0 + t * 1000).memory;
    // the grid returns at 100 s; at 150 s the homeowner reloads a config without backup and with "always"
    mem = decide(snapshot(T0 + 100_000, { ...GRID_UP, contactor: OPEN, inverter: { gridForming: true } }), c, mem, T0 + 100_000).memory;
    const reloaded = settings({ vehicle: { departureTime: null }, backup: { enabled: false, reconnectDelayS: 300 }, control: { faultOpensContactor: 'always' } });
    const plans: Plan[] = [];
    for (const t of [150, 151, 200, 399]) {
      const p = decide(snapshot(T0 + t * 1000, { ...GRID_UP, contactor: OPEN, inverter: { gridForming: t === 150 } }), reloaded, mem, T0 + t * 1000);
      mem = p.memory;
      plans.push(p);
    }
    assert.ok(plans.every((p) => !p.contactorClosed), 'the grid has been back less than 300 s');
    const p = decide(snapshot(T0 + 401_000, { ...GRID_UP, contactor: OPEN }), reloaded, mem, T0 + 401_000);
    assert.deepEqual([p.backup.phase, p.gridForming, p.contactorClosed], ['rejoining', false, false], 'grid-forming off first');
    const q = decide(snapshot(T0 + 402_000, { ...GRID_UP, contactor: OPEN }), reloaded, p.memory, T0 + 402_000);
    assert.equal(q.contactorClosed, true, 'then closed, through the interlock');
  });
});
