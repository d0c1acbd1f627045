/**
 * Bounded calls and command channels (src/runtime/port-calls.ts), on the virtual clock, with stand-in
 * devices whose calls answer when the test says so.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtualClock } from '../../hal/sim/virtual-clock.ts';
import { BoundedCaller, CommandChannel } from '../../src/runtime/port-calls.ts';
import { flush } from './stand-ins.ts';

/** A device command whose calls are held until answered by hand; the device takes a value when its call answers. */
function heldDevice() {
  const held: { value: number; answer: () => void; fail: (e: Error) => void }[] = [];
  const device = { value: undefined as number | undefined };
  const invoke = (value: number) =>
    new Promise<void>((resolve, reject) => {
      held.push({
        value,
        answer: () => {
          device.value = value;
          resolve();
        },
        fail: reject,
      });
    });
  return { held, device, invoke };
}

function rig() {
  const clock = new VirtualClock(0);
  const changes: string[] = [];
  const caller = new BoundedCaller(clock, () => 1500, (kind) => changes.push(`${kind}:${caller.fault(kind) ?? 'ok'}`));
  const d = heldDevice();
  const ch = new CommandChannel<number>(caller, 'inverter', 'setPowerW', d.invoke, (w) => w === 0);
  return { clock, caller, changes, ch, ...d };
}

test('a call that does not answer within the bound is a fault of its port naming the call; an answer in time clears it, a late one does not', async () => {
  const r = rig();
  void r.ch.send(-4000);
  r.clock.advance(1499);
  await flush();
  assert.equal(r.caller.fault('inverter'), undefined);
  r.clock.advance(1);
  await flush();
  assert.equal(r.caller.fault('inverter'), 'setPowerW did not answer within 1500 ms');
  r.held[0].answer();
  await flush();
  assert.equal(r.caller.fault('inverter'), 'setPowerW did not answer within 1500 ms', 'a late answer does not clear the fault');
  void r.ch.send(-3000);
  await flush();
  r.held[1].answer();
  await flush();
  assert.equal(r.caller.fault('inverter'), undefined, 'an answer in time clears it');
  assert.deepEqual(r.changes, ['inverter:setPowerW did not answer within 1500 ms', 'inverter:ok']);
});

test('while one call hangs, newer values queue with the latest winning; a zero preempts; outstanding calls stay bounded', async () => {
  const r = rig();
  void r.ch.send(-4000);
  const superseded = r.ch.send(-3000);
  const last = r.ch.send(-2000);
  await flush();
  assert.equal(r.held.length, 1, 'one call in flight, the others queued');
  assert.equal(await superseded, false, 'a queued value replaced by a newer one is not sent');
  void r.ch.send(0);
  await flush();
  assert.deepEqual(r.held.map((h) => h.value), [-4000, 0], 'the zero went out at once, beside the hung call');
  void r.ch.send(0);
  void r.ch.send(-1000);
  await flush();
  assert.equal(r.held.length, 2, 'never more than two calls outstanding');
  r.held[1].answer();
  r.held[0].answer();
  await flush();
  assert.deepEqual(r.held.map((h) => h.value), [-4000, 0, -1000], 'the latest queued value goes out once a slot frees');
  r.held[2].answer();
  await flush();
  assert.equal(r.device.value, -1000);
  assert.equal(r.ch.acknowledged, -1000);
  assert.equal(await last, false);
});

test('a late answer must not overwrite a newer command: the older one reaching the device last is followed by the newest again', async () => {
  const r = rig();
  void r.ch.send(-4000);
  r.clock.advance(1500);
  await flush();
  void r.ch.send(0);
  await flush();
  r.held[1].answer();
  await flush();
  assert.equal(r.ch.acknowledged, 0);
  // the old write answers last: on the device it landed after the zero
  r.held[0].answer();
  await flush();
  assert.equal(r.device.value, -4000, 'the stand-in device took the late write');
  assert.equal(r.ch.acknowledged, 0, 'the late answer does not count as the value in force');
  assert.equal(r.held.length, 3, 'the newest value is sent again');
  assert.equal(r.held[2].value, 0);
  r.held[2].answer();
  await flush();
  assert.equal(r.device.value, 0, 'the device ends at the newest command');
});

test('a call that throws or rejects is answered as failed with its cause; nothing escapes', async () => {
  const clock = new VirtualClock(0);
  const caller = new BoundedCaller(clock, () => 1500, () => {});
  assert.equal(await caller.call('relays', 'setContactor', () => {
    throw new Error('GPIO 17: EIO');
  }), 'failed');
  assert.equal(caller.fault('relays'), 'setContactor failed: GPIO 17: EIO');
  assert.equal(await caller.call('relays', 'setContactor', () => Promise.reject(new Error('EPERM'))), 'failed');
  assert.equal(caller.fault('relays'), 'setContactor failed: EPERM');
  assert.equal(await caller.call('relays', 'setContactor', async () => {}), 'answered');
  assert.equal(caller.fault('relays'), undefined);
});
