/**
 * Issue 15 §8 and §10: old commands never run twice or late. The signed-dispatch replay guard lives in
 * the SQLite file and survives restarts and kill -9; finished dispatches can be reloaded for the core's
 * duplicate rule; a flood is bounded at intake; outbox bound enforcement uses an index.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, sign } from 'node:crypto';
import { openStore } from '../../src/store/index.ts';
import { createUplink, type InvalidDispatch } from '../../src/uplink/client.ts';
import { canonicalJson } from '../../src/uplink/canonical.ts';
import type { DispatchCommand } from '../../src/control/types.ts';
import { startBroker } from '../helpers/broker.ts';
import { dbIn, record, responseMsg, T0, tempDir } from '../store/helpers.ts';
import { connectAggregator, quietLog, sleep, uplinkConfig, waitFor } from './helpers.ts';

const { publicKey, privateKey } = generateKeyPairSync('ed25519');
const pem = publicKey.export({ format: 'pem', type: 'spki' }).toString();
const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
const signed = (m: Record<string, unknown>) => JSON.stringify({ ...m, sig: sign(null, Buffer.from(canonicalJson(m)), privateKey).toString('base64') });

test('signed dispatch replay protection does not survive a restart: after a restart the same signed messages are refused as replays', async (t) => {
  const broker = await startBroker();
  const path = dbIn(tempDir(t));
  const agg = await connectAggregator(broker.url, ['wallbox/dev-replay/dispatch/response']);
  const now = Date.now();
  const dispatch = signed({ id: 'sr-1', powerW: -7000, durationS: 600, issuedAt: iso(now - 20_000) });
  const cancel = signed({ id: 'sr-1', cancel: true, issuedAt: iso(now - 10_000) });
  const lives: { commands: DispatchCommand[]; invalid: InvalidDispatch[] }[] = [];
  try {
    for (let life = 0; life < 2; life++) {
      const store = openStore(path);
      const l = { commands: [] as DispatchCommand[], invalid: [] as InvalidDispatch[] };
      lives.push(l);
      const uplink = createUplink({
        config: uplinkConfig('dev-replay', broker.url, { dispatchPublicKey: pem }), outbox: store.outbox, clock: { wallMs: () => Date.now() }, log: quietLog,
        replay: store.replay, onCommand: (c) => l.commands.push(c), onInvalid: (i) => l.invalid.push(i),
      } as Parameters<typeof createUplink>[0]);
      await uplink.start();
      await waitFor(() => uplink.connected(), 'device connected');
      await agg.publish('wallbox/dev-replay/dispatch', dispatch);
      if (life === 0) await agg.publish('wallbox/dev-replay/dispatch', cancel);
      await waitFor(() => l.commands.length + l.invalid.length >= (life === 0 ? 2 : 1), 'the messages taken in');
      await sleep(200);
      await uplink.stop();
      // killed: nothing closed cleanly
      store.db.close();
    }
    assert.deepEqual(lives[0].commands.map((c) => c.kind), ['dispatch', 'cancel']);
    assert.deepEqual(lives[1].commands, [], 'the cancelled dispatch reached the core again after the restart');
    assert.equal(lives[1].invalid[0]?.reason, 'replay');
    assert.equal(lives[1].invalid[0]?.id, 'sr-1');
  } finally {
    await agg.close();
    await broker.stop();
  }
});

test('finished dispatches are reloadable after a restart, newest first, for as long as they are kept', (t) => {
  const path = dbIn(tempDir(t));
  const s = openStore(path);
  s.recordDispatch(record('open-1'), T0);
  s.recordDispatch(record('rej-1', { status: 'rejected', reason: 'floor' }), T0 + 1000);
  s.settleDispatch(record('done-1', { status: 'completed', exportedWh: 5, startedMs: T0, endedMs: T0 + 60_000 }), [responseMsg('done-1', 'completed')], T0 + 60_000);
  s.settleDispatch(record('can-1', { status: 'cancelled', exportedWh: 1, startedMs: T0, endedMs: T0 + 30_000 }), [responseMsg('can-1', 'cancelled')], T0 + 90_000);
  s.db.close();
  const again = openStore(path);
  assert.deepEqual(again.recentDispatches().map((r) => [r.id, r.status]), [['can-1', 'cancelled'], ['done-1', 'completed'], ['rej-1', 'rejected']]);
  assert.deepEqual(again.recentDispatches({ limit: 1 }).map((r) => r.id), ['can-1']);
  assert.deepEqual(again.recentDispatches({ sinceMs: T0 + 60_000 }).map((r) => r.id), ['can-1', 'done-1']);
  assert.equal(again.recentDispatches()[0].body, record('can-1').body, 'the body comes back for the duplicate rule');
  assert.throws(() => again.recentDispatches({ limit: -1 }), /limit/);
  again.close();
});

test('5,000 valid dispatches in a flood: beyond the live-dispatch bound they are answered dispatch_limit and never reach the core', async () => {
  // Mosquitto queues at most 1,000 QoS 1 messages per client by default and drops the rest: a device slower
  // than the publisher (a loaded machine) would then lose part of the flood at the broker, not in the device
  const broker = await startBroker({ extraConfig: ['max_queued_messages 0'] });
  const { MemoryOutbox } = await import('./memory-outbox.ts');
  const outbox = new MemoryOutbox();
  const commands: DispatchCommand[] = [];
  const invalid: InvalidDispatch[] = [];
  // the core takes nothing in during the flood (its next tick has not come): the live count stays 0
  const uplink = createUplink({
    config: uplinkConfig('dev-flood', broker.url), outbox, clock: { wallMs: () => Date.now() }, log: quietLog,
    onCommand: (c) => commands.push(c), onInvalid: (i) => invalid.push(i), liveDispatches: () => 0, maxLiveDispatches: 50,
  } as Parameters<typeof createUplink>[0]);
  const agg = await connectAggregator(broker.url, []);
  try {
    await uplink.start();
    await waitFor(() => uplink.connected(), 'device connected');
    const start = Date.now() + 3_600_000;
    for (let i = 0; i < 5000; i++) void agg.publish('wallbox/dev-flood/dispatch', { id: `f-${i}`, powerW: -1000, durationS: 60, start: iso(start + i * 60_000) });
    await waitFor(() => commands.length + invalid.length >= 5000, 'the flood taken in', 60_000);
    assert.equal(commands.length, 50);
    assert.equal(invalid.length, 4950);
    assert.ok(invalid.every((i) => i.reason === 'dispatch_limit'));
    // cancels always pass
    await agg.publish('wallbox/dev-flood/dispatch', { id: 'f-0', cancel: true });
    await waitFor(() => commands.length === 51, 'the cancel');
  } finally {
    await uplink.stop();
    await agg.close();
    await broker.stop();
  }
});

test('outbox bound enforcement runs on an index once only undroppable rows are left', (t) => {
  const s = openStore(dbIn(tempDir(t)), { storage: { outboxMaxRows: 10 } });
  const plan = s.db.prepare('EXPLAIN QUERY PLAN SELECT rowId FROM outbox WHERE class = ? ORDER BY rowId LIMIT ?').all('state', 5) as { detail: string }[];
  assert.ok(plan.some((p) => /USING (COVERING )?INDEX outbox_class/.test(p.detail)), JSON.stringify(plan));
  for (let i = 0; i < 50; i++) s.outbox.enqueue([responseMsg(`r${i}`, 'accepted')], T0 + i);
  assert.equal(s.outbox.size(), 50, 'responses are never dropped');
  s.close();
});
