/**
 * Regression `dispatch-reason-while-stale`: a dispatch that arrived while an input was stale or a device
 * had stopped answering, before that became a fault (control.faultAfterS), or at a start before the
 * inverter's first reading, was rejected with reason `fault` ("the device is in its safe state"), so an
 * aggregator looked for a fault that was not there. It is `stale_data` until the fault is declared, and
 * `fault` after; a dispatch sent again once the inputs are fresh is accepted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decide, initialMemory } from '../../src/control/decide.ts';
import type { Memory, Plan, Snapshot } from '../../src/control/types.ts';
import { dispatchCmd, settings, snapshot, T0 } from '../helpers/control.ts';

type Over = Parameters<typeof snapshot>[1];

function step(c: ReturnType<typeof settings>, mem: Memory, atS: number, over: Over): Plan {
  const now = T0 + atS * 1000;
  return decide(snapshot(now, over), c, mem, now);
}

const reasons = (p: Plan) => p.responses.map((r) => `${r.id}:${r.status}:${r.reason ?? ''}`);

test('dispatch-reason-while-stale: stale_data before the fault is declared, fault after', () => {
  const c = settings({ vehicle: { departureTime: null } });
  const faultAfterS = c.control.faultAfterS;
  assert.ok(faultAfterS >= 3, `faultAfterS ${faultAfterS}`);
  let mem = initialMemory(T0);
  let p = step(c, mem, 0, { vehicle: { socPct: 85 } });
  mem = p.memory;
  // the inverter stops answering at 1 s: a timeout fault on its port, not yet the device's fault
  const silent = (atS: number, id: string): Over => ({ vehicle: { socPct: 85 }, inverter: { atMs: T0, fault: 'timeout: no answer from unit 1' }, commands: [dispatchCmd(id, -5000, 600, T0 + atS * 1000)] });
  p = step(c, mem, 1, silent(1, 'early'));
  mem = p.memory;
  assert.notEqual(p.mode, 'fault');
  assert.deepEqual(reasons(p), ['early:rejected:stale_data']);
  // past faultAfterS of unhealthy inputs: the device is in fault, and says so
  for (let t = 2; t <= faultAfterS + 2; t++) mem = step(c, mem, t, { vehicle: { socPct: 85 }, inverter: { atMs: T0, fault: 'timeout: no answer from unit 1' } }).memory;
  p = step(c, mem, faultAfterS + 3, silent(faultAfterS + 3, 'late'));
  mem = p.memory;
  assert.equal(p.mode, 'fault');
  assert.deepEqual(reasons(p), ['late:rejected:fault']);
});

test('dispatch-reason-while-stale: at a start before the first inverter reading, stale_data; then accepted', () => {
  const c = settings({ vehicle: { departureTime: null } });
  const noReading: Snapshot['inverter'] = { atMs: undefined, powerW: undefined, maxChargeW: undefined, maxDischargeW: undefined, ratedW: undefined } as unknown as Snapshot['inverter'];
  let mem = initialMemory(T0);
  let p = step(c, mem, 0, { vehicle: { socPct: 85 }, inverter: noReading, commands: [dispatchCmd('queued', -5000, 600, T0)] });
  mem = p.memory;
  assert.deepEqual(reasons(p), ['queued:rejected:stale_data']);
  p = step(c, mem, 1, { vehicle: { socPct: 85 }, commands: [dispatchCmd('again', -5000, 600, T0 + 1000)] });
  assert.deepEqual(reasons(p), ['again:accepted:', 'again:active:']);
  assert.equal(p.setpointW, -5000);
});
