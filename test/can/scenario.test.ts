/**
 * The shipped CAN scenarios run through `wallbox simulate`'s machinery (real core and runtime, the CAN driver
 * per process life, the simulated hybrid inverter on the home's power stage) and meet their `expect` blocks
 * (test/scenarios runs every shipped scenario too; this file checks what is particular to the CAN path).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../src/config/load.ts';
import { loadScenarioFile, runScenario } from '../../src/simulate.ts';

test('can-dispatch-into-floor.json: curtailed at the floor, completed, a restart on the way, no breach', async () => {
  const sc = loadScenarioFile(join(PROJECT_ROOT, 'config/scenarios/can-dispatch-into-floor.json'));
  assert.ok(sc.inverter?.can, 'a CAN scenario');
  const r = await runScenario(sc, { name: 'can-dispatch-into-floor' });
  // the file's expect block, checked here directly
  const s = r.summary;
  assert.deepEqual([s.unsafeContactorCloses, s.backfeedS, s.floorBreaches], [0, 0, 0]);
  assert.ok(s.minSocPct >= 49.9, `min SoC ${s.minSocPct} %`);
  assert.equal(s.dispatches.find((d) => d.id === 'can-deep-1')?.status, 'completed');
  assert.ok(r.responses.some((x) => x.id === 'can-deep-1' && x.status === 'curtailed' && x.reason === 'floor'));
  assert.equal(r.summary.restarts, 1);
  // the power moved through the CAN path: the home's stage was told only by the simulated inverter's limits
  assert.ok(r.summary.exportedWh > 3000, `${r.summary.exportedWh} Wh exported`);
  assert.equal(r.site.inverter.commandCount, 0, 'nothing drove the power stage through its own port');
});

test('a scenario with a bad inverter.can is refused naming the key', async () => {
  const sc = loadScenarioFile(join(PROJECT_ROOT, 'config/scenarios/can-dispatch-into-floor.json'));
  sc.inverter!.can = { profile: 'byd-hvs' };
  await assert.rejects(runScenario(sc), /inverter\.can\.profile: "byd-hvs" is not a known profile/);
});
