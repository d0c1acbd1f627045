/** Fault bookkeeping shared by the SunSpec and CAN drivers (hal/inverter/fault-slots.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FaultSlots } from '../../hal/inverter/fault-slots.ts';
import type { PortFault } from '../../hal/ports.ts';

test('the first slot set wins; listeners hear of code changes only; a slot keeps its start while set', () => {
  let now = 1000;
  const heard: [string | undefined, string | undefined][] = [];
  const f = new FaultSlots<'bus' | 'keepalive' | 'following'>(['bus', 'keepalive', 'following'], () => now, (after?: PortFault, before?: PortFault) => heard.push([after?.code, before?.code]));
  assert.equal(f.current(), undefined);
  f.set('following', 'not_following', 'a');
  now = 2000;
  f.set('following', 'not_following', 'b'); // message only: nobody told, start kept
  assert.deepEqual(f.current(), { code: 'not_following', message: 'b', sinceMs: 1000 });
  f.set('bus', 'send_failed', 'x');
  assert.equal(f.current()!.code, 'send_failed');
  now = 3000;
  f.set('bus', 'disconnected', 'y'); // same slot, another cause: still faulty since 2000
  assert.deepEqual(f.current(), { code: 'disconnected', message: 'y', sinceMs: 2000 });
  f.set('keepalive', 'keepalive_lost', 'z'); // behind bus: the port's fault does not change
  f.set('bus', undefined);
  assert.equal(f.current()!.code, 'keepalive_lost');
  f.set('keepalive', undefined);
  f.set('following', undefined);
  f.set('following', undefined); // clearing twice is nothing
  assert.equal(f.current(), undefined);
  assert.deepEqual(heard, [
    ['not_following', undefined],
    ['send_failed', 'not_following'],
    ['disconnected', 'send_failed'],
    ['keepalive_lost', 'disconnected'],
    ['not_following', 'keepalive_lost'],
    [undefined, 'not_following'],
  ]);
});
