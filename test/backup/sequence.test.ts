/**
 * Islanding order (invariant 5), checked on what was actually commanded: the simulated inverter's command
 * log and the levels written to the contactor output line, while the real runtime drives the simulated home
 * through generated outages (grid edges at random times, flickers, contactor feedback delays, stuck feedback).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SimSite } from '../../hal/sim/site.ts';
import { VirtualClock } from '../../hal/sim/virtual-clock.ts';
import type { Level } from '../../hal/gpio/lines.ts';
import { loadConfig } from '../../src/config/load.ts';
import { Runtime } from '../../src/runtime.ts';
import { runVirtual } from '../../src/simulate.ts';

const T0_MS = Date.UTC(2026, 10, 23, 18, 0, 0);
const TICK_S = 1;
const SENSE_DEBOUNCE_MS = 20;
/** Shortest grid dip generated, ms: well above the grid-sense debounce. */
const MIN_GAP_MS = 100;
/** Contactor output level that closes it, in the simulated home. */
const CLOSED: Level = 1;

interface Outage {
  /** Grid up before this outage, ms. */
  upBeforeMs: number;
  /** Grid down, ms. */
  downMs: number;
  /** Short returns of the grid during the outage: [ms into the outage, up for ms]. */
  flickers: [number, number][];
}

interface Run {
  reconnectDelayS: number;
  contactorDelayMs: number;
  outages: Outage[];
  /** Contactor feedback stuck closed from the start (a welded contact). */
  stuckClosed: boolean;
}

/** One actuator call or line change, in the order it happened. */
type Entry =
  | { atMs: number; kind: 'setpoint'; value: number }
  | { atMs: number; kind: 'gridForming'; value: boolean }
  | { atMs: number; kind: 'contactor'; closed: boolean }
  | { atMs: number; kind: 'feedback'; closed: boolean };

interface Trace {
  log: Entry[];
  /** Physical grid edges the scenario applied, in time order. */
  gridEdges: { atMs: number; up: boolean }[];
  modes: { atMs: number; mode: string }[];
  contactorWrites: Level[];
  finalGridForming: boolean;
  finalContactorClosed: boolean;
  endMs: number;
}

/** Drive one generated run to its end under the virtual clock and return everything that was commanded. */
async function simulate(run: Run): Promise<Trace> {
  const clock = new VirtualClock(T0_MS);
  const site = new SimSite({
    clock,
    vehicle: { capacityWh: 60000, socPct: 80, maxChargeW: 11000, maxDischargeW: 11000 },
    inverter: { ratedW: 11000, efficiency: 0.95 },
    houseLoadW: 600,
    sheddableLoadsW: [400, 800],
    contactorDelayMs: run.contactorDelayMs,
    gridSenseDebounceMs: SENSE_DEBOUNCE_MS,
  });
  if (run.stuckClosed) site.stickContactor('closed');
  const config = loadConfig(null, {
    backup: { reconnectDelayS: run.reconnectDelayS },
    control: { tickS: TICK_S },
    inverter: { driver: 'sim' },
    vehicleLink: { driver: 'sim' },
    uplink: { url: null },
  });

  // the inverter keeps its own command log; line changes are merged into it at the index they happened
  const lineEvents: { invIndex: number; entry: Entry }[] = [];
  site.lines.contactor.watch((level) =>
    lineEvents.push({ invIndex: site.inverter.commandCount, entry: { atMs: clock.nowMs(), kind: 'contactor', closed: level === CLOSED } }),
  );
  site.lines.contactorFeedback.watch((level) =>
    lineEvents.push({ invIndex: site.inverter.commandCount, entry: { atMs: clock.nowMs(), kind: 'feedback', closed: level === 1 } }),
  );

  const gridEdges: Trace['gridEdges'] = [];
  const setGrid = (up: boolean) => {
    gridEdges.push({ atMs: clock.nowMs(), up });
    site.setGrid(up);
  };
  let atMs = 0;
  for (const o of run.outages) {
    atMs += o.upBeforeMs;
    const downAt = atMs;
    clock.setTimer(() => setGrid(false), downAt);
    // every stretch of grid down lasts MIN_GAP_MS at least: a shorter dip is filtered by the grid-sense
    // debounce on purpose, so it neither starts an outage nor restarts the reconnect delay
    let cursor = MIN_GAP_MS;
    for (const [intoMs, upMs] of o.flickers) {
      const upAt = Math.max(cursor, intoMs);
      if (upAt + upMs + MIN_GAP_MS > o.downMs) break;
      clock.setTimer(() => setGrid(true), downAt + upAt);
      clock.setTimer(() => setGrid(false), downAt + upAt + upMs);
      cursor = upAt + upMs + MIN_GAP_MS;
    }
    atMs += o.downMs;
    clock.setTimer(() => setGrid(true), atMs);
  }
  // long enough after the last return for the reconnect delay, the contactor and a few ticks
  const endMs = T0_MS + atMs + run.reconnectDelayS * 1000 + 2 * run.contactorDelayMs + 10_000;

  const modes: Trace['modes'] = [];
  const runtime = new Runtime({
    ports: site.ports(),
    config,
    timer: true,
    onTick: (plan) => {
      if (modes.length === 0 || modes[modes.length - 1].mode !== plan.mode) modes.push({ atMs: clock.nowMs(), mode: plan.mode });
    },
  });
  site.startPhysics(TICK_S * 1000);
  await runtime.start();
  await runVirtual(clock, runtime, endMs);
  const finalGridForming = site.inverter.gridForming;
  const finalContactorClosed = site.lines.contactor.read() === CLOSED;
  await runtime.stop();
  site.stopPhysics();

  const log: Entry[] = [];
  const cmds = site.inverter.commands;
  assert.equal(cmds.length, site.inverter.commandCount, 'the bounded command log still holds every command of this run');
  let li = 0;
  for (let k = 0; k <= cmds.length; k++) {
    for (; li < lineEvents.length && lineEvents[li].invIndex <= k; li++) log.push(lineEvents[li].entry);
    if (k < cmds.length) {
      const c = cmds[k];
      log.push(c.kind === 'setpoint' ? { atMs: c.atMs, kind: 'setpoint', value: c.value as number } : { atMs: c.atMs, kind: 'gridForming', value: c.value as boolean });
    }
  }
  return { log, gridEdges, modes, contactorWrites: [...site.lines.contactor.writes], finalGridForming, finalContactorClosed, endMs };
}

