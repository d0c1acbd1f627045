/**
 * The simulate summary's solar figures for the daily cycle, checked against energy worked out here from
 * the scenario itself: PV from the clear-sky formula (docs/simulation.md) integrated in the scenario's
 * zone, the house from its load steps, the car from the inverter's own counters; and the balance at the
 * connection point (import − export = house + car in − car out − PV).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../src/config/load.ts';
import { formatSummary, loadScenarioFile, runScenario } from '../../src/simulate.ts';
import { localParts } from '../../src/control/time.ts';

const close = (actual: number, expected: number, relTol: number, what: string) =>
  assert.ok(Math.abs(actual - expected) <= relTol * Math.abs(expected) + 1, `${what}: ${actual} vs ${expected.toFixed(1)} expected`);

test("daily cycle: PV, house, grid and the car's sources add up", async () => {
  const sc = loadScenarioFile(join(PROJECT_ROOT, 'config/scenarios/daily-cycle.json'));
  const r = await runScenario(sc, { name: 'daily-cycle' });
  const s = r.summary;

  // PV: peak × 0.85 × sin(πx)^1.5 over the daylight, in the scenario's local time
  const pv = sc.pv!;
  const start = localParts(Date.parse(sc.start!), sc.timezone!);
  const hm = (v: string) => Number(v.slice(0, 2)) * 60 + Number(v.slice(3));
  const rise = hm(pv.sunrise!);
  const set = hm(pv.sunset!);
  let pvWh = 0;
  for (let t = 0; t < sc.durationS; t += 10) {
    const localMin = (start.hour * 60 + start.minute + t / 60) % 1440;
    const x = (localMin - rise) / (set - rise);
    if (x > 0 && x < 1) pvWh += (pv.peakW * 0.85 * Math.sin(Math.PI * x) ** 1.5 * 10) / 3600;
  }
  close(s.pvWh, pvWh, 0.005, 'PV produced');

  // house: its load steps, each held until the next
  const steps = sc.houseLoadW as [number, number][];
  let houseWh = 0;
  steps.forEach(([atS, w], i) => (houseWh += (w * ((steps[i + 1]?.[0] ?? sc.durationS) - atS)) / 3600));

  // the car's energy: all of it came from PV or the grid, per the inverter's own AC counter
  close(s.carFromPvWh + s.carFromGridWh, s.importedWh, 0.005, 'PV + grid into the car');
  assert.ok(s.carFromPvWh > s.carFromGridWh, 'a sunny day should fill the car mostly from PV');

  // the connection point: import − export = house + car in − car out − PV
  close(s.gridImportWh - s.gridExportWh, houseWh + s.importedWh - s.exportedWh - s.pvWh, 0.01, 'grid balance');

  // self-consumption: at least what was not exported (some export is the car's dispatch), at most all
  const lower = ((s.pvWh - s.gridExportWh) / s.pvWh) * 100;
  assert.ok(s.selfConsumptionPct !== null && s.selfConsumptionPct >= lower - 0.1 && s.selfConsumptionPct <= 100, `self-consumption ${s.selfConsumptionPct} % (>= ${lower.toFixed(1)} %)`);

  // under the virtual clock through the runtime: surplus charging starts the enable delay (60 s) after the
  // sun first covers the minimum (1380 W) beyond the house and the 100 W residual
  const houseAt = (atS: number) => steps.filter(([s0]) => s0 <= atS).at(-1)![1];
  let coveredS = -1;
  for (let atS = 0; atS < 3 * 3600 && coveredS < 0; atS++) {
    const localMin = start.hour * 60 + start.minute + atS / 60;
    const x = (localMin - rise) / (set - rise);
    if (pv.peakW * 0.85 * Math.sin(Math.PI * x) ** 1.5 - houseAt(atS) - 100 >= 1380) coveredS = atS;
  }
  const on = r.eventLog.find((e) => e.kind === 'surplus' && e.message.startsWith('surplus charging on'));
  assert.ok(coveredS >= 0 && on, `surplus covered at ${coveredS} s, event ${JSON.stringify(on)}`);
  // one tick of meter lag either way
  assert.ok(Math.abs(on.atS - (coveredS + 60)) <= 2, `surplus charging on at ${on.atS} s, the sun covered the minimum at ${coveredS} s`);

  // the reward: 0.25 EUR/kWh for what the dispatch delivered
  assert.deepEqual(s.reward, { amount: Math.round(s.dispatches[0].deliveredWh! / 1000 * 0.25 * 100) / 100, currency: 'EUR' });
  assert.match(formatSummary(s), /solar {8}PV \d+(\.\d)? Wh, self-consumed \d+(\.\d)? %; the car took \d+(\.\d)? Wh from PV and \d+(\.\d)? Wh from the grid/);
});
