/**
 * Issue 15 §7, against a real broker and a real SQLite file: outbox rows leave only after their
 * transaction commits, a rolled-back settlement is never heard of, and a ledger message is the same
 * bytes however often it is sent. Also: the uplink is woken by the commit, not by polling.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openStore, type Store } from '../../src/store/index.ts';
import { createUplink, type Uplink } from '../../src/uplink/client.ts';
import { VirtualClock } from '../../hal/sim/virtual-clock.ts';
import { brokerSkip, startBroker } from '../helpers/broker.ts';
import { dbIn, ledgerMsg, record, responseMsg, T0, tempDir } from '../store/helpers.ts';
import { connectAggregator, quietLog, sleep, uplinkConfig, waitFor } from './helpers.ts';

const wall = { wallMs: () => T0 };

function uplinkOn(store: Store, url: string, deviceId: string, timer?: VirtualClock): Uplink {
  return createUplink({
    config: uplinkConfig(deviceId, url), outbox: store.outbox, clock: wall, log: quietLog, reconnectMinMs: 100, reconnectMaxMs: 500,
    onCommand: () => {}, ...(timer ? { timer } : {}),
  });
}

test('outbox rows published before commit: nothing written inside a transaction leaves before it commits, and nothing of a rolled-back one ever does', async (t) => {
  const broker = await startBroker();
  const store = openStore(dbIn(tempDir(t)));
  const uplink = uplinkOn(store, broker.url, 'dev-commit');
  const agg = await connectAggregator(broker.url, ['wallbox/dev-commit/#']);
  try {
    await uplink.start();
    await waitFor(() => uplink.connected(), 'device connected');
    const sentBefore = uplink.stats().sent;

    // a tick that settles a dispatch and then fails: the runtime's transaction rolls back
    assert.throws(() =>
      store.atomically(() => {
        uplink.publish([responseMsg('rb-1', 'active')]);
        store.settleDispatch(record('rb-1', { status: 'completed', exportedWh: 100, startedMs: T0, endedMs: T0 + 60_000 }), [responseMsg('rb-1', 'completed'), ledgerMsg(record('rb-1'))], T0 + 60_000);
        uplink.drain();
        assert.equal(uplink.stats().sent, sentBefore, 'sent from inside the transaction');
        throw new Error('tick failed after the settlement');
      }),
    );

    // a committed one: its rows go out once it has committed
    store.atomically(() => {
      uplink.publish([responseMsg('ok-1', 'accepted')]);
      assert.equal(uplink.stats().sent, sentBefore, 'sent from inside the transaction');
    });
    await waitFor(() => agg.on('wallbox/dev-commit/dispatch/response').length >= 1, 'the committed response');
    await sleep(300);
    const responses = agg.on('wallbox/dev-commit/dispatch/response').map((r) => r.json?.id);
    assert.deepEqual(responses, ['ok-1'], 'only the committed transaction was heard of');
    assert.equal(agg.on('wallbox/dev-commit/ledger').length, 0);
    assert.equal(store.ledger().length, 0);
  } finally {
    await uplink.stop();
    await agg.close();
    store.close();
    await broker.stop();
  }
});

test('ledger messages can be sent twice, differently: a settlement rolled back and redone after a restart reaches the aggregator once', async (t) => {
  const broker = await startBroker();
  const path = dbIn(tempDir(t));
  let store = openStore(path);
  let uplink = uplinkOn(store, broker.url, 'dev-twice');
  const agg = await connectAggregator(broker.url, ['wallbox/dev-twice/ledger']);
  try {
    await uplink.start();
    await waitFor(() => uplink.connected(), 'device connected');
    // the tick's settlement is lost with its transaction (the process dies before the commit)
    assert.throws(() =>
      store.atomically(() => {
        store.settleDispatch(record('tw-1', { status: 'completed', exportedWh: 100, startedMs: T0, endedMs: T0 + 60_000 }), [responseMsg('tw-1', 'completed')], T0 + 60_000);
        uplink.drain();
        throw new Error('killed before the commit');
      }),
    );
    await uplink.stop();
    store.db.close();
    // the restart settles it again from what was measured
    store = openStore(path);
    uplink = uplinkOn(store, broker.url, 'dev-twice');
    await uplink.start();
    await waitFor(() => uplink.connected(), 'device connected again');
    store.settleDispatch(record('tw-1', { status: 'completed', reason: 'interrupted', exportedWh: 120, startedMs: T0, endedMs: T0 + 70_000 }), [responseMsg('tw-1', 'completed')], T0 + 70_000, { interrupted: true });
    await waitFor(() => agg.received.length >= 1, 'a ledger message');
    await sleep(300);
    const forId = agg.received.filter((r) => r.json?.id === 'tw-1');
    assert.equal(forId.length, 1, `ledger messages for tw-1: ${forId.map((r) => r.text).join(' | ')}`);
    assert.equal(forId[0].json?.exportedWh, 120);
  } finally {
    await uplink.stop();
    await agg.close();
    store.close();
    await broker.stop();
  }
});

test('a ledger message re-sent after a crash is byte-identical, and settling again returns that same message', async (t) => {
  const broker = await startBroker();
  const path = dbIn(tempDir(t));
  let store = openStore(path);
  const agg = await connectAggregator(broker.url, ['wallbox/dev-bytes/ledger']);
  let uplink: Uplink | undefined;
  try {
    const q = store.settleDispatch(record('by-1', { status: 'completed', exportedWh: 1234.5678, carSideWh: -1300.25, startedMs: T0, endedMs: T0 + 600_000 }), [responseMsg('by-1', 'completed')], T0 + 600_000);
    const ledgerQ = q.find((m) => m.class === 'ledger')!;
    for (let life = 0; life < 3; life++) {
      uplink = uplinkOn(store, broker.url, 'dev-bytes');
      await uplink.start();
      await waitFor(() => agg.received.length >= life + 1, `ledger message, life ${life}`);
      await uplink.stop();
      // killed: the acknowledgement is still in memory, the row comes back at the next start
      store.db.close();
      store = openStore(path);
      const again = store.settleDispatch(record('by-1', { status: 'completed', exportedWh: 9999, startedMs: T0, endedMs: T0 + 900_000 }), [responseMsg('by-1', 'completed')], T0 + 900_000);
      assert.equal(JSON.stringify(again), JSON.stringify([ledgerQ]));
    }
    const texts = agg.received.map((r) => r.text);
    assert.equal(texts.length, 3);
    assert.equal(new Set(texts).size, 1, `re-sends differ: ${texts.join(' | ')}`);
    assert.equal(JSON.parse(texts[0]).seq, ledgerQ.seq);
    assert.equal(JSON.parse(texts[0]).exportedWh, 1234.568, 'ledger energy is given to the mWh');
  } finally {
    await uplink?.stop();
    await agg.close();
    store.close();
    await broker.stop();
  }
});

test('cheap when nothing happens: a connected, idle uplink never reads the outbox; a commit wakes it without a poll', { skip: brokerSkip(['mqtt5']) && 'needs an MQTT 5 broker: the uplink\'s timers run on a virtual clock this test does not advance, and the 3.1.1 fall-back reconnect is one of them' }, async (t) => {
  const broker = await startBroker();
  const store = openStore(dbIn(tempDir(t)));
  const timer = new VirtualClock(T0);
  let reads = 0;
  const pending = store.outbox.pending.bind(store.outbox);
  store.outbox.pending = (n: number) => {
    reads++;
    return pending(n);
  };
  const uplink = uplinkOn(store, broker.url, 'dev-idle', timer);
  const agg = await connectAggregator(broker.url, ['wallbox/dev-idle/dispatch/response']);
  try {
    await uplink.start();
    await waitFor(() => uplink.connected(), 'device connected');
    await sleep(100);
    const afterConnect = reads;
    // a quiet minute on the uplink's clock: the supervisor ticks 60 times
    for (let i = 0; i < 60; i++) timer.advance(1000);
    // and two real seconds, in which a poll on a real-time interval would have shown too
    await sleep(2200);
    assert.equal(reads, afterConnect, 'the outbox was polled while nothing happened');
    // a row written by the store (not through the uplink) is sent on its commit, with no clock moving
    store.settleDispatch(record('idle-1', { status: 'completed', exportedWh: 1, startedMs: T0, endedMs: T0 + 1000 }), [responseMsg('idle-1', 'completed')], T0 + 1000);
    await waitFor(() => agg.received.length >= 1, 'the response written by the store');
  } finally {
    await uplink.stop();
    await agg.close();
    store.close();
    await broker.stop();
  }
});
