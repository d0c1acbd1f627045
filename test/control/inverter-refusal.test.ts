/**
 * A setpoint the inverter cannot represent, or does not follow (issue 14, point 7): the inverter port
 * reports `unrepresentable` / `not_following` (hal/inverter). Writing 0 W clears `unrepresentable`, so
 * a core that simply zeroes on the fault and resumes when it clears flips the dispatch active ↔
 * curtailed every other tick forever. It must be curtailed once, with a reason, and held at zero.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decide, initialMemory } from '../../src/control/decide.ts';
import type { DispatchResponse, Memory, Plan } from '../../src/control/types.ts';
import { T0, dispatchCmd, settings, snapshot } from '../helpers/control.ts';

const c = settings({ vehicle: { departureTime: null, dischargeWithoutCarConsent: true } });

/** One tick a second; the inverter reports the refusal while the last commanded setpoint was not 0 (as the driver does). */
function run(fault: (lastSetpointW: number) => string | undefined, ticks: number): { plans: Plan[]; responses: DispatchResponse[] } {
  let m: Memory = initialMemory(T0 - 60_000);
  // settle the start-up first
  for (let i = 0; i < 3; i++) m = decide(snapshot(T0 - 3000 + i * 1000), c, m, T0 - 3000 + i * 1000).memory;
  const plans: Plan[] = [];
  const responses: DispatchResponse[] = [];
  for (let i = 0; i < ticks; i++) {
    const now = T0 + i * 1000;
    const s = snapshot(now, { inverter: { fault: fault(m.lastSetpointW) } });
    if (i === 0) s.commands = [dispatchCmd('flap-1', -11000, 600, now)];
    const p = decide(s, c, m, now);
    plans.push(p);
    responses.push(...p.responses.filter((r) => r.id === 'flap-1'));
    m = p.memory;
  }
  return { plans, responses };
}

test('an unrepresentable setpoint flips the dispatch active ↔ curtailed every other tick: now curtailed once and held at zero', () => {
  const unrepresentable = (lastW: number) => (lastW !== 0 ? 'unrepresentable: WSet -11000 W cannot be written with WSet_SF -10 (register 40xxx)' : undefined);
  const { plans, responses } = run(unrepresentable, 30);
  assert.ok(plans.some((p) => p.setpointW !== 0), 'it was tried once');
  const statuses = responses.map((r) => r.status);
  assert.deepEqual(statuses.filter((s) => s === 'curtailed').length, 1, `curtailed once: ${JSON.stringify(statuses)}`);
  const curtailedAt = statuses.indexOf('curtailed');
  assert.ok(!statuses.slice(curtailedAt).includes('active'), `never active again: ${JSON.stringify(statuses)}`);
  assert.equal(responses[curtailedAt].reason, 'inverter_limit');
  const firstRefusal = plans.findIndex((p) => p.events.some((e) => /cannot hold it/.test(e.message)));
  assert.ok(firstRefusal >= 0);
  assert.ok(plans.slice(firstRefusal).every((p) => p.setpointW === 0), 'zero for the rest of its window');
});

test('an inverter that does not follow its command: the dispatch is curtailed once, inverter_limit', () => {
  // 20 kW of charging while commanded to discharge 11 kW; once at 0 W the device follows again
  const notFollowing = (lastW: number) => (lastW !== 0 ? 'not_following: commanded -11000 W, measured +20000 W (wrong sign)' : undefined);
  const { plans, responses } = run(notFollowing, 20);
  assert.deepEqual(responses.filter((r) => r.status === 'curtailed').map((r) => r.reason), ['inverter_limit']);
  assert.ok(!responses.slice(responses.findIndex((r) => r.status === 'curtailed')).some((r) => r.status === 'active'));
  assert.ok(plans.slice(2).every((p) => p.setpointW === 0));
});

test('a dispatch the inverter holds is not touched', () => {
  const { plans, responses } = run(() => undefined, 10);
  assert.ok(plans.slice(1).every((p) => p.setpointW < 0));
  assert.ok(!responses.some((r) => r.status === 'curtailed'));
});
