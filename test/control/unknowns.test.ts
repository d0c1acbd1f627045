/**
 * Unknown is not zero (issue 15): what the core does when an input is missing, non-finite or out of
 * range. Each regression test is named after the hole it closes; expected figures are worked out here
 * from the documented rules and the config, never read back from limits.ts.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { decide, initialMemory } from '../../src/control/decide.ts';
import type { ControlSettings } from '../../src/config/types.ts';
import type { DispatchCommand, Memory, Plan, Snapshot } from '../../src/control/types.ts';
import { T0, cancelCmd, dispatchCmd, settings, snapshot, runDecide } from '../helpers/control.ts';

const noDeparture = settings({ vehicle: { departureTime: null } });

const run = runDecide;

const answers = (p: Plan) => p.responses.map((r) => `${r.status}${r.reason ? `:${r.reason}` : ''}`);

describe('non-finite inputs fail closed', () => {
  test('NaN SoC accepts a dispatch', () => {
    const [p] = run(noDeparture, [[0, { vehicle: { socPct: Number.NaN }, commands: [dispatchCmd('d', -7000, 600, T0)] }]]);
    assert.deepEqual(answers(p), ['rejected:soc_unknown']);
    assert.ok(p.setpointW >= 0, `setpoint ${p.setpointW}`);
    assert.equal(p.limits.maxDischargeW, 0);
    assert.ok(p.events.some((e) => e.kind === 'input' && e.message.includes('vehicle.socPct')), 'the unusable SoC is reported');
  });

  test('an unusable input is reported once when it appears, not every tick', () => {
    const plans = run(noDeparture, [
      [0, { vehicle: { socPct: Number.NaN } }],
      [1, { vehicle: { socPct: Number.NaN } }],
      [2, {}],
      [3, { vehicle: { socPct: Number.POSITIVE_INFINITY } }],
      [4, { vehicle: { socPct: Number.NaN, capacityWh: -1 } }],
    ]);
    const inputEvents = plans.map((p) => p.events.filter((e) => e.kind === 'input').length);
    assert.deepEqual(inputEvents, [1, 0, 0, 1, 1]);
    assert.match(plans[4].events.find((e) => e.kind === 'input')!.message, /vehicle\.capacityWh = -1/);
  });

  test('NaN car minimum discharges at 45 %', () => {
    // homeowner floor 50 %: a car minimum that is not a number must not take the floor with it
    const [p] = run(noDeparture, [[0, { vehicle: { socPct: 45, minSocPct: Number.NaN }, commands: [dispatchCmd('d', -7000, 600, T0)] }]]);
    assert.equal(p.floors.effectiveFloorPct, 50);
    assert.deepEqual(answers(p), ['rejected:floor']);
    assert.ok(p.setpointW >= 0, `setpoint ${p.setpointW}`);
  });

  test('NaN capacity drops the per-tick floor bound', () => {
    // 0.01 % above the floor; with the capacity unknown the documented 10 kWh assumption holds:
    // 1 Wh car-side may leave this tick, i.e. 1 Wh × 0.95 × 3600 s/h / 1 s = 3420 W on the AC side
    const c = settings({ vehicle: { departureTime: null, capacityWh: null } });
    const [p] = run(c, [[0, { vehicle: { socPct: 50.01, capacityWh: Number.NaN }, commands: [dispatchCmd('d', -9000, 600, T0)] }]]);
    const boundW = (0.01 / 100) * 10_000 * 0.95 * 3600;
    assert.ok(Number.isFinite(p.setpointW));
    assert.ok(p.setpointW < 0 && -p.setpointW <= boundW + 1e-6, `setpoint ${p.setpointW} W, bound ${boundW} W`);
    assert.equal(p.limits.dischargeLimitedBy, 'floor');
  });

  test('NaN rating gives a NaN setpoint', () => {
    const nan = Number.NaN;
    const inverter = { maxDischargeW: nan, maxChargeW: nan, ratedW: nan };
    const [d] = run(noDeparture, [[0, { inverter, commands: [dispatchCmd('d', -5000, 600, T0)] }]]);
    assert.ok(Number.isFinite(d.setpointW) && Number.isFinite(d.limits.maxDischargeW) && Number.isFinite(d.flex.maxDischargeW), JSON.stringify(d.limits));
    // a rating nobody reported allows nothing
    assert.equal(d.setpointW, 0);
    const [ch] = run(noDeparture, [[0, { inverter: { maxChargeW: Number.POSITIVE_INFINITY }, commands: [dispatchCmd('c', 9000, 600, T0)] }]]);
    assert.ok(Number.isFinite(ch.setpointW));
    assert.equal(ch.setpointW, 0);
  });
});

describe('unknown capacity and the departure target', () => {
  // 06:00 UTC, departure 07:30 UTC, 30 min margin: 1 h of charging at 11 kW × 0.95 = 10.45 kWh
  const c = settings({ timezone: 'UTC', vehicle: { departureTime: '07:30', targetSocPct: 80, departureMarginS: 1800, capacityWh: null, assumedCapacityWhForDeparture: 100_000 } });
  const now = Date.parse('2026-11-24T06:00:00Z');

  test('unknown capacity erases the departure floor', () => {
    const snap = snapshot(now, { vehicle: { socPct: 60, capacityWh: undefined }, commands: [dispatchCmd('d', -7000, 600, now)] });
    const p = decide(snap, c, initialMemory(now), now);
    // the floor with the assumed 100 kWh: 80 − 10 450 / 100 000 × 100 = 69.55 %
    const expectedFloor = 80 - ((11_000 * 0.95 * 1) / 100_000) * 100;
    assert.ok(Math.abs((p.floors.departureFloorPct ?? Number.NaN) - expectedFloor) < 1e-9, `departure floor ${p.floors.departureFloorPct}`);
    assert.deepEqual(answers(p), ['rejected:departure']);
    assert.ok(p.setpointW >= 0);
    // a known 60 kWh refuses too (80 − 17.4 = 62.6 %): unknown never does better than known
    const known = decide(snapshot(now, { vehicle: { socPct: 60, capacityWh: 60_000 }, commands: [dispatchCmd('d', -7000, 600, now)] }), c, initialMemory(now), now);
    assert.deepEqual(answers(known), ['rejected:departure']);
  });

  test('departureAtRisk agrees with the departure floor when the capacity is unknown', () => {
    // 20 % at 05:30, 2 h: 20.9 kWh reachable; with 100 kWh assumed that is 20.9 % → 40.9 % < 80 %
    const early = Date.parse('2026-11-24T05:30:00Z');
    const p = decide(snapshot(early, { vehicle: { socPct: 20, capacityWh: undefined } }), c, initialMemory(early), early);
    assert.equal(p.departureAtRisk, true);
    assert.ok(p.events.some((e) => e.kind === 'departure'));
  });
});

describe('a house load on every install', () => {
  const c = settings({ vehicle: { departureTime: null }, site: { gridImportLimitW: 13_800, gridExportLimitW: 3000, assumedHouseLoadW: 8000, houseLoadMaxAgeS: 10 } });

  test('grid import limit ignores the house', () => {
    // 11 kW of charging asked, no site meter: 13.8 kW − the assumed 8 kW house = 5.8 kW at most
    const [p] = run(c, [[0, { houseLoadW: undefined, vehicle: { socPct: 40 }, commands: [dispatchCmd('c', 11_000, 600, T0)] }]]);
    assert.equal(p.setpointW, 5800);
    assert.equal(p.limits.chargeLimitedBy, 'grid_limit');
  });

  test('a stale or faulty site meter falls back to the assumption, never to 0', () => {
    const stale = run(c, [[0, { houseLoadW: 200, houseLoadAtMs: T0 - 60_000, vehicle: { socPct: 40 }, commands: [dispatchCmd('c', 11_000, 600, T0)] }]]);
    assert.equal(stale[0].setpointW, 5800);
    const faulty = run(c, [[0, { houseLoadW: 200, houseLoadAtMs: T0, houseLoadFault: 'timeout: meter', vehicle: { socPct: 40 }, commands: [dispatchCmd('c', 11_000, 600, T0)] }]]);
    assert.equal(faulty[0].setpointW, 5800);
    const fresh = run(c, [[0, { houseLoadW: 200, houseLoadAtMs: T0 - 2000, vehicle: { socPct: 40 }, commands: [dispatchCmd('c', 11_000, 600, T0)] }]]);
    assert.equal(fresh[0].setpointW, 11_000);
  });

  test('export: an unmetered house absorbs nothing', () => {
    const [p] = run(c, [[0, { houseLoadW: undefined, commands: [dispatchCmd('d', -9000, 600, T0)] }]]);
    assert.equal(p.setpointW, -3000);
    const [q] = run(c, [[0, { houseLoadW: 1000, houseLoadAtMs: T0, commands: [dispatchCmd('d', -9000, 600, T0)] }]]);
    assert.equal(q.setpointW, -4000);
  });
});

describe('consent to discharge is the core\'s decision', () => {
  // the car sent no discharge limit and nothing about bidirectional transfer; the charger can export 11 040 W
  const silentCar = { maxDischargeW: undefined, bidirectional: undefined, chargerExportCapabilityW: 11_040 };

  test('a car that never agreed is not discharged by default: no_consent', () => {
    const [p] = run(noDeparture, [[0, { vehicle: silentCar, commands: [dispatchCmd('d', -7000, 600, T0)] }]]);
    assert.deepEqual(answers(p), ['rejected:no_consent']);
    assert.equal(p.setpointW, 0);
    assert.equal(p.flex.dischargeableWh, 0);
  });

  test('with vehicle.dischargeWithoutCarConsent the charger capability bounds it', () => {
    const c = settings({ vehicle: { departureTime: null, dischargeWithoutCarConsent: true } });
    const [p] = run(c, [[0, { vehicle: silentCar, inverter: { maxDischargeW: 20_000 }, commands: [dispatchCmd('d', -15_000, 600, T0)] }]]);
    assert.deepEqual(answers(p), ['accepted', 'active']);
    assert.equal(p.setpointW, -11_040);
  });

  test('a car that said no stays not_bidirectional whatever the setting', () => {
    const c = settings({ vehicle: { departureTime: null, dischargeWithoutCarConsent: true } });
    const [p] = run(c, [[0, { vehicle: { ...silentCar, bidirectional: false }, commands: [dispatchCmd('d', -7000, 600, T0)] }]]);
    assert.deepEqual(answers(p), ['rejected:not_bidirectional']);
  });
});

describe('storage that cannot write', () => {
  test('a store that cannot write still takes dispatches', () => {
    const [p] = run(noDeparture, [[0, { storage: { writable: false, fault: 'SQLITE_FULL' }, commands: [dispatchCmd('d', -7000, 600, T0)] }]]);
    assert.deepEqual(answers(p), ['rejected:storage']);
    assert.equal(p.setpointW, 0);
    assert.equal(p.flex.maxDischargeW, 0);
  });

  test('a running dispatch goes to zero power, curtailed once with reason storage', () => {
    const plans = run(noDeparture, [
      [0, { commands: [dispatchCmd('d', -7000, 600, T0)] }],
      [1, { storage: { writable: false } }],
      [2, { storage: { writable: false } }],
      [3, { storage: { writable: false } }],
    ]);
    assert.equal(plans[0].setpointW, -7000);
    assert.deepEqual(plans.slice(1).map((p) => p.setpointW), [0, 0, 0]);
    assert.deepEqual(plans.slice(1).flatMap(answers), ['curtailed:storage']);
  });
});

describe('answers the documentation promises', () => {
  test('a dispatch at the floor is accepted at 0 W', () => {
    // 1e-7 % above the floor: not one watt may go out this tick
    const [p] = run(noDeparture, [[0, { vehicle: { socPct: 50 + 1e-7 }, commands: [dispatchCmd('d', -7000, 600, T0)] }]]);
    assert.deepEqual(answers(p), ['rejected:floor']);
  });

  test('a re-sent id of a finished dispatch answers already_finished', () => {
    const cmd = dispatchCmd('fin', -3000, 60, T0);
    const plans = run(noDeparture, [
      [0, { commands: [cmd] }],
      [61, {}],
      [70, { commands: [{ ...cmd, receivedMs: T0 + 70_000 }] }],
      [71, { commands: [cancelCmd('fin', T0 + 71_000)] }],
    ]);
    assert.deepEqual(answers(plans[1]), ['completed']);
    assert.deepEqual(answers(plans[2]), ['completed:already_finished']);
    assert.deepEqual(answers(plans[3]), ['completed:already_finished']);
    assert.equal(plans[2].setpointW, 0);
  });

  test('a dispatch whose numbers are not numbers is invalid, and nothing of it runs', () => {
    const request = { id: 'nan', powerW: Number.NaN, durationS: 600 };
    const bad: DispatchCommand = { kind: 'dispatch', request, body: JSON.stringify(request), receivedMs: T0, source: 'device' };
    const [p] = run(noDeparture, [[0, { commands: [bad] }]]);
    assert.deepEqual(answers(p), ['rejected:invalid']);
    assert.equal(p.setpointW, 0);
    assert.equal(p.memory.dispatches.length, 0);
  });
});

// ---------------------------------------------------------------------------------------------------
// Every numeric field of the snapshot, with NaN and ±Infinity

type NumericKeys<T> = { [K in keyof T]-?: NonNullable<T[K]> extends number ? K : never }[keyof T];
/** Every numeric field present: adding a numeric field to Snapshot without adding it here fails `tsc`. */
type Full<T> = T & Required<Pick<T, NumericKeys<T>>>;

