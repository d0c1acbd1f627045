/**
 * Invariants 1–5 of the design over thousands of random input sequences, against a small stateful world:
 * the grid goes and comes, the contactor follows its command after a lag (or sticks), the inverter leaves
 * grid-forming after a delay and ignores commands while it is silent, the car's SoC follows the power that
 * really flowed. Faults (e-stop, silent or faulty inverter, silent vehicle link, stuck contactor, grid alarms)
 * and restarts (memory from `initialMemory(now, restored)` with the persisted or a random phase) land in
 * every island phase. Every check is computed here from the world and the design; nothing is taken from the
 * plan's own floors or limits, and fault plans are checked like any other.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decide, initialMemory } from '../../src/control/decide.ts';
import type { DispatchCommand, IslandPhase, Memory, Plan, RestoredState, Snapshot } from '../../src/control/types.ts';
import { T0, settings } from '../helpers/control.ts';

const RECONNECT_S = 300;
const INVERTER_MAX_AGE_S = 5;
const SOC_MAX_AGE_S = 30;
const EFF = 0.95;
const RATED_W = 11000;
const MARGIN_S = 1800;
const TARGET_PCT = 80;
const PHASES: IslandPhase[] = ['on-grid', 'opening', 'islanded', 'dropped', 'rejoining'];

const stepArb = fc.record({
  dtS: fc.constantFrom(0.2, 1, 1, 1, 1, 2, 5, 30, 120, 400),
  socNoise: fc.double({ min: -0.5, max: 0.5, noNaN: true }),
  grid: fc.constantFrom<'keep' | 'up' | 'down'>('keep', 'keep', 'keep', 'keep', 'keep', 'up', 'down'),
  /** Toggles: a fault starts or ends at this step and holds in between. */
  estopToggle: fc.constantFrom(false, false, false, false, false, false, false, false, false, true),
  silentToggle: fc.constantFrom(false, false, false, false, false, false, false, false, false, true),
  inverterFault: fc.constantFrom(undefined, undefined, undefined, undefined, undefined, undefined, undefined, undefined, 'timeout: unit 1'),
  /** The driver's poll brought no new reading at this step. */
  missedPoll: fc.constantFrom(false, false, false, false, false, false, true),
  socAgeS: fc.constantFrom(0, 0, 0, 0, 0, 0, 10, 29, 31, 300),
  vehicleFault: fc.constantFrom(undefined, undefined, undefined, undefined, undefined, undefined, undefined, undefined, undefined, 'bridge: disconnected'),
  contactorLag: fc.constantFrom(0, 0, 1, 2),
  /** The contactor sticks where it is (welded or jammed), or comes free again. */
  stuck: fc.constantFrom<'none' | 'stick' | 'release'>('none', 'none', 'none', 'none', 'none', 'none', 'none', 'none', 'stick', 'release'),
  alarm: fc.constantFrom<string[] | undefined>(undefined, undefined, undefined, undefined, undefined, undefined, undefined, undefined, ['AC_OVER_VOLT'], ['OVER_FREQUENCY'], ['GRID_DISCONNECT']),
  restart: fc.constantFrom(false, false, false, false, false, false, false, false, false, false, false, false, true),
  restoredPhase: fc.constantFrom<IslandPhase | 'persisted'>('persisted', 'persisted', 'persisted', ...PHASES),
  connected: fc.constantFrom(true, true, true, true, true, true, false),
  vehicleMaxDischargeW: fc.constantFrom(undefined, 0, 3000, 7000, 11000, 20000),
  vehicleMaxChargeW: fc.constantFrom(undefined, 0, 3700, 11000),
  minSocPct: fc.constantFrom(undefined, undefined, 30, 60),
  houseLoadW: fc.constantFrom(0, 300, 2000, 9000),
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
  backupEnabled: fc.constantFrom(true, true, true, false),
  faultOpensContactor: fc.constantFrom<'when-grid-absent' | 'always'>('when-grid-absent', 'when-grid-absent', 'always'),
  capacityWh: fc.constantFrom(20000, 60000, 100000),
});

