/**
 * Faults in plain words: each fault the runtime names (src/control/decide.ts, src/control/backup.ts, the
 * port wrappers) gets the homeowner's words and something to do; the runtime's wording stays beside it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { plainFault, plainFaults } from '../../src/ui/faults.ts';

test('each runtime fault gets its own plain words and what to do', () => {
  const cases: [string, RegExp, RegExp][] = [
    ['emergency stop pressed', /emergency stop is pressed/, /release the emergency stop/],
    ['grid contactor still closed 2 s after the open command', /separates the house from the grid/, /Call your installer/],
    ['inverter: reading 12 s old', /power electronics/, /inverter has power/],
    ['inverter: setPowerW did not answer within 4500 ms', /power electronics/, /inverter has power/],
    ['vehicle: SoC 45 s old', /does not hear from the car/, /charging cable/],
    ['vehicle link: bridge not connected', /does not hear from the car/, /charging cable/],
    ['grid sense: line read failed', /whether the grid is there/, /grid sense line/],
  ];
  for (const [detail, what, todo] of cases) {
    const f = plainFault(detail);
    assert.match(f.what, what, detail);
    assert.match(f.todo, todo, detail);
    assert.equal(f.detail, detail);
  }
  const other = plainFault('something nobody planned for');
  assert.match(other.what, /found a fault/);
  assert.match(other.todo, /restart the wallbox or call your installer/);
});

test('a status\'s faults: the core\'s, the ports\' and the runtime\'s own, each once', () => {
  const list = plainFaults({ fault: 'inverter: no reading yet', portFaults: ['inverter: no reading yet', 'vehicle link: timeout'], faults: ['emergency stop pressed'] });
  assert.deepEqual(list.map((f) => f.detail), ['inverter: no reading yet', 'vehicle link: timeout', 'emergency stop pressed']);
  assert.deepEqual(plainFaults({ fault: null, portFaults: [], faults: [] }), []);
});
