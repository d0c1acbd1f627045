/**
 * The generated world of test/backup/world.property.test.ts: runs (outages, flickers, faults anchored
 * to the island's phases, restarts), the scenario each one becomes, and the physical checks.
 */
import fc from 'fast-check';
import { parseScenario, runScenario, type Scenario, type ScenarioEvent, type SimulationResult } from '../../src/simulate.ts';

const START = '2026-11-23T18:00:00Z';
const TICK_S = 1;
/** Shortest stretch of grid down or up generated, ms: above the grid-sense debounce (20 ms). */
const MIN_GAP_MS = 100;
/**
 * Grid lost → contactor-open command at the relay, ms: the grid-sense debounce (20 ms) and the goal of
 * issue 14 for the edge → command path (p99 ≤ 20 ms), with room for the contactor line write.
 */
export const OPEN_BOUND_MS = 100;
const ALARMS = ['AC_OVER_VOLT', 'AC_UNDER_VOLT', 'OVER_FREQUENCY', 'UNDER_FREQUENCY', 'GRID_DISCONNECT', 'OVER_TEMP', 'GROUND_FAULT'];

type FaultKind = 'estop' | 'inverterFrozen' | 'inverterHangs' | 'linkFrozen' | 'stuckClosed' | 'stuckOpen' | 'alarm' | 'restart' | 'reload' | 'clockStep';
/** Faults that happen at an instant rather than last. */
type InstantKind = 'restart' | 'clockStep';

interface Fault {
  kind: FaultKind;
  /** Which outage the fault is anchored to, and to which of its edges. */
  outage: number;
  anchor: 'down' | 'up';
  offsetMs: number;
  /** How long it lasts (restarts have no length). */
  forMs: number;
  alarms: string[];
  /** For a reload: the reconnect delay and whether backup stays enabled, until the original comes back. */
  reloadDelayS: number;
  backupEnabled: boolean;
  /** For a clock step: how far the wall clock jumps, s (either sign). */
  clockStepS: number;
}

interface Outage {
  upBeforeMs: number;
  downMs: number;
  flickers: [number, number][];
}

export interface WorldRun {
  reconnectDelayS: number;
  contactorDelayMs: number;
  formingExitDelayMs: number;
  islandCapable: boolean;
  socPct: number;
  backupFloorPct: number;
  houseLoadW: number;
  dispatchW: number | null;
  outages: Outage[];
  faults: Fault[];
}

/** Offsets that land in each island phase: the debounce and opening, the first seconds, anywhere. */
const offsetArb = fc.oneof(fc.integer({ min: 0, max: 150 }), fc.integer({ min: 0, max: 3000 }), fc.integer({ min: 0, max: 90_000 }));