/** Walk the merged log with the state each entry saw; `check` returns a complaint or undefined. */
function walk(trace: Trace, check: (e: Entry, st: { setpointW?: number; forming: boolean; contactorClosed: boolean; feedbackClosed: boolean }) => string | undefined): string[] {
  const st = { setpointW: undefined as number | undefined, forming: false, contactorClosed: true, feedbackClosed: true };
  const out: string[] = [];
  for (const e of trace.log) {
    const problem = check(e, st);
    if (problem) out.push(`${new Date(e.atMs).toISOString()} ${problem}`);
    if (e.kind === 'setpoint') st.setpointW = e.value;
    else if (e.kind === 'gridForming') st.forming = e.value;
    else if (e.kind === 'contactor') st.contactorClosed = e.closed;
    else st.feedbackClosed = e.closed;
  }
  return out;
}

/** The islanding order, on the recorded calls. */
function orderViolations(trace: Trace): string[] {
  return walk(trace, (e, st) => {
    if (e.kind === 'contactor' && !e.closed && st.setpointW !== 0) return `contactor opened while the setpoint was ${st.setpointW} W`;
    if (e.kind === 'contactor' && !e.closed && st.forming) return 'contactor opened while grid-forming';
    if (e.kind === 'gridForming' && e.value) {
      if (st.contactorClosed) return 'grid-forming with the contactor commanded closed';
      if (st.feedbackClosed) return 'grid-forming while the contactor feedback shows closed';
    }
    if (e.kind === 'setpoint' && e.value !== 0 && !st.contactorClosed && !st.forming) return `power ${e.value} W commanded while off the grid and not grid-forming`;
    if (e.kind === 'contactor' && e.closed && st.forming) return 'contactor closed onto the bus while grid-forming';
    return undefined;
  });
}

/**
 * Each contactor close after an outage came only once the grid had been up for the reconnect delay.
 * A drop in the last SENSE_DEBOUNCE_MS before the close cannot have been seen yet, so it is not held against it.
 */