function fullSnapshot(now: number): Snapshot & { vehicle: Full<Snapshot['vehicle']>; inverter: Full<Snapshot['inverter']> } & Required<Pick<Snapshot, NumericKeys<Snapshot>>> {
  return {
    wallMs: now,
    vehicle: {
      connected: true, socPct: 70, socAtMs: now, socSource: 'vehicle', capacityWh: 60_000, minSocPct: 20, maxSocPct: 100, targetSocPct: 80,
      departureAtMs: now + 10 * 3600_000, maxChargeW: 11_000, maxDischargeW: 11_000, bidirectional: true, chargerExportCapabilityW: 11_040, atMs: now,
    },
    inverter: { atMs: now, powerW: 0, ratedW: 11_000, maxChargeW: 11_000, maxDischargeW: 11_000, efficiency: 0.95, gridForming: false, connected: true, gridAlarm: false, islandCapable: true },
    grid: { sensePresent: true },
    contactor: { installed: true, feedbackClosed: true, commandedClosed: true },
    estopPressed: false,
    houseLoadW: 500,
    houseLoadAtMs: now,
    gridPowerW: 1200,
    gridPowerAtMs: now,
    pvPowerW: 300,
    pvPowerAtMs: now,
    phaseCurrentsA: [6, 5, 4],
    phaseCurrentsAtMs: now,
    loadTierCount: 2,
    commands: [dispatchCmd('d', -7000, 600, now)],
    energy: { exportedWh: 0, importedWh: 0, carSideWh: 0 },
  };
}

