/**
 * Every shipped scenario (config/scenarios/*.json) runs through the real core and runtime under the
 * virtual clock, and its `expect` block is checked against the summary.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../src/config/load.ts';
import { loadScenarioFile, runScenario, type SimulationResult } from '../../src/simulate.ts';

type Range = { min?: number; max?: number };

function matchValue(actual: unknown, expected: unknown, path: string): void {
  if (expected !== null && typeof expected === 'object' && !Array.isArray(expected) && ('min' in expected || 'max' in expected)) {
    const r = expected as Range;
    assert.equal(typeof actual, 'number', `${path}: expected a number, got ${JSON.stringify(actual)}`);
    if (r.min !== undefined) assert.ok((actual as number) >= r.min, `${path}: ${actual} < ${r.min}`);
    if (r.max !== undefined) assert.ok((actual as number) <= r.max, `${path}: ${actual} > ${r.max}`);
    return;
  }
  if (expected !== null && typeof expected === 'object' && !Array.isArray(expected)) {
    for (const [k, v] of Object.entries(expected)) matchValue((actual as Record<string, unknown>)?.[k], v, `${path}.${k}`);
    return;
  }
  assert.deepEqual(actual, expected, path);
}

export function checkExpectations(r: SimulationResult, expect: Record<string, unknown>): void {
  for (const [key, want] of Object.entries(expect)) {
    if (key === 'dispatches') {
      for (const d of want as { id: string }[]) {
        const got = r.summary.dispatches.find((x) => x.id === d.id);
        assert.ok(got, `dispatch ${d.id} has no answer`);
        matchValue(got, d, `dispatches[${d.id}]`);
      }
    } else if (key === 'responses') {
      for (const w of want as Record<string, unknown>[])
        assert.ok(r.responses.some((x) => Object.entries(w).every(([k, v]) => (x as unknown as Record<string, unknown>)[k] === v)), `no response like ${JSON.stringify(w)} in ${JSON.stringify(r.responses)}`);
    } else if (key === 'departures') {
      (want as Record<string, unknown>[]).forEach((w, i) => matchValue(r.summary.departures[i], w, `departures[${i}]`));
    } else matchValue((r.summary as unknown as Record<string, unknown>)[key], want, key);
  }
}

const dir = join(PROJECT_ROOT, 'config/scenarios');
describe('shipped scenarios', () => {
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.json')).sort()) {
    test(file, async () => {
      const sc = loadScenarioFile(join(dir, file));
      assert.ok(sc.expect, `${file} has no expect block`);
      const r = await runScenario(sc, { name: file });
      checkExpectations(r, sc.expect!);
    });
  }
});
