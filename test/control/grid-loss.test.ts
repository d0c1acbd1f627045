/**
 * Grid-loss policy (issue 14 point 5): which inputs mean "the grid is gone" is the core's decision, from
 * named inputs: the grid-sense line, and the inverter's SunSpec 701 alarms against `backup.gridLossAlarms`
 * sustained for `backup.gridLossDebounceS`. A trip while the sense line shows the grid is zero power on the
 * grid (`grid_trip`), never an island; an inverter that cannot island never enters the island sequence.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { decide, initialMemory } from '../../src/control/decide.ts';
import { assessGrid } from '../../src/control/grid-loss.ts';
import type { Memory, Plan } from '../../src/control/types.ts';
import type { ControlSettings } from '../../src/config/types.ts';
import { T0, dispatchCmd, settings, snapshot, runDecide } from '../helpers/control.ts';

type Over = Parameters<typeof snapshot>[1];

const run = runDecide;

const c = settings({ vehicle: { departureTime: null }, backup: { reconnectDelayS: 300, contactorTimeoutS: 2, gridLossDebounceS: 2, gridLossAlarms: ['GRID_DISCONNECT', 'AC_UNDER_VOLT'] } });

describe('regression: over-voltage alarm islands the house (issue 14.5)', () => {
  for (const alarm of ['AC_OVER_VOLT', 'OVER_FREQUENCY', 'UNDER_FREQUENCY', 'GRID_DISCONNECT'])
    test(`${alarm} with the sense line showing the grid: zero power, on the grid, reason grid_trip`, () => {
      // the snapshot as the runtime filled it until now: the deprecated gridAlarm set from the same alarm
      const over = { inverter: { alarms: [alarm], gridAlarm: true } } as Over;
      const plans = run(c, [[0, {}], [1, over], [2, over], [5, over], [400, over]]);
      for (const p of plans.slice(1)) {
        assert.equal(p.backup.phase, 'on-grid');
        assert.equal(p.contactorClosed, true);
        assert.equal(p.gridForming, false);
        assert.equal(p.setpointW, 0);
        assert.notEqual(p.mode, 'backup');
        assert.ok(p.reasons.includes('grid_trip'), p.reasons.join());
      }
      assert.equal(plans[1].events.filter((e) => e.kind === 'grid').length, 1, 'one event for the trip');
      assert.equal(plans[2].events.filter((e) => e.kind === 'grid').length, 0);
    });

  test('a dispatch during a trip is curtailed with grid_trip and resumes after it', () => {
    const trip = { inverter: { alarms: ['AC_OVER_VOLT'] } } as Over;
    const plans = run(c, [[0, { commands: [dispatchCmd('d', -3000, 3600, T0)] }], [1, trip], [2, {}]]);
    assert.equal(plans[0].setpointW, -3000);
    assert.equal(plans[1].setpointW, 0);
    assert.deepEqual(plans[1].responses.map((r) => [r.status, r.reason]), [['curtailed', 'grid_trip']]);
    assert.equal(plans[2].setpointW, -3000);
  });
});

describe('regression: inverter that cannot island still islands (issue 14.5)', () => {
  for (const islandCapable of [false, undefined])
    test(`islandCapable ${islandCapable}: on grid loss power to zero, contactor as wired, no island`, () => {
      const plans = run(c, [
        [0, { inverter: { islandCapable } }],
        [1, { grid: { sensePresent: false }, inverter: { islandCapable, alarms: ['GRID_DISCONNECT'], gridAlarm: true } as NonNullable<Over>['inverter'] }],
        [5, { grid: { sensePresent: false }, inverter: { islandCapable, alarms: ['GRID_DISCONNECT'], gridAlarm: true } as NonNullable<Over>['inverter'] }],
        [400, { inverter: { islandCapable } }],
      ]);
      for (const p of plans.slice(1, 3)) {
        assert.equal(p.backup.phase, 'on-grid');
        assert.equal(p.contactorClosed, true);
        assert.equal(p.gridForming, false);
        assert.equal(p.setpointW, 0);
        assert.ok(p.reasons.includes('grid_down'));
      }
      assert.equal(plans[3].backup.phase, 'on-grid');
    });
});

describe('grid-loss policy', () => {
  const noSense = { grid: { sensePresent: undefined } };

  test('without a sense line a listed alarm islands only once sustained for the debounce', () => {
    const lost = { ...noSense, inverter: { alarms: ['GRID_DISCONNECT'] } } as Over;
    const plans = run(c, [[0, noSense], [1, lost], [2, lost], [3, lost]]);
    assert.equal(plans[1].backup.phase, 'on-grid');
    assert.equal(plans[1].setpointW, 0, 'zero power at once');
    assert.ok(plans[1].reasons.includes('grid_down'));
    assert.equal(plans[2].backup.phase, 'on-grid', '1 s of alarm');
    assert.equal(plans[3].backup.phase, 'opening', '2 s of alarm');
    assert.equal(plans[3].contactorClosed, false);
  });

  test('an alarm that goes away restarts the debounce', () => {
    const lost = { ...noSense, inverter: { alarms: ['AC_UNDER_VOLT'] } } as Over;
    const plans = run(c, [[0, noSense], [1, lost], [2.5, noSense], [3, lost], [4.5, lost], [5, lost]]);
    assert.deepEqual(plans.map((p) => p.backup.phase), ['on-grid', 'on-grid', 'on-grid', 'on-grid', 'on-grid', 'opening']);
  });

  test('the sense line decides at once; it outranks the inverter both ways', () => {
    const plans = run(c, [[0, {}], [1, { grid: { sensePresent: false }, inverter: { alarms: [] } }]]);
    assert.equal(plans[1].backup.phase, 'opening');
  });

  test('the alarm table is config: an empty table never islands on alarms', () => {
    const none = settings({ vehicle: { departureTime: null }, backup: { gridLossAlarms: [] } });
    const lost = { ...noSense, inverter: { alarms: ['GRID_DISCONNECT'] } } as Over;
    const plans = run(none, [[0, noSense], [1, lost], [10, lost]]);
    assert.ok(plans.every((p) => p.backup.phase === 'on-grid'));
    assert.ok(plans[2].reasons.includes('grid_trip'));
  });

  test('unlisted trip alarm without a sense line: grid_trip, never an island', () => {
    const trip = { ...noSense, inverter: { alarms: ['OVER_FREQUENCY'] } } as Over;
    const plans = run(c, [[0, noSense], [1, trip], [10, trip]]);
    assert.ok(plans.every((p) => p.backup.phase === 'on-grid' && p.contactorClosed));
    assert.ok(plans[2].reasons.includes('grid_trip'));
  });

  test('alarms of a stale reading are not read as the grid being back', () => {
    const g = assessGrid(snapshot(T0 + 60_000, { grid: { sensePresent: undefined }, inverter: { atMs: T0, alarms: [] } }), c, undefined, T0 + 60_000);
    assert.equal(g.present, false);
    assert.equal(g.lost, false);
  });

  test('without a sense line, a fresh reading not forming with no grid alarm counts as the grid present', () => {
    const g = assessGrid(snapshot(T0, { grid: { sensePresent: undefined }, inverter: { alarms: [] } }), c, undefined, T0);
    assert.deepEqual([g.present, g.source], [true, 'inverter']);
    const forming = assessGrid(snapshot(T0, { grid: { sensePresent: undefined }, inverter: { alarms: [], gridForming: true } }), c, undefined, T0);
    assert.equal(forming.present, false, 'a forming inverter measures its own island');
    const unknown = assessGrid(snapshot(T0, { grid: { sensePresent: undefined }, inverter: { alarms: undefined } }), c, undefined, T0);
    assert.equal(unknown.present, false, 'alarms not reported: unknown is not present');
  });

  test('the deprecated gridAlarm field is not read', () => {
    const plans = run(c, [[0, {}], [1, { inverter: { gridAlarm: true, alarms: [] } } as Over], [5, { inverter: { gridAlarm: true, alarms: [] } } as Over]]);
    assert.ok(plans.every((p) => p.backup.phase === 'on-grid' && p.reasons.every((r) => r !== 'grid_down' && r !== 'grid_trip')));
  });
});
