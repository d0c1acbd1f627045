import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { decide, initialMemory } from '../../src/control/decide.ts';
import type { Memory, Plan, Snapshot } from '../../src/control/types.ts';
import type { ControlSettings } from '../../src/config/types.ts';
import { T0, cancelCmd, dispatchCmd, settings, snapshot, runDecide } from '../helpers/control.ts';

const noDeparture = settings({ vehicle: { departureTime: null } });

const run = runDecide;

describe('limits: the setpoint is the smallest of every limit (invariant 4)', () => {
  const cases: { name: string; c?: ControlSettings; over?: Parameters<typeof snapshot>[1]; powerW: number; setpointW: number; limitedBy: string }[] = [
    // the car's limits are car-side (DC): on the AC side 11 kW x 0.95 = 10,450 W binds before the 11 kW inverter
    { name: 'dispatch request itself', powerW: -3000, setpointW: -3000, limitedBy: 'vehicle_limit' },
    { name: 'inverter rating', over: { inverter: { maxDischargeW: 5000 } }, powerW: -9000, setpointW: -5000, limitedBy: 'inverter_limit' },
    { name: "car's discharge limit", over: { vehicle: { maxDischargeW: 4000 } }, powerW: -9000, setpointW: -3800, limitedBy: 'vehicle_limit' }, // 4000 W car side x 0.95
    { name: "homeowner's max", c: settings({ vehicle: { departureTime: null, maxDischargeW: 2500 } }), powerW: -9000, setpointW: -2500, limitedBy: 'homeowner_limit' },
    { name: 'grid export limit with the house load', c: settings({ vehicle: { departureTime: null }, site: { gridExportLimitW: 3000 } }), over: { houseLoadW: 800 }, powerW: -9000, setpointW: -3800, limitedBy: 'grid_limit' },
    { name: 'floor within one tick', over: { vehicle: { socPct: 50.01, capacityWh: 10000 } }, powerW: -9000, setpointW: -3419, limitedBy: 'floor' },
    { name: 'charge: grid import limit with the house load', c: settings({ vehicle: { departureTime: null }, site: { gridImportLimitW: 7000 } }), over: { houseLoadW: 2500 }, powerW: 9000, setpointW: 4500, limitedBy: 'grid_limit' },
    { name: "charge: car's charge limit", over: { vehicle: { maxChargeW: 7400 } }, powerW: 11000, setpointW: 7789, limitedBy: 'vehicle_limit' }, // 7400 W car side / 0.95
    { name: "charge: homeowner's charge cap", c: settings({ vehicle: { departureTime: null, maxChargeW: 3000 } }), powerW: 11000, setpointW: 3000, limitedBy: 'homeowner_limit' },
  ];
  for (const k of cases) {
    test(k.name, () => {
      const c = k.c ?? noDeparture;
      const [p] = run(c, [[0, { ...(k.over ?? {}), commands: [dispatchCmd('d', k.powerW, 600, T0)] }]]);
      assert.equal(p.setpointW, k.setpointW, JSON.stringify(p.limits));
      assert.equal(k.powerW < 0 ? p.limits.dischargeLimitedBy : p.limits.chargeLimitedBy, k.limitedBy);
      assert.equal(p.mode, k.powerW < 0 ? 'discharge' : 'charge');
    });
  }
});