function rejoinViolations(trace: Trace, reconnectDelayS: number): string[] {
  const out: string[] = [];
  for (const e of trace.log) {
    if (e.kind !== 'contactor' || !e.closed) continue;
    const before = trace.gridEdges.filter((g) => g.atMs <= e.atMs - SENSE_DEBOUNCE_MS);
    const last = before[before.length - 1];
    if (!last || !last.up) out.push(`${new Date(e.atMs).toISOString()} contactor closed with the grid down`);
    else if (e.atMs - last.atMs < reconnectDelayS * 1000)
      out.push(`${new Date(e.atMs).toISOString()} contactor closed ${e.atMs - last.atMs} ms after the grid returned (delay ${reconnectDelayS} s)`);
  }
  return out;
}

const outageArb = (maxDownMs: number) =>
  fc.record({
    upBeforeMs: fc.integer({ min: MIN_GAP_MS, max: 120_000 }),
    downMs: fc.integer({ min: MIN_GAP_MS, max: maxDownMs }),
    // a flicker is longer than the grid-sense debounce, or the sense line would rightly not see it
    flickers: fc.array(fc.tuple(fc.integer({ min: 0, max: maxDownMs }), fc.integer({ min: 100, max: 30_000 })), { maxLength: 3 }),
  });

const runArb = fc.record({
  reconnectDelayS: fc.integer({ min: 1, max: 60 }),
  contactorDelayMs: fc.integer({ min: 5, max: 1500 }),
  outages: fc.array(outageArb(300_000), { minLength: 1, maxLength: 3 }),
  stuckClosed: fc.constant(false),
});

const NUM_RUNS = Number(process.env.BACKUP_PROPERTY_RUNS ?? 40);

function explain(trace: Trace, problems: string[]): string {
  const tail = trace.log.filter((e) => e.kind !== 'setpoint' || e.value !== 0).slice(0, 40);
  return `${problems.join('\n')}\n-- first entries --\n${tail.map((e) => JSON.stringify({ ...e, at: new Date(e.atMs).toISOString() })).join('\n')}`;
}

