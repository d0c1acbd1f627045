/**
 * Quick actions in the control core: boost, V2G pause and backup reserve act as homeowner limits, end on
 * the calendar clock (Snapshot.wallMs), and never break the invariants (floor, departure over the
 * aggregator). Expected figures are worked out here from the snapshot's numbers, not taken from limits.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decide, initialMemory } from '../../src/control/decide.ts';
import type { OverridesConfig } from '../../src/config/types.ts';
import type { Memory } from '../../src/control/types.ts';
import { T0, dispatchCmd, settings, snapshot } from '../helpers/control.ts';

const iso = (ms: number) => new Date(ms).toISOString();
const HOUR = 3_600_000;
/** The snapshot's car and inverter (test/helpers/control.ts): 60 kWh, 11 kW both ways, efficiency 0.95. */
const CAP_WH = 60_000;
const EFF = 0.95;
const INVERTER_W = 11_000;

function cfg(overrides: OverridesConfig, vehicle: Record<string, unknown> = {}) {
  return settings({ vehicle: { departureTime: null, v2gEnabled: true, targetSocPct: 80, dischargeFloorPct: 50, ...vehicle }, overrides } as never);
}

function run(c: ReturnType<typeof cfg>, steps: { atMs: number; wallMs?: number; over?: Parameters<typeof snapshot>[1] }[], mem: Memory = initialMemory(T0)) {
  const plans = [];
  for (const st of steps) {
    const p = decide(snapshot(st.atMs, { ...(st.over ?? {}), wallMs: st.wallMs ?? st.atMs } as never), c, mem, st.atMs);
    mem = p.memory;
    plans.push(p);
  }
  return plans;
}

test('boost: charges now at the full allowed power to its target, and stops charging at the target', () => {
  const c = cfg({ boost: { targetSocPct: 95, until: iso(T0 + 6 * HOUR) } });
  const [p1, p2] = run(c, [
    { atMs: T0, over: { vehicle: { socPct: 85 } } },
    { atMs: T0 + 1000, over: { vehicle: { socPct: 95 } } },
  ]);
  // the smallest charge limit: inverter 11,000 W; the car's 11,000 W at its side is 11,000 / 0.95 at the AC side
  assert.equal(p1.mode, 'charge');
  assert.equal(p1.setpointW, Math.floor(Math.min(INVERTER_W, 11_000 / EFF)));
  assert.ok(p1.reasons.includes('boost'), p1.reasons.join(','));
  assert.equal(p1.floors.overrideFloorPct, 95);
  assert.equal(p1.floors.effectiveFloorPct, 95);
  assert.equal(p2.mode, 'idle', 'at the target the boost charges no more');
  assert.equal(p2.setpointW, 0);
});

test('without an override the same car idles (the boost is what charges it)', () => {
  const [p] = run(cfg({}), [{ atMs: T0, over: { vehicle: { socPct: 85 } } }]);
  assert.equal(p.mode, 'idle');
  assert.equal(p.floors.overrideFloorPct, undefined);
  assert.equal(p.floors.effectiveFloorPct, 50);
});

test('an override ends on the calendar clock, not on the monotonic one', () => {
  const wall = Date.parse('2026-12-01T20:00:00Z');
  const c = cfg({ boost: { targetSocPct: 95, until: iso(wall + HOUR) } });
  // the monotonic clock is anchored days away from the calendar: only wallMs decides
  const mono = wall - 9 * 24 * HOUR;
  const [before, after] = run(c, [
    { atMs: mono, wallMs: wall, over: { vehicle: { socPct: 85 } } },
    { atMs: mono + 1000, wallMs: wall + HOUR, over: { vehicle: { socPct: 85 } } },
  ], initialMemory(mono));
  assert.ok(before.reasons.includes('boost'), before.reasons.join(','));
  assert.equal(after.mode, 'idle', 'the end is exclusive: at until the boost is over');
  assert.equal(after.floors.overrideFloorPct, undefined);
});

test('an override whose end has passed, or is not a time, is not in force', () => {
  for (const until of [iso(T0 - 1000), 'not a time', '']) {
    const [p] = run(cfg({ boost: { targetSocPct: 95, until } }), [{ atMs: T0, over: { vehicle: { socPct: 85 } } }]);
    assert.equal(p.mode, 'idle', until);
  }
});