describe('discharge floor (invariant 1)', () => {
  test('no discharge at or below the effective floor; the dispatch is rejected with reason floor', () => {
    const [p] = run(noDeparture, [[0, { vehicle: { socPct: 50 }, commands: [dispatchCmd('d', -5000, 600, T0)] }]]);
    assert.ok(p.setpointW >= 0, 'no discharge');
    assert.equal(p.limits.maxDischargeW, 0);
    assert.deepEqual(p.responses.map((r) => [r.status, r.reason]), [['rejected', 'floor']]);
  });

  test('an active dispatch is curtailed at the floor, once, then completes with what was delivered', () => {
    const plans = run(noDeparture, [
      [0, { vehicle: { socPct: 50.5 }, commands: [dispatchCmd('d', -5000, 600, T0)] }],
      [1, { vehicle: { socPct: 50.2 }, energy: { exportedWh: 1.4 } }],
      [2, { vehicle: { socPct: 50 }, energy: { exportedWh: 1.4 } }],
      [3, { vehicle: { socPct: 50 } }],
      [600, { vehicle: { socPct: 50 } }],
    ]);
    assert.equal(plans[2].setpointW, 0);
    const statuses = plans.flatMap((p) => p.responses.map((r) => `${r.status}${r.reason ? ':' + r.reason : ''}`));
    assert.deepEqual(statuses, ['accepted', 'active', 'curtailed:floor', 'completed']);
    assert.equal(plans[4].responses[0].deliveredWh, 2.8);
    assert.equal(plans[4].finished[0].id, 'd');
  });

  test("the car's own minimum SoC raises the effective floor", () => {
    const [p] = run(noDeparture, [[0, { vehicle: { socPct: 60, minSocPct: 65 } }]]);
    assert.equal(p.floors.effectiveFloorPct, 65);
    assert.equal(p.flex.dischargeableWh, 0);
  });

  test('departure floor: the lowest SoC from which the target is still reachable', () => {
    // 07:30 departure at 05:00 UTC with 3.7 kW: 2.5 h - 0.5 h margin at 3515 W into 60 kWh = 11.7 %
    const c = settings({ vehicle: { departureTime: '07:30', targetSocPct: 80, departureMarginS: 1800 } });
    const now = Date.parse('2026-11-24T05:00:00Z');
    const p = decide(snapshot(now, { inverter: { maxChargeW: 3700 }, vehicle: { maxChargeW: 3700 } }), c, initialMemory(now), now);
    assert.ok(Math.abs((p.floors.departureFloorPct ?? 0) - (80 - (3700 * 0.95 * 2) / 600)) < 1e-9);
    assert.equal(p.floors.effectiveFloorPct, p.floors.departureFloorPct);
    assert.equal(p.departureAtMs, Date.parse('2026-11-24T07:30:00Z'));
  });

  test('departure outranks a dispatch: below the departure floor the car charges', () => {
    const c = settings({ vehicle: { departureTime: '07:30', targetSocPct: 80, dischargeFloorPct: 30 } });
    const start = Date.parse('2026-11-24T05:00:00Z');
    let mem = initialMemory(start);
    let p = decide(snapshot(start, { inverter: { maxChargeW: 3700, maxDischargeW: 3700 }, vehicle: { socPct: 69, maxChargeW: 3700 }, commands: [dispatchCmd('d', -3700, 3600, start)] }), c, mem, start);
    assert.equal(p.responses[0].status, 'accepted');
    mem = p.memory;
    const later = start + 600_000;
    p = decide(snapshot(later, { inverter: { maxChargeW: 3700, maxDischargeW: 3700 }, vehicle: { socPct: 68, maxChargeW: 3700 } }), c, mem, later);
    assert.equal(p.mode, 'charge');
    assert.equal(p.setpointW, 3700);
    assert.deepEqual(p.responses.map((r) => [r.status, r.reason]), [['curtailed', 'departure']]);
  });
});

describe('stale data is no data (invariant 3)', () => {
  test('stale SoC: zero power at once, fault after faultAfterS, cleared after faultClearS', () => {
    const c = settings({ vehicle: { departureTime: null }, control: { socMaxAgeS: 30, faultAfterS: 10, faultClearS: 10 } });
    const plans = run(c, [
      [0, { commands: [dispatchCmd('d', -5000, 3600, T0)] }],
      [31, { vehicle: { socAtMs: T0 } }],
      [35, { vehicle: { socAtMs: T0 } }],
      [41, { vehicle: { socAtMs: T0 } }],
      [42, {}],
      [51, {}],
      [52, {}],
    ]);
    assert.equal(plans[0].setpointW, -5000);
    assert.equal(plans[1].setpointW, 0);
    assert.equal(plans[1].mode, 'discharge');
    assert.ok(plans[1].reasons.includes('stale_data'));
    assert.equal(plans[3].mode, 'fault');
    assert.equal(plans[4].mode, 'fault');
    assert.equal(plans[6].mode, 'discharge');
    assert.equal(plans[6].setpointW, -5000);
  });

  test('stale inverter reading or a driver fault zeroes the power at once', () => {
    for (const over of [{ inverter: { atMs: T0 - 6000 } }, { inverter: { fault: 'timeout: no answer from unit 1' } }, { vehicle: { fault: 'bridge: disconnected' } }]) {
      const [p] = run(noDeparture, [[0, { ...over, commands: [dispatchCmd('d', -5000, 600, T0)] }]]);
      assert.equal(p.setpointW, 0, JSON.stringify(over));
      // not a fault yet (that comes after control.faultAfterS): the reason says what it is
      assert.deepEqual(p.responses.map((r) => [r.status, r.reason]), [['rejected', 'stale_data']]);
    }
  });

  test('e-stop: fault at once; the house stays on a present grid, the contactor opens without one', () => {
    const [p] = run(noDeparture, [[0, { estopPressed: true }]]);
    assert.equal(p.mode, 'fault');
    assert.equal(p.setpointW, 0);
    assert.equal(p.contactorClosed, true);
    assert.equal(p.gridForming, false);
    const always = settings({ vehicle: { departureTime: null }, control: { faultOpensContactor: 'always' } });
    assert.equal(run(always, [[0, { estopPressed: true }]])[0].contactorClosed, false);
    const [q] = run(noDeparture, [[0, { estopPressed: true, grid: { sensePresent: false } }]]);
    assert.equal(q.contactorClosed, false);
  });
});

