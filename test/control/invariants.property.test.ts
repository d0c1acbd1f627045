/**
 * Invariants 1–5 of the design over thousands of random input sequences: SoC, limits, dispatches,
 * grid edges, stale and faulty inputs, contactors that lag or stick. Each step feeds decide() a snapshot
 * of a small world that follows the previous plan the way real hardware would.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decide, initialMemory } from '../../src/control/decide.ts';
import { floorBoundW } from '../../src/control/limits.ts';
import type { DispatchCommand, Memory, Plan, Snapshot } from '../../src/control/types.ts';
import { T0, settings } from '../helpers/control.ts';

const stepArb = fc.record({
  dtS: fc.constantFrom(0.2, 1, 1, 1, 2, 5, 30, 120, 400),
  socDelta: fc.double({ min: -3, max: 3, noNaN: true }),
  gridSense: fc.constantFrom<boolean | 'keep'>('keep', 'keep', 'keep', 'keep', true, false),
  gridAlarm: fc.boolean(),
  inverterAgeS: fc.constantFrom(0, 0, 0, 0, 1, 4, 6, 60),
  socAgeS: fc.constantFrom(0, 0, 0, 0, 10, 29, 31, 300),
  inverterFault: fc.constantFrom(undefined, undefined, undefined, undefined, undefined, 'timeout: unit 1'),
  estop: fc.constantFrom(false, false, false, false, false, false, false, true),
  contactorLag: fc.constantFrom(0, 0, 1, 2),
  stuck: fc.constantFrom<undefined | boolean>(undefined, undefined, undefined, undefined, undefined, undefined, true, false),
  connected: fc.constantFrom(true, true, true, true, true, true, false),
  vehicleMaxDischargeW: fc.constantFrom(undefined, 0, 3000, 7000, 11000, 20000),
  vehicleMaxChargeW: fc.constantFrom(undefined, 0, 3700, 11000),
  minSocPct: fc.constantFrom(undefined, undefined, 30, 60),
  houseLoadW: fc.constantFrom(undefined, 0, 300, 2000, 9000),
  command: fc.option(
    fc.oneof(
      fc.record({ kind: fc.constant<'dispatch'>('dispatch'), id: fc.constantFrom('a', 'b', 'c', 'd'), powerW: fc.integer({ min: -30000, max: 30000 }), durationS: fc.integer({ min: 1, max: 7200 }), startInS: fc.constantFrom(undefined, 0, 5, 300), expiresInS: fc.constantFrom(undefined, -10, 2, 600) }),
      fc.record({ kind: fc.constant<'cancel'>('cancel'), id: fc.constantFrom('a', 'b', 'c', 'x') }),
    ),
    { freq: 3 },
  ),
});

const configArb = fc.record({
  dischargeFloorPct: fc.integer({ min: 20, max: 80 }),
  backupFloorPct: fc.integer({ min: 5, max: 20 }),
  maxDischargeW: fc.constantFrom(null, 2000, 8000),
  maxChargeW: fc.constantFrom(null, 3000),
  gridImportLimitW: fc.constantFrom(null, 5000, 12000),
  gridExportLimitW: fc.constantFrom(null, 0, 4000),
  departureTime: fc.constantFrom(null, '07:30', '18:00'),
  backupEnabled: fc.boolean(),
  capacityWh: fc.constantFrom(20000, 60000, 100000),
});

test('invariants 1–5 hold over random sequences; the setpoint is always within every limit', () => {
  // how often each guarded situation came up, so the property cannot pass by never reaching it
  const seen = { discharging: 0, gridForming: 0, rejoined: 0, faults: 0, dropped: 0, curtailed: 0 };
  fc.assert(
    fc.property(configArb, fc.double({ min: 0, max: 100, noNaN: true }), fc.array(stepArb, { minLength: 5, maxLength: 60 }), (cfg, soc0, steps) => {
      const c = settings({
        vehicle: { dischargeFloorPct: cfg.dischargeFloorPct, backupFloorPct: cfg.backupFloorPct, maxDischargeW: cfg.maxDischargeW, maxChargeW: cfg.maxChargeW, departureTime: cfg.departureTime },
        site: { gridImportLimitW: cfg.gridImportLimitW, gridExportLimitW: cfg.gridExportLimitW },
        backup: { enabled: cfg.backupEnabled, reconnectDelayS: 300, contactorTimeoutS: 2 },
        control: { tickS: 1, socMaxAgeS: 30, inverterMaxAgeS: 5 },
      });
      let now = T0;
      let soc = soc0;
      let mem: Memory = initialMemory(now);
      let gridSense = true;
      let gridSenseSince = now;
      let commandedClosed = true;
      let feedbackClosed = true;
      let feedbackPending: { closed: boolean; atStep: number } | undefined;
      let inverterForming = false;
      let prev: Plan | undefined;
      const firstAnswer = new Map<string, string>();

      steps.forEach((st, i) => {
        now += st.dtS * 1000;
        soc = Math.min(100, Math.max(0, soc + st.socDelta));
        if (st.gridSense !== 'keep' && st.gridSense !== gridSense) {
          gridSense = st.gridSense;
          gridSenseSince = now;
        }
        // the contactor's feedback follows the last command after a lag, unless it is stuck
        if (feedbackPending && i >= feedbackPending.atStep) {
          feedbackClosed = feedbackPending.closed;
          feedbackPending = undefined;
        }
        if (st.stuck !== undefined) feedbackClosed = st.stuck;
        const cmds: DispatchCommand[] = [];
        if (st.command?.kind === 'dispatch') {
          const req = {
            id: st.command.id, powerW: st.command.powerW, durationS: st.command.durationS,
            startMs: st.command.startInS === undefined ? undefined : now + st.command.startInS * 1000,
            expiresAtMs: st.command.expiresInS === undefined ? undefined : now + st.command.expiresInS * 1000,
          };
          cmds.push({ kind: 'dispatch', request: req, body: JSON.stringify(req), receivedMs: now, source: 'device' });
        } else if (st.command?.kind === 'cancel') cmds.push({ kind: 'cancel', id: st.command.id, receivedMs: now, source: 'device' });

        const s: Snapshot = {
          vehicle: {
            connected: st.connected, socPct: soc, socAtMs: now - st.socAgeS * 1000, socSource: 'vehicle', capacityWh: cfg.capacityWh,
            maxChargeW: st.vehicleMaxChargeW, maxDischargeW: st.vehicleMaxDischargeW, minSocPct: st.minSocPct, bidirectional: st.vehicleMaxDischargeW !== 0, atMs: now,
          },
          inverter: {
            atMs: now - st.inverterAgeS * 1000, powerW: prev?.setpointW ?? 0, ratedW: 11000, maxChargeW: 11000, maxDischargeW: 11000, efficiency: 0.95,
            gridForming: inverterForming, connected: true, gridAlarm: st.gridAlarm && !gridSense, islandCapable: true, fault: st.inverterFault,
          },
          grid: { sensePresent: gridSense },
          contactor: { installed: true, feedbackClosed, commandedClosed },
          estopPressed: st.estop,
          houseLoadW: st.houseLoadW,
          loadTierCount: 2,
          commands: cmds,
          energy: { exportedWh: 0, importedWh: 0, carSideWh: 0 },
        };
        const p = decide(s, c, mem, now);
        const ctx = () => JSON.stringify({ step: i, cfg, st, soc, plan: { mode: p.mode, sp: p.setpointW, gf: p.gridForming, cc: p.contactorClosed, phase: p.backup.phase, limits: p.limits, floors: p.floors } });

        // invariant 4: within every limit, computed here independently of the core
        const house = st.houseLoadW ?? 0;
        const chargeCaps = [11000, st.vehicleMaxChargeW ?? Infinity, cfg.maxChargeW ?? Infinity, cfg.gridImportLimitW === null ? Infinity : cfg.gridImportLimitW - house];
        const dischargeCaps = [11000, st.vehicleMaxDischargeW ?? Infinity, cfg.maxDischargeW ?? Infinity, cfg.gridExportLimitW === null ? Infinity : cfg.gridExportLimitW + house];
        assert.ok(p.setpointW <= Math.max(0, Math.min(...chargeCaps)) + 1e-9, ctx());
        assert.ok(-p.setpointW <= Math.max(0, Math.min(...dischargeCaps)) + 1e-9, ctx());
        if (!st.connected) assert.equal(p.setpointW, 0, ctx());

        // invariant 1: discharge only above the effective floor, and not across it before the next tick
        assert.ok(p.floors.effectiveFloorPct >= Math.max(cfg.dischargeFloorPct, st.minSocPct ?? 0), ctx());
        if (p.setpointW < 0) {
          assert.notEqual(p.mode, 'backup', ctx());
          assert.ok(soc > p.floors.effectiveFloorPct, ctx());
          assert.ok(-p.setpointW <= floorBoundW(soc, p.floors.effectiveFloorPct, cfg.capacityWh, 0.95, 1) + 1e-6, ctx());
        }

        // invariant 2: the house is served from the car only above the backup floor
        if (p.gridForming) assert.ok(soc > cfg.backupFloorPct, ctx());

        // invariant 3: stale or faulty inputs → zero power, no island served, at once
        const stale = st.inverterAgeS > 5 || (st.connected && st.socAgeS > 30) || st.inverterFault !== undefined || st.estop;
        if (stale) {
          assert.equal(p.setpointW, 0, ctx());
          assert.equal(p.gridForming, false, ctx());
        }
        if (st.estop) assert.equal(p.mode, 'fault', ctx());

        // invariant 5: grid-forming only with the contactor commanded open and confirmed open
        if (p.gridForming) {
          assert.equal(p.contactorClosed, false, ctx());
          assert.equal(feedbackClosed, false, ctx());
        }
        if (prev && !prev.contactorClosed && p.contactorClosed && p.mode !== 'fault') {
          // rejoining: never onto the bus while grid-forming, and only after the reconnect delay
          assert.equal(inverterForming, false, ctx());
          assert.equal(p.gridForming, false, ctx());
          if (prev.backup.phase !== 'on-grid') assert.ok(gridSense && now - gridSenseSince >= 300_000, ctx());
        }
        if (p.contactorClosed && p.gridForming) assert.fail(ctx());

        // invariant 4 (dispatch part): a dispatch refused or expired at intake is never applied
        for (const r of p.responses) if (!firstAnswer.has(r.id) && cmds.some((k) => k.kind === 'dispatch' && k.request.id === r.id)) firstAnswer.set(r.id, r.status);
        if (p.activeDispatchId) assert.ok(!['rejected', 'expired'].includes(firstAnswer.get(p.activeDispatchId) ?? ''), ctx());

        if (p.setpointW < 0) seen.discharging++;
        if (p.gridForming) seen.gridForming++;
        if (prev && prev.backup.phase === 'rejoining' && p.backup.phase === 'on-grid') seen.rejoined++;
        if (p.mode === 'fault') seen.faults++;
        if (p.backup.phase === 'dropped') seen.dropped++;
        if (p.responses.some((r) => r.status === 'curtailed')) seen.curtailed++;

        // the world follows the plan
        if (p.contactorClosed !== commandedClosed) {
          commandedClosed = p.contactorClosed;
          feedbackPending = { closed: commandedClosed, atStep: i + 1 + st.contactorLag };
        }
        inverterForming = p.gridForming;
        prev = p;
        mem = p.memory;
      });
    }),
    { numRuns: 2000, seed: 20261123, includeErrorInReport: true },
  );
  for (const [what, n] of Object.entries(seen)) assert.ok(n > 0, `the random sequences never reached: ${what}`);
});

test('the core is pure: the same inputs give the same plan, and the input memory is not changed', () => {
  fc.assert(
    fc.property(fc.double({ min: 0, max: 100, noNaN: true }), fc.integer({ min: -20000, max: 20000 }), fc.boolean(), (soc, powerW, gridUp) => {
      const c = settings();
      const mem = initialMemory(T0);
      const frozen = JSON.stringify(mem);
      const req = { id: 'p', powerW, durationS: 600 };
      const s: Snapshot = {
        vehicle: { connected: true, socPct: soc, socAtMs: T0, socSource: 'vehicle', capacityWh: 50000, bidirectional: true, maxDischargeW: 11000, atMs: T0 },
        inverter: { atMs: T0, powerW: 0, maxChargeW: 11000, maxDischargeW: 11000, efficiency: 0.95, gridForming: false },
        grid: { sensePresent: gridUp },
        contactor: { installed: true, feedbackClosed: true, commandedClosed: true },
        estopPressed: false, loadTierCount: 1, houseLoadW: 400,
        commands: [{ kind: 'dispatch', request: req, body: JSON.stringify(req), receivedMs: T0, source: 'device' }],
        energy: { exportedWh: 0, importedWh: 0, carSideWh: 0 },
      };
      const a = decide(s, c, mem, T0);
      const b = decide(s, c, mem, T0);
      assert.deepEqual(a, b);
      assert.equal(JSON.stringify(mem), frozen);
    }),
    { numRuns: 500, seed: 7 },
  );
});
