/**
 * Invariant 5 (and 2) on the whole runtime in a simulated world, judged by the physics alone.
 *
 * Each run is a generated scenario: grid outages with flickers, and faults anchored to the island's
 * phases (the grid-sense debounce, the contactor opening, the island, the wait for the reconnect delay,
 * the rejoin): e-stop, an inverter whose readings freeze, an inverter that hangs, a silent vehicle link,
 * a contactor that welds or will not pull in, inverter alarm bits, and restarts of the process (killed
 * without cleanup, built again from its store while the devices keep their state). The devices follow
 * what was actually commanded, with the contactor's mechanical delay and the inverter's delay leaving
 * grid-forming.
 *
 * The checks read the simulated devices only (hal/sim/safety-monitor.ts), never the plans:
 * - no contactor close onto a forming inverter, onto a dead grid or a grid back for less than the delay;
 * - no backfeed (a forming inverter energizing the dead grid through a closed contactor);
 * - never grid-forming with the contactor physically closed;
 * - the contactor-open command reaches the relay within a bound of every grid loss (island-capable
 *   inverter), whatever else is failing;
 * - while the car serves the islanded house, its SoC stays above the backup floor minus one tick's energy
 *   (plus what the house draws while the inverter takes its exit delay to stop forming);
 * - and, every fault gone, the house is back on the grid at the end (never rejoining is not safe).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { runScenario } from '../../src/simulate.ts';
import { physicalViolations, runArb, worldScenario } from '../helpers/world.ts';

const NUM_RUNS = Number(process.env.WORLD_PROPERTY_RUNS ?? 80);
/** Shrinking replays many runs; on by request (SHRINK=1), else the first counterexample is reported as found. */
const SHRINK = process.env.SHRINK === '1';

describe('islanding on the physics: the whole runtime in a simulated world with faults and restarts', () => {
  it('no unsafe close, no backfeed, never forming behind a closed contactor, the contactor opens at once on a grid loss, the backup floor holds, back on the grid at the end', async () => {
    await fc.assert(
      fc.asyncProperty(runArb, async (run) => {
        const sc = worldScenario(run);
        const r = await runScenario(sc);
        const problems = physicalViolations(run, r);
        assert.deepEqual(problems, [], `${problems.join('\n')}\nscenario: ${JSON.stringify(sc)}`);
      }),
      { numRuns: NUM_RUNS, endOnFailure: !SHRINK, includeErrorInReport: true },
    );
  });
});
