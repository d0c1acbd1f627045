/**
 * Local autonomy and nothing lost: the broker goes away in the middle of a dispatch. The dispatch runs
 * and ends on its own time while offline; when the broker is back every response and ledger message
 * arrives, in seq order, once per seq.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { brokerSkip, startBroker } from '../helpers/broker.ts';
import { startDevice, untilSubscribed } from './runtime-harness.ts';
import { waitFor } from './helpers.ts';

test('broker stopped mid-dispatch: the dispatch completes on schedule offline; afterwards every message arrives in order, once', { skip: brokerSkip(['persistence']) }, async () => {
  const broker = await startBroker({ persistence: true, extraConfig: ['max_queued_messages 100000'] });
  const d = await startDevice({ url: broker.url, deviceId: 'e2e-outage', persistentAggregator: true });
  try {
    await untilSubscribed(d);
    await d.agg.publish(`${d.root}/dispatch`, { id: 'o1', powerW: -6000, durationS: 60 });
    await d.waitStatus('o1', 'active');
    await d.step(10);
    await broker.restart(async () => {
      await waitFor(() => !d.uplink.connected(), 'device saw the outage');
      assert.equal(d.site.inverter.setpointW, -6000, 'losing the broker changes nothing the car does');
      await d.step(20);
      assert.equal(d.site.inverter.setpointW, -6000);
      await d.step(31);
      assert.equal(d.site.inverter.setpointW, 0, 'ended on its own time, offline');
      const done = d.responses.find((r) => r.id === 'o1' && r.status === 'completed');
      assert.ok(done && (done.deliveredWh ?? 0) > 80, JSON.stringify(done));
      assert.ok(d.uplink.stats().outboxRows >= 2, 'completed response and ledger wait in the outbox');
    });
    const done = await d.waitStatus('o1', 'completed');
    await waitFor(() => d.agg.on(`${d.root}/ledger`).some((r) => r.json?.id === 'o1'), 'ledger after the outage');
    await waitFor(() => d.uplink.stats().outboxRows === 0, 'outbox drained');
    const ledger = d.agg.on(`${d.root}/ledger`).find((r) => r.json?.id === 'o1')!.json!;
    assert.equal(ledger.exportedWh, done.deliveredWh);

    // the broker's own redeliveries to the aggregator after its restart carry DUP; what the device sent does not
    const all = d.agg.received.filter((r) => r.topic === `${d.root}/dispatch/response` || r.topic === `${d.root}/ledger`);
    const got = all.filter((r) => !r.dup).map((r) => r.json!);
    const seqs = got.map((j) => j.seq as number);
    assert.equal(new Set(seqs).size, seqs.length, `exactly once per seq: ${JSON.stringify(got)}`);
    assert.ok(seqs.every((s, i) => i === 0 || s > seqs[i - 1]), `in order: ${seqs.join(',')}`);
    assert.ok(all.filter((r) => r.dup).every((r) => seqs.includes(r.json!.seq as number)), 'a redelivery repeats a seq already seen');
    assert.deepEqual([...new Set(d.answers('o1').map((a) => a.status))], ['accepted', 'active', 'completed']);
  } finally {
    await d.close();
    await broker.stop();
  }
});