test('boost outranks a discharge dispatch: a new one is refused at the boost floor, a running one is curtailed (homeowner_limit) and the car charges', () => {
  const c = cfg({ boost: { targetSocPct: 95, until: iso(T0 + 6 * HOUR) } });
  const [refused] = run(c, [{ atMs: T0, over: { vehicle: { socPct: 85 }, commands: [dispatchCmd('d0', -5000, 600, T0)] } }]);
  assert.ok(refused.responses.some((r) => r.id === 'd0' && r.status === 'rejected' && r.reason === 'floor'), JSON.stringify(refused.responses));

  // a dispatch running before the boost was set
  const [running] = run(cfg({}), [{ atMs: T0, over: { vehicle: { socPct: 85 }, commands: [dispatchCmd('d1', -5000, 600, T0)] } }]);
  assert.ok(running.setpointW < 0);
  const [p1, p2] = run(c, [{ atMs: T0 + 1000, over: { vehicle: { socPct: 85 } } }, { atMs: T0 + 2000, over: { vehicle: { socPct: 85 } } }], running.memory);
  const all = [...p1.responses, ...p2.responses];
  assert.ok(p1.setpointW > 0 && p2.setpointW > 0, `${p1.setpointW} ${p2.setpointW}`);
  assert.ok(p1.reasons.includes('boost'), p1.reasons.join(','));
  assert.ok(all.some((r) => r.id === 'd1' && r.status === 'curtailed' && r.reason === 'homeowner_limit'), JSON.stringify(all));
});

test('pause V2G: a new dispatch is refused and a running one ends; after the pause a dispatch runs again', () => {
  const pauseEnd = T0 + 2 * HOUR;
  const c = cfg({ pauseV2g: { until: iso(pauseEnd) } });
  const [refused] = run(c, [{ atMs: T0, over: { commands: [dispatchCmd('d1', -5000, 600, T0)] } }]);
  assert.ok(refused.responses.some((r) => r.id === 'd1' && r.status === 'rejected' && r.reason === 'v2g_disabled'), JSON.stringify(refused.responses));
  assert.equal(refused.setpointW, 0);
  assert.equal(refused.flex.maxDischargeW, 0);

  // a dispatch running when the pause is set ends at once
  const free = cfg({});
  const [running] = run(free, [{ atMs: T0, over: { commands: [dispatchCmd('d2', -5000, 3600, T0)] } }]);
  assert.ok(running.setpointW < 0);
  const [paused] = run(c, [{ atMs: T0 + 1000 }], running.memory);
  assert.ok(paused.responses.some((r) => r.id === 'd2' && r.status === 'cancelled' && r.reason === 'v2g_disabled'), JSON.stringify(paused.responses));
  assert.equal(paused.setpointW, 0);

  const [after] = run(c, [{ atMs: pauseEnd, over: { commands: [dispatchCmd('d3', -5000, 600, pauseEnd)] } }], paused.memory);
  assert.ok(after.responses.some((r) => r.id === 'd3' && r.status === 'accepted'), JSON.stringify(after.responses));
  assert.ok(after.setpointW < 0);
});

test('backup reserve: charges up to its level, then holds it against the grid', () => {
  const c = cfg({ backupReserve: { socPct: 80, until: iso(T0 + 12 * HOUR) } });
  const [low] = run(c, [{ atMs: T0, over: { vehicle: { socPct: 70 } } }]);
  assert.equal(low.mode, 'charge');
  assert.ok(low.reasons.includes('backup_reserve'), low.reasons.join(','));

  const [high] = run(c, [{ atMs: T0, over: { vehicle: { socPct: 85 }, commands: [dispatchCmd('d1', -11_000, 3600, T0)] } }]);
  assert.equal(high.floors.effectiveFloorPct, 80);
  // energy above the reserve the aggregator is offered: (85 − 80) % of 60 kWh, AC side
  assert.equal(high.flex.dischargeableWh, Math.round((5 / 100) * CAP_WH * EFF));
  // and no step crosses the reserve: what one 1 s tick may take is at most the energy above it
  const stepWh = (-high.setpointW / EFF) * (1 / 3600);
  assert.ok(stepWh <= (5 / 100) * CAP_WH + 1e-9);
});

test('the departure still wins with an override in force: below the departure floor the car charges for it', () => {
  // departure in 2 h, target 90 %, SoC 40 %: it needs charging now whatever the aggregator wants
  const depAt = T0 + 2 * HOUR;
  const hhmm = new Date(depAt).toISOString().slice(11, 16);
  const c = cfg({ pauseV2g: { until: iso(T0 + 6 * HOUR) }, backupReserve: { socPct: 30, until: iso(T0 + 6 * HOUR) } }, { departureTime: hhmm, targetSocPct: 90 });
  const [p] = run(c, [{ atMs: T0, over: { vehicle: { socPct: 40 }, commands: [dispatchCmd('d1', -5000, 600, T0)] } }]);
  assert.equal(p.mode, 'charge');
  assert.ok(p.setpointW > 0);
  assert.ok(p.reasons.includes('departure'), p.reasons.join(','));
});