describe('dispatch lifecycle (contract §1.1)', () => {
  test('accepted → active → completed with deliveredWh; future start waits', () => {
    const plans = run(noDeparture, [
      [0, { commands: [dispatchCmd('d', -7000, 3600, T0, { startMs: T0 + 60_000 })] }],
      [59, {}],
      [60, {}],
      [61, { energy: { exportedWh: 1.94 } }],
      [3660, { energy: { exportedWh: 7000 } }],
    ]);
    assert.deepEqual(plans[0].responses.map((r) => [r.status, r.acceptedW]), [['accepted', -7000]]);
    assert.equal(plans[1].setpointW, 0);
    assert.equal(plans[2].responses[0].status, 'active');
    assert.equal(plans[2].setpointW, -7000);
    assert.equal(plans[4].responses[0].status, 'completed');
    assert.equal(plans[4].responses[0].deliveredWh, 7001.9);
  });

  test('rejections name their reason', () => {
    const cases: [string, ControlSettings, Parameters<typeof snapshot>[1], string][] = [
      ['v2g disabled', settings({ vehicle: { v2gEnabled: false, departureTime: null } }), {}, 'v2g_disabled'],
      ['no vehicle', noDeparture, { vehicle: { connected: false } }, 'no_vehicle'],
      ['car did not agree to discharge', noDeparture, { vehicle: { bidirectional: false, maxDischargeW: 0 } }, 'not_bidirectional'],
      ['no SoC', noDeparture, { vehicle: { socPct: undefined, socAtMs: undefined } }, 'soc_unknown'],
      ['backup active', noDeparture, { grid: { sensePresent: false } }, 'backup_active'],
      ['e-stop', noDeparture, { estopPressed: true }, 'estop'],
    ];
    for (const [name, c, over, reason] of cases) {
      const [p] = run(c, [[0, { ...over, commands: [dispatchCmd('d', -5000, 600, T0)] }]]);
      assert.deepEqual(p.responses.map((r) => [r.status, r.reason]), [['rejected', reason]], name);
      assert.ok(p.setpointW >= 0, `${name}: no discharge`);
    }
  });

  test('expired: expiresAt passed at intake, or not started by then', () => {
    const [a] = run(noDeparture, [[0, { commands: [dispatchCmd('late', -5000, 600, T0, { expiresAtMs: T0 - 1 })] }]]);
    assert.deepEqual(a.responses.map((r) => r.status), ['expired']);
    const plans = run(noDeparture, [
      [0, { commands: [dispatchCmd('s', -5000, 600, T0, { startMs: T0 + 10_000, expiresAtMs: T0 + 20_000 })] }],
      [10, { estopPressed: true }],
      [21, { estopPressed: true }],
    ]);
    assert.deepEqual(plans.flatMap((p) => p.responses.map((r) => r.status)), ['accepted', 'expired']);
    // a start later than its expiresAt: expired at expiresAt, never started
    const later = run(noDeparture, [
      [0, { commands: [dispatchCmd('after', -5000, 600, T0, { startMs: T0 + 60_000, expiresAtMs: T0 + 30_000 })] }],
      [29, {}],
      [30, {}],
      [60, {}],
    ]);
    assert.deepEqual(later.flatMap((p) => p.responses.map((r) => `${r.status}@${later.indexOf(p)}`)), ['accepted@0', 'expired@2']);
    assert.equal(later[3].setpointW, 0);
  });

  test('duplicate id: same body answered again and changes nothing; different body rejected', () => {
    const cmd = dispatchCmd('dup', -5000, 600, T0);
    const plans = run(noDeparture, [
      [0, { commands: [cmd] }],
      [5, { commands: [{ ...cmd, receivedMs: T0 + 5000 }] }],
      [6, { commands: [dispatchCmd('dup', -6000, 600, T0 + 6000)] }],
    ]);
    assert.deepEqual(plans[1].responses.map((r) => r.status), ['active']);
    assert.deepEqual(plans[2].responses.map((r) => [r.status, r.reason]), [['rejected', 'duplicate_conflict']]);
    assert.equal(plans[2].setpointW, -5000);
  });

  test('cancel ends it early; cancel of an unknown id is rejected; newer overlapping supersedes', () => {
    const plans = run(noDeparture, [
      [0, { commands: [dispatchCmd('a', -5000, 600, T0)] }],
      [10, { commands: [dispatchCmd('b', -3000, 600, T0 + 10_000)] }],
      [20, { commands: [cancelCmd('b', T0 + 20_000), cancelCmd('nope', T0 + 20_000)] }],
    ]);
    assert.deepEqual(plans[1].responses.map((r) => `${r.id}:${r.status}`), ['a:superseded', 'b:accepted', 'b:active']);
    assert.equal(plans[1].setpointW, -3000);
    assert.deepEqual(plans[2].responses.map((r) => `${r.id}:${r.status}:${r.reason ?? ''}`), ['b:cancelled:', 'nope:rejected:unknown_id']);
    assert.equal(plans[2].setpointW, 0);
    assert.deepEqual(plans[2].finished.map((r) => r.id), ['b']);
  });

  test('unplug during a dispatch: curtailed with reason no_vehicle, mode idle', () => {
    const plans = run(noDeparture, [
      [0, { commands: [dispatchCmd('u', -5000, 600, T0)] }],
      [5, { vehicle: { connected: false } }],
    ]);
    assert.equal(plans[1].setpointW, 0);
    assert.equal(plans[1].mode, 'idle');
    assert.deepEqual(plans[1].responses.map((r) => [r.status, r.reason]), [['curtailed', 'no_vehicle']]);
  });
});