/** The installation and its devices. */
const worldArb = fc.record({
  hasSense: fc.constantFrom(true, true, true, true, false),
  hasFeedback: fc.constantFrom(true, true, true, true, true, false),
  islandCapable: fc.constantFrom<boolean | undefined>(true, true, true, true, true, false, undefined),
  /** Steps the inverter takes to leave grid-forming once told to. */
  formingExitSteps: fc.constantFrom(0, 0, 1, 2),
  /** How the run starts: the state a previous run left, and what the store says about it. */
  start: fc.constantFrom<'fresh' | 'restart-on-grid' | 'restart-islanded' | 'restart-dark'>('fresh', 'fresh', 'restart-on-grid', 'restart-islanded', 'restart-dark'),
  startRestored: fc.constantFrom<IslandPhase | undefined>(undefined, ...PHASES),
  startGridUp: fc.boolean(),
});

/** Next instant at which the UTC clock shows HH:MM (the test settings use UTC). */
function nextUtcMs(hhmm: string, nowMs: number): number {
  const [h, m] = hhmm.split(':').map(Number);
  const d = new Date(nowMs);
  let at = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate(), h, m);
  while (at <= nowMs) at += 86_400_000;
  return at;
}

test('invariants 1–5 hold over random sequences with faults and restarts in every island phase', () => {
  // how often each guarded situation came up, so the property cannot pass by never reaching it
  const seen: Record<string, number> = { discharging: 0, gridForming: 0, closedThroughInterlock: 0, faults: 0, dropped: 0, curtailed: 0, trips: 0, restartsMidIsland: 0 };
  const faultIn: Record<string, number> = { opening: 0, islanded: 0, dropped: 0, rejoining: 0 };
  fc.assert(
    fc.property(configArb, worldArb, fc.double({ min: 0, max: 100, noNaN: true }), fc.array(stepArb, { minLength: 5, maxLength: 60 }), (cfg, w, soc0, steps) => {
      const c = settings({
        vehicle: { dischargeFloorPct: cfg.dischargeFloorPct, backupFloorPct: cfg.backupFloorPct, maxDischargeW: cfg.maxDischargeW, maxChargeW: cfg.maxChargeW, departureTime: cfg.departureTime, targetSocPct: TARGET_PCT, departureMarginS: MARGIN_S },
        site: { gridImportLimitW: cfg.gridImportLimitW, gridExportLimitW: cfg.gridExportLimitW },
        backup: { enabled: cfg.backupEnabled, reconnectDelayS: RECONNECT_S, contactorTimeoutS: 2, gridLossAlarms: ['GRID_DISCONNECT', 'AC_UNDER_VOLT'], gridLossDebounceS: 2 },
        control: { tickS: 1, socMaxAgeS: SOC_MAX_AGE_S, inverterMaxAgeS: INVERTER_MAX_AGE_S, faultOpensContactor: cfg.faultOpensContactor },
      });
      let now = T0;
      let soc = soc0;
      // --- the world ---
      let gridUp = w.startGridUp;
      let gridUpSinceMs: number | undefined = gridUp ? now - 3_600_000 : undefined;
      let commandedClosed = w.start === 'fresh' || w.start === 'restart-on-grid';
      let contactorClosed = commandedClosed;
      let pending: { closed: boolean; atStep: number } | undefined;
      let stuck: boolean | undefined;
      let forming = w.start === 'restart-islanded' && w.islandCapable !== false;
      let formingOffAtStep: number | undefined;
      let inverterSetpointW = w.start === 'restart-on-grid' ? -5000 : 0;
      let estop = false;
      let silent = false;
      let reading: { atMs: number; forming: boolean; alarms: string[] } | undefined;
      let lastCommandedSetpointW = 0;
      let sinceRestart = 0;
      let freshSinceRestart = false;
      let mem: Memory =
        w.start === 'fresh' && w.startRestored === undefined
          ? initialMemory(now)
          : initialMemory(now, w.startRestored ? { island: { phase: w.startRestored, sinceMs: now - 600_000, outageStartMs: now - 900_000, gridStableSinceMs: now - 500_000 }, savedAtMs: now - 3000 } : undefined);
      let prev: Plan | undefined;
      const acceptedBodies = new Set<string>();

      steps.forEach((st, i) => {
        now += st.dtS * 1000;
        // --- the world moves ---
        if (st.grid === 'up' && !gridUp) { gridUp = true; gridUpSinceMs = now; }
        if (st.grid === 'down' && gridUp) { gridUp = false; gridUpSinceMs = undefined; }
        if (st.stuck === 'stick') stuck = contactorClosed;
        else if (st.stuck === 'release') stuck = undefined;
        if (pending && i >= pending.atStep) { if (stuck === undefined) contactorClosed = pending.closed; pending = undefined; }
        if (stuck === undefined && pending === undefined && contactorClosed !== commandedClosed) contactorClosed = commandedClosed;
        if (formingOffAtStep !== undefined && i >= formingOffAtStep) { forming = false; formingOffAtStep = undefined; }
        if (st.estopToggle) estop = !estop;
        if (st.silentToggle) silent = !silent;
        // physics: a grid-forming inverter on a closed contactor is a fault of this test's subject
        assert.ok(!(forming && contactorClosed), `step ${i}: the inverter is grid-forming with the contactor closed`);
        // the car moves with the power that really flowed
        const busLive = contactorClosed && gridUp && !forming;
        const flowW = forming ? -st.houseLoadW : busLive ? inverterSetpointW : 0;
        const dcW = flowW >= 0 ? flowW * EFF : flowW / EFF;
        soc = Math.min(100, Math.max(0, soc + ((dcW * st.dtS) / 3600 / cfg.capacityWh) * 100 + st.socNoise));
        // the inverter's view of the grid is at its own grid port (a hybrid inverter); forming, it reports none
        const alarms = [...(st.alarm ?? []), ...(!gridUp && !forming ? ['GRID_DISCONNECT'] : [])];
        if (!silent && !st.missedPoll) reading = { atMs: now, forming, alarms };

        // a restart: the process is rebuilt from the store, the devices keep their state
        if (st.restart && i > 0) {
          const persisted = prev?.memory.island;
          const restored: RestoredState =
            st.restoredPhase === 'persisted'
              ? { island: persisted, savedAtMs: now - st.dtS * 1000 }
              : { island: { phase: st.restoredPhase, sinceMs: now - 1000, outageStartMs: now - 2000, gridStableSinceMs: now - 1_000_000 }, savedAtMs: now - 1000 };
          if (prev && prev.backup.phase !== 'on-grid') seen.restartsMidIsland++;
          mem = initialMemory(now, restored);
          sinceRestart = 0;
          freshSinceRestart = false;
        }

        const cmds: DispatchCommand[] = [];
        if (st.command?.kind === 'dispatch') {
          const req = {
            id: st.command.id, powerW: st.command.powerW, durationS: st.command.durationS,
            startMs: st.command.startInS === undefined ? undefined : now + st.command.startInS * 1000,
            expiresAtMs: st.command.expiresInS === undefined ? undefined : now + st.command.expiresInS * 1000,
          };
          cmds.push({ kind: 'dispatch', request: req, body: JSON.stringify(req), receivedMs: now, source: 'device' });
        } else if (st.command?.kind === 'cancel') cmds.push({ kind: 'cancel', id: st.command.id, receivedMs: now, source: 'device' });

        const feedback = w.hasFeedback ? contactorClosed : undefined;
        const s: Snapshot = {
          vehicle: {
            connected: st.connected, socPct: soc, socAtMs: now - st.socAgeS * 1000, socSource: 'vehicle', capacityWh: cfg.capacityWh,
            maxChargeW: st.vehicleMaxChargeW, maxDischargeW: st.vehicleMaxDischargeW, minSocPct: st.minSocPct, bidirectional: st.vehicleMaxDischargeW !== 0, atMs: now,
            fault: st.vehicleFault,
          },
          inverter: {
            atMs: reading?.atMs, powerW: flowW, ratedW: RATED_W, maxChargeW: RATED_W, maxDischargeW: RATED_W, efficiency: EFF,
            gridForming: reading?.forming, connected: busLive || forming, alarms: reading?.alarms, islandCapable: w.islandCapable, fault: st.inverterFault,
          },
          grid: { sensePresent: w.hasSense ? gridUp : undefined },
          contactor: { installed: true, feedbackClosed: feedback, commandedClosed },
          estopPressed: estop,
          houseLoadW: st.houseLoadW,
          houseLoadAtMs: now,
          loadTierCount: 2,
          commands: cmds,
          energy: { exportedWh: 0, importedWh: 0, carSideWh: 0 },
        };
        const p = decide(s, c, mem, now);
        const phaseBefore = prev?.backup.phase ?? 'on-grid';
        const ctx = (what = '') => what + ' ' + JSON.stringify({ step: i, cfg, w, st, soc, gridUp, gridUpSinceMs, commandedClosed, contactorClosed, forming, reading, estop, silent, phaseBefore, plan: { mode: p.mode, sp: p.setpointW, gf: p.gridForming, cc: p.contactorClosed, phase: p.backup.phase, reasons: p.reasons } });

        const readingAgeS = reading === undefined ? Infinity : (now - reading.atMs) / 1000;
        const inverterFresh = readingAgeS <= INVERTER_MAX_AGE_S && st.inverterFault === undefined;
        const inverterAnswering = !silent;

        // --- invariant 4: within every limit, computed here independently of the core ---
        // the car's limits are at the car (DC side); the setpoint is AC: into the car AC × EFF arrives, out of it DC × EFF leaves
        const chargeCaps = [RATED_W, st.vehicleMaxChargeW === undefined ? Infinity : st.vehicleMaxChargeW / EFF, cfg.maxChargeW ?? Infinity, cfg.gridImportLimitW === null ? Infinity : cfg.gridImportLimitW - st.houseLoadW];
        const dischargeCaps = [RATED_W, st.vehicleMaxDischargeW === undefined ? Infinity : st.vehicleMaxDischargeW * EFF, cfg.maxDischargeW ?? Infinity, cfg.gridExportLimitW === null ? Infinity : cfg.gridExportLimitW + st.houseLoadW];
        assert.ok(p.setpointW <= Math.max(0, Math.min(...chargeCaps)) + 1e-9, ctx());
        assert.ok(-p.setpointW <= Math.max(0, Math.min(...dischargeCaps)) + 1e-9, ctx());
        if (!st.connected) assert.equal(p.setpointW, 0, ctx());

        // --- invariant 1: discharge only above the effective floor, not across it before the next tick ---
        if (p.setpointW < 0) {
          let depFloor = 0;
          if (cfg.departureTime !== null) {
            const depAt = nextUtcMs(cfg.departureTime, now);
            const chargeW = Math.max(0, Math.min(RATED_W, st.vehicleMaxChargeW ?? Infinity, cfg.maxChargeW ?? Infinity, cfg.gridImportLimitW === null ? Infinity : cfg.gridImportLimitW - st.houseLoadW));
            const hours = Math.max(0, (depAt - now) / 1000 - MARGIN_S) / 3600;
            depFloor = Math.max(0, TARGET_PCT - ((chargeW * EFF * hours) / cfg.capacityWh) * 100);
          }
          const floor = Math.max(cfg.dischargeFloorPct, st.minSocPct ?? 0, depFloor);
          assert.notEqual(p.mode, 'backup', ctx());
          assert.ok(soc > floor - 1e-9, ctx());
          assert.ok(-p.setpointW <= (((soc - floor) / 100) * cfg.capacityWh * EFF * 3600) / 1 + 1e-6, ctx());
        }

        // --- invariant 2: the house is served from the car only above the backup floor ---
        if (p.gridForming) assert.ok(soc > cfg.backupFloorPct, ctx());

        // --- invariant 3: stale or faulty inputs → zero power, no island served, at once ---
        const stale = !inverterFresh || (st.connected && (st.socAgeS > SOC_MAX_AGE_S || st.vehicleFault !== undefined)) || estop;
        if (stale) {
          assert.equal(p.setpointW, 0, ctx());
          assert.equal(p.gridForming, false, ctx());
        }
        if (estop) assert.equal(p.mode, 'fault', ctx());
        if (p.mode === 'fault') {
          assert.equal(p.setpointW, 0, ctx());
          assert.equal(p.gridForming, false, ctx());
        }

        // --- invariant 5: islanding order ---
        // grid-forming only with the contactor commanded open and seen open through its feedback
        if (p.gridForming) {
          assert.equal(p.contactorClosed, false, ctx());
          assert.equal(w.hasFeedback && contactorClosed === false, true, ctx());
          assert.equal(w.islandCapable, true, 'an inverter that cannot island is never asked to form');
        }
        // leaving the grid: power to zero in the plan that opens the contactor
        if (commandedClosed && !p.contactorClosed) assert.equal(p.setpointW, 0, ctx());
        // the interlock: an open contactor (commanded open, or its feedback open) closes only when
        // (a) the grid has been up for the reconnect delay, (b) a fresh reading says not forming and the
        // inverter really is not forming, (c) this setpoint and the last commanded are 0
        const wasOpen = !commandedClosed || feedback === false;
        if (p.contactorClosed && wasOpen) {
          assert.ok(gridUp && gridUpSinceMs !== undefined && now - gridUpSinceMs >= RECONNECT_S * 1000, `(a) ${ctx()}`);
          assert.ok(inverterFresh, `(b) fresh reading ${ctx()}`);
          assert.ok(reading !== undefined && (reading.forming === false || w.islandCapable === false) && !forming, `(b) not forming ${ctx()}`);
          assert.equal(p.gridForming, false, ctx());
          assert.ok(p.setpointW === 0 && lastCommandedSetpointW === 0, `(c) ${ctx()}`);
          seen.closedThroughInterlock++;
        }
        // start-up: until a fresh reading is in, zero power and no forming
        if (!freshSinceRestart && !inverterFresh) {
          assert.equal(p.setpointW, 0, ctx());
          assert.equal(p.gridForming, false, ctx());
        }
        // an inverter that cannot island (or does not say it can) never enters the island sequence
        if (w.islandCapable !== true) assert.ok(p.backup.phase !== 'opening' && p.backup.phase !== 'islanded', ctx());
        // a trip with the sense line showing the grid is never an island
        if (w.hasSense && gridUp && prev !== undefined && freshSinceRestart && phaseBefore === 'on-grid' && !st.restart) assert.equal(p.backup.phase, 'on-grid', ctx());

        // --- invariant 4 (dispatch part): a dispatch refused or expired at intake is never applied ---
        // the body a command was accepted with; the dispatch being applied must be one of them
        for (const r of p.responses) {
          const k = cmds.find((x) => x.kind === 'dispatch' && x.request.id === r.id);
          if (k && k.kind === 'dispatch' && r.status === 'accepted') acceptedBodies.add(k.body);
        }
        if (p.activeDispatchId) {
          const rec = p.memory.dispatches.find((r) => r.id === p.activeDispatchId);
          assert.ok(rec !== undefined && acceptedBodies.has(rec.body), ctx('applied dispatch never accepted'));
        }

        if (p.setpointW < 0) seen.discharging++;
        if (p.gridForming) seen.gridForming++;
        if (p.mode === 'fault') seen.faults++;
        if (p.backup.phase === 'dropped') seen.dropped++;
        if (p.responses.some((r) => r.status === 'curtailed')) seen.curtailed++;
        if (p.reasons.includes('grid_trip')) seen.trips++;
        const injected = st.estopToggle || st.silentToggle || st.inverterFault !== undefined || st.vehicleFault !== undefined || st.stuck !== 'none' || st.alarm !== undefined || st.restart;
        if (injected && phaseBefore in faultIn) faultIn[phaseBefore]++;

        // --- the world follows the plan ---
        if (p.contactorClosed !== commandedClosed) {
          commandedClosed = p.contactorClosed;
          pending = { closed: commandedClosed, atStep: i + 1 + st.contactorLag };
        }
        if (inverterAnswering) {
          inverterSetpointW = p.setpointW;
          if (p.gridForming && w.islandCapable !== false) { forming = true; formingOffAtStep = undefined; }
          if (!p.gridForming && forming && formingOffAtStep === undefined) formingOffAtStep = i + 1 + w.formingExitSteps;
          if (!p.gridForming && forming && w.formingExitSteps === 0) { forming = false; formingOffAtStep = undefined; }
        }
        lastCommandedSetpointW = p.setpointW;
        if (inverterFresh) freshSinceRestart = true;
        sinceRestart++;
        prev = p;
        mem = p.memory;
      });
    }),
    { numRuns: 2500, seed: 20261123, includeErrorInReport: true },
  );
  for (const [what, n] of Object.entries(seen)) assert.ok(n > 0, `the random sequences never reached: ${what}`);
  for (const [phase, n] of Object.entries(faultIn)) assert.ok(n > 0, `no fault or restart was injected while ${phase}`);
});

test('the core is pure: the same inputs give the same plan, and the input memory is not changed', () => {
  fc.assert(
    fc.property(fc.double({ min: 0, max: 100, noNaN: true }), fc.integer({ min: -20000, max: 20000 }), fc.boolean(), fc.constantFrom<IslandPhase | undefined>(undefined, ...PHASES), (soc, powerW, gridUp, restored) => {
      const c = settings();
      const mem = initialMemory(T0, restored ? { island: { phase: restored, sinceMs: T0 - 1000 } } : undefined);
      const frozen = JSON.stringify(mem);
      const req = { id: 'p', powerW, durationS: 600 };
      const s: Snapshot = {
        vehicle: { connected: true, socPct: soc, socAtMs: T0, socSource: 'vehicle', capacityWh: 50000, bidirectional: true, maxDischargeW: 11000, atMs: T0 },
        inverter: { atMs: T0, powerW: 0, maxChargeW: 11000, maxDischargeW: 11000, efficiency: 0.95, gridForming: false, alarms: [], islandCapable: true },
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