test('property: with any overrides in force, no discharge at or below the higher of the floor and the override floors', () => {
  const arb = fc.record({
    floor: fc.integer({ min: 20, max: 80 }),
    boost: fc.option(fc.record({ target: fc.integer({ min: 1, max: 100 }), endS: fc.integer({ min: -600, max: 7200 }) }), { nil: undefined }),
    reserve: fc.option(fc.record({ soc: fc.integer({ min: 1, max: 100 }), endS: fc.integer({ min: -600, max: 7200 }) }), { nil: undefined }),
    pauseEndS: fc.option(fc.integer({ min: -600, max: 7200 }), { nil: undefined }),
    soc0: fc.double({ min: 0, max: 100, noNaN: true }),
    steps: fc.array(fc.record({ dtS: fc.constantFrom(1, 1, 1, 600), dispatchW: fc.option(fc.integer({ min: -22_000, max: 11_000 }), { nil: undefined, freq: 3 }) }), { minLength: 1, maxLength: 40 }),
  });
  fc.assert(
    fc.property(arb, (w) => {
      const overrides: OverridesConfig = {
        boost: w.boost ? { targetSocPct: w.boost.target, until: iso(T0 + w.boost.endS * 1000) } : null,
        backupReserve: w.reserve ? { socPct: w.reserve.soc, until: iso(T0 + w.reserve.endS * 1000) } : null,
        pauseV2g: w.pauseEndS !== undefined ? { until: iso(T0 + w.pauseEndS * 1000) } : null,
      };
      const c = cfg(overrides, { dischargeFloorPct: w.floor, backupFloorPct: Math.min(20, w.floor) });
      let mem = initialMemory(T0);
      let now = T0;
      let soc = w.soc0;
      let n = 0;
      for (const st of w.steps) {
        now += st.dtS * 1000;
        const commands = st.dispatchW !== undefined ? [dispatchCmd(`p${n++}`, st.dispatchW, 3600, now)] : [];
        const p = decide(snapshot(now, { vehicle: { socPct: soc }, commands, wallMs: now } as never), c, mem, now);
        mem = p.memory;
        // the oracle: the floors in force at this calendar instant, from the override times themselves
        const inForce = (endS: number) => now < T0 + endS * 1000;
        const oracleFloor = Math.max(w.floor, w.boost && inForce(w.boost.endS) ? w.boost.target : 0, w.reserve && inForce(w.reserve.endS) ? w.reserve.soc : 0);
        const paused = w.pauseEndS !== undefined && inForce(w.pauseEndS);
        if (p.setpointW < 0) {
          assert.ok(soc > oracleFloor, `discharge at SoC ${soc} with the floor ${oracleFloor}`);
          assert.ok(!paused, 'discharge during a V2G pause');
          // one tick (control.tickS = 1 s) of this power must not cross the floor
          const tickWh = (-p.setpointW / EFF) / 3600;
          assert.ok(soc - (tickWh / CAP_WH) * 100 >= oracleFloor - 1e-9, `a step crosses the floor ${oracleFloor} from ${soc}`);
        }
        // the car follows: one tick of the plan's power (the simulation of the world, not of the core)
        soc = Math.max(0, Math.min(100, soc + ((p.setpointW >= 0 ? p.setpointW * EFF : p.setpointW / EFF) / 3600 / CAP_WH) * 100));
      }
    }),
    { numRuns: 300 },
  );
});

test('a quick action coming into force and ending is said once each, with its end in local time', () => {
  const end = T0 + 6 * HOUR;
  const c = { ...cfg({ boost: { targetSocPct: 95, until: iso(end) } }), timezone: 'Europe/Paris' };
  const [first, second, after] = run(c, [
    { atMs: T0, over: { vehicle: { socPct: 85 } } },
    { atMs: T0 + 1000, over: { vehicle: { socPct: 85 } } },
    { atMs: end, over: { vehicle: { socPct: 85 } } },
  ]);
  const said = (p: typeof first) => p.events.filter((e) => e.kind === 'override').map((e) => e.message);
  // 6 h after 17:00 UTC is 23:00 UTC, midnight in Paris (UTC+1 in November)
  assert.deepEqual(said(first), ['quick action: charge now to 95 % until 2026-11-24 00:00 (Europe/Paris)']);
  assert.deepEqual(said(second), [], 'said once');
  assert.deepEqual(said(after), ['quick action ended: charge now to 95 % (its time is up)']);
});