/** Every path in `o` that holds a number (arrays by index). */
function numericPaths(o: unknown, prefix: (string | number)[] = []): (string | number)[][] {
  if (typeof o === 'number') return [prefix];
  if (o === null || typeof o !== 'object') return [];
  return Object.entries(o).flatMap(([k, v]) => numericPaths(v, [...prefix, Array.isArray(o) ? Number(k) : k]));
}

function withPath(s: Snapshot, path: (string | number)[], value: number | undefined): Snapshot {
  const copy = structuredClone(s) as unknown as Record<string | number, unknown>;
  let o = copy;
  for (const k of path.slice(0, -1)) o = o[k] as Record<string | number, unknown>;
  const last = path[path.length - 1];
  if (value === undefined) delete o[last];
  else o[last] = value;
  return copy as unknown as Snapshot;
}

function allFinite(p: Plan): string | undefined {
  const figures: [string, number | undefined][] = [
    ['setpointW', p.setpointW], ['limits.maxChargeW', p.limits.maxChargeW], ['limits.maxDischargeW', p.limits.maxDischargeW],
    ['floors.effectiveFloorPct', p.floors.effectiveFloorPct], ['floors.departureFloorPct', p.floors.departureFloorPct ?? 0],
    ['flex.maxDischargeW', p.flex.maxDischargeW], ['flex.maxChargeW', p.flex.maxChargeW], ['flex.dischargeableWh', p.flex.dischargeableWh], ['flex.chargeableWh', p.flex.chargeableWh],
    ...p.responses.flatMap((r) => [[`${r.id}.acceptedW`, r.acceptedW ?? 0], [`${r.id}.deliveredWh`, r.deliveredWh ?? 0]] as [string, number][]),
    ...p.memory.dispatches.flatMap((r) => [[`${r.id}.exportedWh`, r.exportedWh], [`${r.id}.importedWh`, r.importedWh], [`${r.id}.startMs`, r.startMs], [`${r.id}.endMs`, r.endMs]] as [string, number][]),
  ];
  const bad = figures.filter(([, v]) => !Number.isFinite(v));
  return bad.length ? bad.map(([k, v]) => `${k}=${v}`).join(', ') : undefined;
}