const faultArb = (outages: number) =>
  fc.record({
    kind: fc.constantFrom<FaultKind>('estop', 'inverterFrozen', 'inverterHangs', 'linkFrozen', 'stuckClosed', 'stuckOpen', 'alarm', 'restart', 'reload', 'clockStep'),
    outage: fc.integer({ min: 0, max: outages - 1 }),
    anchor: fc.constantFrom<'down' | 'up'>('down', 'up'),
    offsetMs: offsetArb,
    forMs: fc.oneof(fc.integer({ min: 100, max: 3000 }), fc.integer({ min: 100, max: 60_000 })),
    alarms: fc.subarray(ALARMS, { minLength: 1, maxLength: 2 }),
    reloadDelayS: fc.integer({ min: 1, max: 90 }),
    backupEnabled: fc.oneof({ weight: 3, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
    clockStepS: fc.constantFrom(-3600, 3600, -90, 90),
  });

const outageArb = fc.record({
  upBeforeMs: fc.integer({ min: 2000, max: 60_000 }),
  downMs: fc.oneof(fc.integer({ min: MIN_GAP_MS, max: 3000 }), fc.integer({ min: MIN_GAP_MS, max: 120_000 })),
  flickers: fc.array(fc.tuple(fc.integer({ min: 0, max: 120_000 }), fc.integer({ min: MIN_GAP_MS, max: 20_000 })), { maxLength: 2 }),
});

export const runArb: fc.Arbitrary<WorldRun> = fc
  .record({
    reconnectDelayS: fc.integer({ min: 2, max: 60 }),
    contactorDelayMs: fc.integer({ min: 5, max: 500 }),
    formingExitDelayMs: fc.oneof(fc.constant(200), fc.integer({ min: 0, max: 1500 })),
    islandCapable: fc.oneof({ weight: 5, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
    socPct: fc.integer({ min: 15, max: 95 }),
    backupFloorPct: fc.integer({ min: 10, max: 60 }),
    houseLoadW: fc.integer({ min: 200, max: 6000 }),
    dispatchW: fc.option(fc.oneof(fc.integer({ min: -11000, max: -1000 }), fc.integer({ min: 1000, max: 11000 })), { nil: null }),
    outages: fc.array(outageArb, { minLength: 1, maxLength: 3 }),
  })
  .chain((r) => fc.array(faultArb(r.outages.length), { minLength: 1, maxLength: 6 }).map((faults) => ({ ...r, faults })));

/** The grid edges of a run, ms from the start, and when the last one happens. */
function gridEdges(run: WorldRun): { edges: { atMs: number; up: boolean }[]; downAtMs: number[]; upAtMs: number[] } {
  const edges: { atMs: number; up: boolean }[] = [];
  const downAtMs: number[] = [];
  const upAtMs: number[] = [];
  let at = 0;
  for (const o of run.outages) {
    at += o.upBeforeMs;
    const down = at;
    downAtMs.push(down);
    edges.push({ atMs: down, up: false });
    let cursor = MIN_GAP_MS;
    for (const [intoMs, upMs] of o.flickers) {
      const upAt = Math.max(cursor, intoMs);
      if (upAt + upMs + MIN_GAP_MS > o.downMs) break;
      edges.push({ atMs: down + upAt, up: true }, { atMs: down + upAt + upMs, up: false });
      cursor = upAt + upMs + MIN_GAP_MS;
    }
    at += o.downMs;
    upAtMs.push(at);
    edges.push({ atMs: at, up: true });
  }
  return { edges, downAtMs, upAtMs };
}

const FAULT_ON: Record<Exclude<FaultKind, InstantKind>, (f: Fault) => Omit<ScenarioEvent, 'at'>> = {
  estop: () => ({ estop: true }),
  inverterFrozen: () => ({ inverterFrozen: true }),
  inverterHangs: () => ({ inverterHangs: true }),
  linkFrozen: () => ({ linkFrozen: true }),
  stuckClosed: () => ({ contactorStuck: 'closed' }),
  stuckOpen: () => ({ contactorStuck: 'open' }),
  alarm: (f) => ({ inverterAlarm: f.alarms }),
  reload: (f) => ({ reload: { backup: { reconnectDelayS: f.reloadDelayS, enabled: f.backupEnabled } } }),
};
const FAULT_OFF: Record<Exclude<FaultKind, InstantKind>, Omit<ScenarioEvent, 'at'>> = {
  estop: { estop: false },
  inverterFrozen: { inverterFrozen: false },
  inverterHangs: { inverterHangs: false },
  linkFrozen: { linkFrozen: false },
  stuckClosed: { contactorStuck: null },
  stuckOpen: { contactorStuck: null },
  alarm: { inverterAlarm: [] },
  // the scenario's own config again
  reload: { reload: {} },
};

/** The generated run as a scenario file would say it. */
export function worldScenario(run: WorldRun): Scenario {
  const { edges, downAtMs, upAtMs } = gridEdges(run);
  const events: ScenarioEvent[] = edges.map((e) => (e.up ? { at: e.atMs / 1000, gridUp: true } : { at: e.atMs / 1000, gridDown: true }));
  let lastMs = edges[edges.length - 1].atMs;
  for (const f of run.faults) {
    const atMs = (f.anchor === 'down' ? downAtMs[f.outage] : upAtMs[f.outage]) + f.offsetMs;
    if (f.kind === 'restart' || f.kind === 'clockStep') {
      events.push(f.kind === 'restart' ? { at: atMs / 1000, restart: true } : { at: atMs / 1000, clockStep: f.clockStepS });
      lastMs = Math.max(lastMs, atMs);
      continue;
    }
    events.push({ at: atMs / 1000, ...FAULT_ON[f.kind](f) }, { at: (atMs + f.forMs) / 1000, ...FAULT_OFF[f.kind] });
    lastMs = Math.max(lastMs, atMs + f.forMs);
  }
  // then everything is well again for long enough to rejoin: a port's open retry (back-off up to 60 s),
  // the reconnect delay, a fault clearing and a few ticks
  const endMs = lastMs + 60_000 + run.reconnectDelayS * 1000 + 30_000;
  if (run.dispatchW !== null) events.push({ at: 1, dispatch: { id: 'p1', powerW: run.dispatchW, durationS: Math.ceil(endMs / 1000) } });
  return parseScenario({
    start: START,
    timezone: 'UTC',
    tickS: TICK_S,
    vehicle: { capacityWh: 40000, socPct: run.socPct, maxChargeW: 11000, maxDischargeW: 11000 },
    inverter: { ratedW: 11000, efficiency: 0.95, islandCapable: run.islandCapable, formingExitDelayMs: run.formingExitDelayMs },
    config: { vehicle: { departureTime: null, backupFloorPct: run.backupFloorPct, dischargeFloorPct: Math.max(run.backupFloorPct, 50) }, backup: { reconnectDelayS: run.reconnectDelayS } },
    houseLoadW: run.houseLoadW,
    sheddableLoadsW: [400, 800],
    contactorDelayMs: run.contactorDelayMs,
    durationS: Math.ceil(endMs / 1000),
    events,
  });
}

/** Whether backup was enabled at `ms` into the run, by the reload events applied before then. */
function backupEnabledAt(r: SimulationResult, ms: number): boolean {
  let enabled = r.config.backup.enabled;
  const events = [...(r.scenario.events ?? [])].map((e, i) => ({ e, i })).sort((a, b) => a.e.at - b.e.at || a.i - b.i);
  for (const { e } of events) {
    if (e.at * 1000 > ms) break;
    if (e.reload) enabled = (e.reload.backup as { enabled?: boolean } | undefined)?.enabled ?? r.config.backup.enabled;
  }
  return enabled;
}

/** Everything the physics says went wrong in one run (empty: nothing did). */
export function physicalViolations(run: WorldRun, r: SimulationResult): string[] {
  const out: string[] = [];
  const t0 = Date.parse(START);
  const at = (ms: number) => `${((ms - t0) / 1000).toFixed(3)} s`;
  const m = r.site.monitor;
  for (const u of r.safety.unsafeCloses) out.push(`${at(u.atMs)}: unsafe contactor close: ${u.why}`);
  if (r.summary.unsafeContactorCloses !== r.safety.unsafeCloses.length) out.push(`${r.summary.unsafeContactorCloses} unsafe contactor closes`);
  if (r.summary.backfeedS !== 0) out.push(`backfeed for ${r.summary.backfeedS} s (forming into the dead grid through a closed contactor)`);
  if (m.formingWithContactClosedStarts !== 0)
    out.push(`grid-forming with the contactor physically closed ${m.formingWithContactClosedStarts} times (${m.formingWithContactClosedMs} ms in all)`);
  if (run.islandCapable) {
    for (const o of r.safety.outages) {
      if (o.contactorAlreadyOpen) continue;
      // a reload that turned backup off: no island sequence, the contactor may rightly stay closed
      if (!backupEnabledAt(r, o.downAtMs - t0) || !backupEnabledAt(r, o.downAtMs - t0 + OPEN_BOUND_MS)) continue;
      const lastedMs = (o.upAtMs ?? Infinity) - o.downAtMs;
      if (lastedMs <= OPEN_BOUND_MS) continue;
      if (o.openCommandAtMs === undefined) out.push(`grid lost at ${at(o.downAtMs)} for ${lastedMs} ms: the contactor was never commanded open`);
      else if (o.openCommandAtMs - o.downAtMs > OPEN_BOUND_MS) out.push(`grid lost at ${at(o.downAtMs)}: contactor-open command ${o.openCommandAtMs - o.downAtMs} ms later (bound ${OPEN_BOUND_MS} ms)`);
    }
  }
  // safe by never rejoining is not safe: with every fault gone, the house is back on the grid
  if (!r.summary.final.gridUp || !r.summary.final.contactClosed || r.summary.final.gridForming)
    out.push(`not back on the grid at the end, with every fault gone: ${JSON.stringify(r.summary.final)}`);
  if (m.minServingSocPct !== null) {
    const capacityWh = 40000;
    const houseMaxW = run.houseLoadW + 400 + 800;
    // one tick, and the physics steps the inverter may still serve while it takes its exit delay
    const steps = 1 + Math.ceil(run.formingExitDelayMs / (TICK_S * 1000));
    const tolPct = ((houseMaxW * TICK_S * steps) / 3600 / 0.95 / capacityWh) * 100 + 1e-6;
    if (m.minServingSocPct < run.backupFloorPct - tolPct)
      out.push(`served the house down to ${m.minServingSocPct.toFixed(3)} % SoC (backup floor ${run.backupFloorPct} %, tolerance ${tolPct.toFixed(3)} %)`);
  }
  return out;
}