describe('charging', () => {
  test('below the backup floor the car charges at once; at the target it stops', () => {
    const [p] = run(noDeparture, [[0, { vehicle: { socPct: 10 } }]]);
    assert.equal(p.mode, 'charge');
    assert.ok(p.reasons.includes('backup_reserve'));
    const [q] = run(noDeparture, [[0, { vehicle: { socPct: 80 } }]]);
    assert.equal(q.mode, 'idle');
  });

  test('departure strategy: no charging while the car can still make it; just in time otherwise', () => {
    const c = settings({ vehicle: { departureTime: '07:30', targetSocPct: 80 } });
    const evening = Date.parse('2026-11-23T20:00:00Z');
    assert.equal(decide(snapshot(evening, { vehicle: { socPct: 60 } }), c, initialMemory(evening), evening).mode, 'idle');
    const late = Date.parse('2026-11-24T05:30:00Z');
    const p = decide(snapshot(late, { vehicle: { socPct: 50 } }), c, initialMemory(late), late);
    assert.equal(p.mode, 'charge');
    assert.equal(p.setpointW, 11000);
  });
});

describe('islanding (invariant 5) and backup (invariant 2)', () => {
  const c = settings({ vehicle: { departureTime: null, backupFloorPct: 20 }, backup: { reconnectDelayS: 300, contactorTimeoutS: 2 } });

  test('grid lost: zero power and contactor open, grid-forming only once the feedback confirms', () => {
    const plans = run(c, [
      [0, {}],
      [1, { grid: { sensePresent: false }, inverter: { alarms: ['GRID_DISCONNECT'] } }],
      [2, { grid: { sensePresent: false }, contactor: { commandedClosed: false, feedbackClosed: true } }],
      [3, { grid: { sensePresent: false }, contactor: { commandedClosed: false, feedbackClosed: false } }],
    ]);
    assert.deepEqual([plans[1].mode, plans[1].setpointW, plans[1].contactorClosed, plans[1].gridForming], ['backup', 0, false, false]);
    assert.deepEqual(plans[1].loadTiersOn, [false, false]);
    assert.equal(plans[2].gridForming, false);
    assert.equal(plans[3].gridForming, true);
    assert.equal(plans[3].backup.phase, 'islanded');
  });

  test('feedback stuck closed → fault, never grid-forming', () => {
    const plans = run(c, [
      [0, { grid: { sensePresent: false } }],
      [1, { grid: { sensePresent: false }, contactor: { commandedClosed: false, feedbackClosed: true } }],
      [2.5, { grid: { sensePresent: false }, contactor: { commandedClosed: false, feedbackClosed: true } }],
      [10, { grid: { sensePresent: false }, contactor: { commandedClosed: false, feedbackClosed: true } }],
    ]);
    assert.ok(plans.every((p) => !p.gridForming));
    assert.equal(plans[2].mode, 'fault');
    assert.equal(plans[3].mode, 'fault');
    assert.ok(plans[2].events.some((e) => e.severity === 'alarm' && /contactor/.test(e.message)));
  });

  test('rejoin only after the grid is stable for the reconnect delay; a flicker restarts it', () => {
    const open = { commandedClosed: false, feedbackClosed: false };
    const island = { contactor: open, inverter: { gridForming: true } };
    const plans = run(c, [
      [0, { grid: { sensePresent: false } }],
      [1, { grid: { sensePresent: false }, contactor: open }],
      [100, { grid: { sensePresent: true }, ...island }],
      [250, { grid: { sensePresent: false }, ...island }],
      [251, { grid: { sensePresent: true }, ...island }],
      [500, { grid: { sensePresent: true }, ...island }],
      [551, { grid: { sensePresent: true }, ...island }],
      [552, { grid: { sensePresent: true }, contactor: open, inverter: { gridForming: false } }],
      [553, { grid: { sensePresent: true }, contactor: { commandedClosed: true, feedbackClosed: true } }],
    ]);
    assert.equal(plans[5].backup.phase, 'islanded', 'at 500 s the grid has been back only 249 s');
    assert.equal(plans[6].backup.phase, 'rejoining');
    assert.equal(plans[6].gridForming, false);
    assert.equal(plans[6].contactorClosed, false, 'contactor stays open until the inverter has left grid-forming');
    assert.equal(plans[7].contactorClosed, true);
    assert.equal(plans[8].backup.phase, 'on-grid');
    assert.equal(plans[8].mode, 'idle');
  });

  test('at the backup floor the house is dropped rather than the car drained', () => {
    const open = { commandedClosed: false, feedbackClosed: false };
    const plans = run(c, [
      [0, { grid: { sensePresent: false } }],
      [1, { grid: { sensePresent: false }, contactor: open, vehicle: { socPct: 21 } }],
      [2, { grid: { sensePresent: false }, contactor: open, vehicle: { socPct: 20 }, inverter: { gridForming: true } }],
    ]);
    assert.equal(plans[1].gridForming, true);
    assert.equal(plans[2].gridForming, false);
    assert.equal(plans[2].backup.phase, 'dropped');
    assert.deepEqual(plans[2].loadTiersOn, [false, false]);
  });

  test('dispatch during an outage is rejected with backup_active', () => {
    const [p] = run(c, [[0, { grid: { sensePresent: false }, commands: [dispatchCmd('x', -3000, 600, T0)] }]]);
    assert.deepEqual(p.responses.map((r) => [r.status, r.reason]), [['rejected', 'backup_active']]);
  });

  test('without backup the grid loss only zeroes the power', () => {
    const off = settings({ vehicle: { departureTime: null }, backup: { enabled: false } });
    const [p] = run(off, [[0, { grid: { sensePresent: false } }]]);
    assert.deepEqual([p.mode, p.setpointW, p.contactorClosed, p.gridForming], ['idle', 0, true, false]);
    assert.ok(p.reasons.includes('grid_down'));
  });
});