describe('islanding order on recorded actuator calls (real runtime, simulated home)', () => {
  it('zero power, then contactor open, then (feedback open) grid-forming, in every outage; rejoin never while grid-forming', async () => {
    await fc.assert(
      fc.asyncProperty(runArb, async (run) => {
        const trace = await simulate(run);
        const problems = orderViolations(trace);
        assert.deepEqual(problems, [], explain(trace, problems));
        const opens = trace.log.filter((e) => e.kind === 'contactor' && !e.closed).length;
        const forms = trace.log.filter((e) => e.kind === 'gridForming' && e.value).length;
        assert.ok(opens >= 1, 'the contactor opened in the outage');
        assert.ok(forms >= 1, `grid-forming ${forms} times for ${opens} openings`);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('rejoins only after the grid has been back for the reconnect delay, a flicker starting it again; and it does rejoin', async () => {
    await fc.assert(
      fc.asyncProperty(runArb, async (run) => {
        const trace = await simulate(run);
        const problems = rejoinViolations(trace, run.reconnectDelayS);
        assert.deepEqual(problems, [], explain(trace, problems));
        assert.equal(trace.finalContactorClosed, true, 'back on the grid at the end');
        assert.equal(trace.finalGridForming, false, 'grid-following at the end');
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('a flicker during the reconnect delay restarts it (fixed example)', async () => {
    const run: Run = {
      reconnectDelayS: 30,
      contactorDelayMs: 50,
      stuckClosed: false,
      // down 60 s; 20 s after it returns the grid drops for 2 s, then stays
      outages: [
        { upBeforeMs: 5000, downMs: 60_000, flickers: [] },
        { upBeforeMs: 20_000, downMs: 2000, flickers: [] },
      ],
    };
    const trace = await simulate(run);
    const closes = trace.log.filter((e) => e.kind === 'contactor' && e.closed);
    assert.equal(closes.length, 1, 'one rejoin');
    const lastUp = trace.gridEdges[trace.gridEdges.length - 1];
    assert.equal(lastUp.up, true);
    assert.ok(closes[0].atMs - lastUp.atMs >= 30_000, `rejoined ${closes[0].atMs - lastUp.atMs} ms after the last return`);
    assert.deepEqual(orderViolations(trace), []);
  });

  it('feedback stuck closed: fault, and never grid-forming', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          reconnectDelayS: fc.integer({ min: 1, max: 60 }),
          contactorDelayMs: fc.integer({ min: 5, max: 1500 }),
          outages: fc.array(outageArb(120_000), { minLength: 1, maxLength: 2 }),
          stuckClosed: fc.constant(true),
        }),
        async (run) => {
          const trace = await simulate(run);
          const forming = trace.log.filter((e) => e.kind === 'gridForming' && e.value);
          assert.deepEqual(forming, [], 'never grid-forming with the contact welded closed');
          const firstDown = trace.gridEdges.find((g) => !g.up)!;
          const fault = trace.modes.find((m) => m.mode === 'fault' && m.atMs >= firstDown.atMs);
          assert.ok(fault, `fault after the first outage; modes: ${JSON.stringify(trace.modes)}`);
          const problems = orderViolations(trace);
          assert.deepEqual(problems, [], explain(trace, problems));
        },
      ),
      { numRuns: Math.max(10, Math.floor(NUM_RUNS / 2)) },
    );
  });

  it('feedback stuck closed through a 100 ms outage (fixed example found by the property)', async () => {
    const trace = await simulate({ reconnectDelayS: 1, contactorDelayMs: 5, stuckClosed: true, outages: [{ upBeforeMs: 100, downMs: 100, flickers: [] }] });
    assert.deepEqual(trace.log.filter((e) => e.kind === 'gridForming' && e.value), [], 'never grid-forming with the contact welded closed');
    const firstDown = trace.gridEdges.find((g) => !g.up)!;
    assert.ok(trace.modes.find((m) => m.mode === 'fault' && m.atMs >= firstDown.atMs), `fault after the first outage; modes: ${JSON.stringify(trace.modes)}`);
    const problems = orderViolations(trace);
    assert.deepEqual(problems, [], explain(trace, problems));
  });

  it('the contactor output line saw exactly the recorded changes', async () => {
    const trace = await simulate({ reconnectDelayS: 5, contactorDelayMs: 50, stuckClosed: false, outages: [{ upBeforeMs: 3000, downMs: 20_000, flickers: [] }] });
    const changes: Level[] = [];
    let level: Level = CLOSED;
    for (const w of trace.contactorWrites) if (w !== level) changes.push((level = w));
    assert.deepEqual(changes, trace.log.filter((e) => e.kind === 'contactor').map((e) => (e.closed ? CLOSED : 0)));
    assert.deepEqual(changes, [0, 1]);
  });
});

describe('the order checkers catch what they are meant to', () => {
  const trace = (log: Entry[], gridEdges: Trace['gridEdges'] = []): Trace => ({
    log, gridEdges, modes: [], contactorWrites: [], finalGridForming: false, finalContactorClosed: true, endMs: 0,
  });
  it('power still flowing when the contactor opens', () => {
    const t = trace([{ atMs: 1, kind: 'setpoint', value: -3000 }, { atMs: 2, kind: 'contactor', closed: false }]);
    assert.match(orderViolations(t).join(), /setpoint was -3000 W/);
  });
  it('grid-forming before the feedback shows open', () => {
    const t = trace([
      { atMs: 1, kind: 'setpoint', value: 0 },
      { atMs: 2, kind: 'contactor', closed: false },
      { atMs: 3, kind: 'gridForming', value: true },
      { atMs: 4, kind: 'feedback', closed: false },
    ]);
    assert.match(orderViolations(t).join(), /feedback shows closed/);
  });
  it('closing the contactor while grid-forming', () => {
    const t = trace([
      { atMs: 1, kind: 'setpoint', value: 0 },
      { atMs: 2, kind: 'contactor', closed: false },
      { atMs: 3, kind: 'feedback', closed: false },
      { atMs: 4, kind: 'gridForming', value: true },
      { atMs: 5, kind: 'contactor', closed: true },
    ]);
    assert.match(orderViolations(t).join(), /while grid-forming/);
  });
  it('rejoining before the reconnect delay has run since the last return', () => {
    const edges = [
      { atMs: 0, up: false },
      { atMs: 10_000, up: true },
      { atMs: 20_000, up: false },
      { atMs: 21_000, up: true },
    ];
    assert.match(rejoinViolations(trace([{ atMs: 40_000, kind: 'contactor', closed: true }], edges), 30).join(), /19000 ms after the grid returned/);
    assert.deepEqual(rejoinViolations(trace([{ atMs: 51_000, kind: 'contactor', closed: true }], edges), 30), []);
  });
});
