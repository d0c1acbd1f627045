/**
 * The shared, driver-independent parts of inverter command handling, on their own (no I/O): the
 * command-following checker (hal/inverter/command-following.ts) and the coalescing command queue
 * (hal/inverter/command-queue.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { commandWritten, followingToleranceW, INITIAL_FOLLOWING, judgeFollowing } from '../../hal/inverter/command-following.ts';
import { CommandQueue } from '../../hal/inverter/command-queue.ts';

test('command following (pure): tolerance, settle time with the ramp, and the three causes', () => {
  const rated = 11000;
  assert.equal(followingToleranceW(rated), 550);
  assert.equal(followingToleranceW(3000), 300);
  let st = commandWritten(INITIAL_FOLLOWING, -11000, 0, rated);
  assert.equal(st.settleUntilMs, 10_000);
  assert.equal(commandWritten(st, -11000, 4000, rated), st, 'the same command again does not restart the settle time');
  const at = (acPowerW: number, atMs: number) => judgeFollowing(st, { acPowerW, atMs, gridForming: false }, rated);
  assert.equal(at(20000, 9999), undefined, 'off while settling: no verdict yet');
  assert.deepEqual(at(-11000, 100), { following: true }, 'within the tolerance while settling: following');
  assert.deepEqual({ ...at(20000, 10_000), message: undefined }, { following: false, cause: 'wrong_sign', commandW: -11000, measuredW: 20000, toleranceW: 550, message: undefined });
  assert.equal((at(0, 10_000) as { cause: string }).cause, 'nothing');
  assert.equal((at(-5000, 10_000) as { cause: string }).cause, 'far_off');
  assert.deepEqual(at(-10451, 10_000), { following: true });
  assert.equal(judgeFollowing(st, { acPowerW: 800, atMs: 20_000, gridForming: true }, rated), undefined, 'forming: the load sets the power');
  st = commandWritten(st, 11000, 20_000, rated);
  assert.equal(st.settleUntilMs, 20_000 + 5000 + 10_000);
  // any reading within the tolerance after the settle time follows; any reading beyond it does not
  fc.assert(
    fc.property(fc.integer({ min: -11000, max: 11000 }), fc.integer({ min: -22000, max: 22000 }), (c, m) => {
      const s = commandWritten(INITIAL_FOLLOWING, c, 0, rated);
      const v = judgeFollowing(s, { acPowerW: m, atMs: s.settleUntilMs, gridForming: false }, rated)!;
      return v.following === Math.abs(m - c) <= 550;
    }),
  );
});

test('command queue (pure): one pending command per kind, the latest wins, pending kinds in the order they were last issued', async () => {
  const q = new CommandQueue<{ power: number; gridForming: boolean }>();
  const settled: string[] = [];
  q.push('power', 1000).then(() => settled.push('p1000'));
  q.push('gridForming', false).then(() => settled.push('gf'));
  q.push('power', 2000).then(() => settled.push('p2000'));
  assert.equal(q.length, 2);
  assert.deepEqual(q.kinds(), ['gridForming', 'power'], 'grid-forming off, issued before the latest setpoint, goes first');
  assert.equal(q.pending('power'), 2000);
  const a = q.take()!;
  assert.deepEqual([a.kind, a.value], ['gridForming', false]);
  a.settle();
  const b = q.take()!;
  assert.deepEqual([b.kind, b.value], ['power', 2000]);
  b.settle();
  assert.equal(q.take(), undefined);
  await new Promise((res) => setImmediate(res));
  assert.deepEqual(settled.sort(), ['gf', 'p1000', 'p2000'], 'a superseded command settles with the one that replaced it');
  // bounded whatever the sequence: never more than one entry per kind
  fc.assert(
    fc.property(fc.array(fc.oneof(fc.integer().map((w) => ['power', w] as const), fc.boolean().map((g) => ['gridForming', g] as const)), { maxLength: 200 }), (cmds) => {
      const q2 = new CommandQueue<{ power: number; gridForming: boolean }>();
      for (const [k, v] of cmds) q2.push(k, v as never);
      const last = new Map(cmds.map(([k, v]) => [k, v]));
      return q2.length === last.size && q2.kinds().every((k) => q2.pending(k) === last.get(k));
    }),
  );
});