/**
 * `bad` never discharges more than `missing`, never charges past the limits `missing` is under, and
 * refuses whatever `missing` refuses. (Charging itself may differ: a SoC of unknown age is dropped, and a
 * car with no SoC charges until it ends the charge itself.)
 */
function noMoreThan(bad: Plan, missing: Plan, where: string): void {
  if (bad.setpointW < 0) assert.ok(missing.setpointW < 0 && -bad.setpointW <= -missing.setpointW, `${where}: discharges ${bad.setpointW} W where a missing value gives ${missing.setpointW} W`);
  if (bad.setpointW > 0) assert.ok(bad.setpointW <= missing.limits.maxChargeW, `${where}: charges ${bad.setpointW} W past ${missing.limits.maxChargeW} W (${missing.limits.chargeLimitedBy})`);
  const refused = (p: Plan) => p.responses.filter((r) => r.status === 'rejected').map((r) => r.id);
  for (const id of refused(missing)) assert.ok(refused(bad).includes(id), `${where}: ${id} refused with the value missing, not with it unusable`);
}

describe('every numeric snapshot field, non-finite', () => {
  const c = settings({ vehicle: { departureTime: null }, site: { gridImportLimitW: 20_000, gridExportLimitW: 20_000 } });
  const base = fullSnapshot(T0);
  const paths = numericPaths(base);

  test('the fixture has every field and, as it is, discharges', () => {
    assert.ok(paths.length >= 25, `${paths.length} numeric fields`);
    const p = decide(base, c, initialMemory(T0), T0);
    assert.equal(p.setpointW, -7000);
  });

  for (const path of paths) {
    const name = path.join('.');
    test(`${name}: NaN, +Infinity, -Infinity are treated as missing`, () => {
      const missing1 = decide(withPath(base, path, undefined), c, initialMemory(T0), T0);
      // a dispatch already running when the value goes bad
      const running = decide(base, c, initialMemory(T0), T0).memory;
      const later = { ...base, commands: [] as DispatchCommand[] };
      const t1 = T0 + 1000;
      const moved = (s: Snapshot) => ({ ...s, vehicle: { ...s.vehicle, socAtMs: t1, atMs: t1 }, inverter: { ...s.inverter, atMs: t1 }, houseLoadAtMs: t1, gridPowerAtMs: t1, pvPowerAtMs: t1, phaseCurrentsAtMs: t1 });
      const missing2 = name.startsWith('commands') ? undefined : decide(withPath(moved(later), path, undefined), c, running, t1);
      for (const v of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
        const where = `${name} = ${v}`;
        const p1 = decide(withPath(base, path, v), c, initialMemory(T0), T0);
        assert.equal(allFinite(p1), undefined, where);
        noMoreThan(p1, missing1, where);
        if (missing2) {
          const p2 = decide(withPath(moved(later), path, v), c, running, t1);
          assert.equal(allFinite(p2), undefined, `${where} (running)`);
          noMoreThan(p2, missing2, `${where} (running)`);
        }
      }
    });
  }
});
