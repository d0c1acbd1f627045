/**
 * Dispatch lifecycle end to end: aggregator → Mosquitto → uplink → runtime and control core → inverter
 * port → store → outbox → Mosquitto → aggregator.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { brokerSkip, startBroker, type TestBroker } from '../helpers/broker.ts';
import { isoUtc } from '../../src/contract.ts';
import { startDevice, untilSubscribed, RATED_W, type Device } from './runtime-harness.ts';
import { waitFor } from './helpers.ts';

async function withDevice(name: string, fn: (d: Device, b: TestBroker) => Promise<void>, groups: string[] = []): Promise<void> {
  const broker = await startBroker();
  const d = await startDevice({ url: broker.url, deviceId: name, groups });
  try {
    await untilSubscribed(d);
    await fn(d, broker);
  } finally {
    await d.close();
    await broker.stop();
  }
}

test('accepted -> active -> completed with deliveredWh, a ledger message, setpoint back to zero', async () => {
  await withDevice('e2e-complete', async (d) => {
    await d.agg.publish(`${d.root}/dispatch`, { id: 'c1', powerW: -5000, durationS: 30 });
    const accepted = await d.waitStatus('c1', 'accepted');
    assert.equal(accepted.acceptedW, -5000);
    await d.waitStatus('c1', 'active');
    assert.equal(d.site.inverter.setpointW, -5000);
    await d.step(31);
    const done = await d.waitStatus('c1', 'completed');
    // 5 kW for 30 s is 41.7 Wh; the first and last ticks ramp
    assert.ok((done.deliveredWh as number) > 30 && (done.deliveredWh as number) <= 42, `deliveredWh ${done.deliveredWh}`);
    assert.equal(d.site.inverter.setpointW, 0);
    await waitFor(() => d.agg.on(`${d.root}/ledger`).some((r) => r.json?.id === 'c1'), 'ledger');
    const ledger = d.agg.on(`${d.root}/ledger`).find((r) => r.json?.id === 'c1')!.json!;
    assert.ok((ledger.exportedWh as number) > 30);
    const seqs = d.answers('c1').map((a) => a.seq as number);
    assert.deepEqual(d.answers('c1').map((a) => a.status), ['accepted', 'active', 'completed']);
    assert.ok(seqs.every((s, i) => i === 0 || s > seqs[i - 1]));
  });
});

test('cancel ends a running dispatch with its energy so far', async () => {
  await withDevice('e2e-cancel', async (d) => {
    await d.agg.publish(`${d.root}/dispatch`, { id: 'c2', powerW: -4000, durationS: 600 });
    await d.waitStatus('c2', 'active');
    await d.step(10);
    await d.agg.publish(`${d.root}/dispatch`, { id: 'c2', cancel: true });
    const c = await d.waitStatus('c2', 'cancelled');
    assert.ok((c.deliveredWh as number) > 0);
    await d.step(1);
    assert.equal(d.site.inverter.setpointW, 0);
  });
});

test('a newer overlapping dispatch supersedes the running one', async () => {
  await withDevice('e2e-supersede', async (d) => {
    await d.agg.publish(`${d.root}/dispatch`, { id: 's1', powerW: -3000, durationS: 600 });
    await d.waitStatus('s1', 'active');
    await d.step(2);
    await d.agg.publish(`${d.root}/dispatch`, { id: 's2', powerW: -6000, durationS: 600 });
    await d.waitStatus('s1', 'superseded');
    await d.waitStatus('s2', 'active');
    assert.equal(d.site.inverter.setpointW, -6000);
  });
});

test('expired: arrived after its expiresAt', async () => {
  await withDevice('e2e-expired', async (d) => {
    const now = d.clock.nowMs();
    await d.agg.publish(`${d.root}/dispatch`, { id: 'x1', powerW: -3000, durationS: 600, expiresAt: isoUtc(now - 1000) });
    const e = await d.waitStatus('x1', 'expired');
    assert.equal(e.reason, 'expired');
    assert.ok(d.setpoints.every((w) => w === 0 || w > 0), 'an expired dispatch never moved the car out');
  });
});

test('duplicate id: same body answered again with its status, different body rejected duplicate_conflict', async () => {
  await withDevice('e2e-dup', async (d) => {
    const body = { id: 'u1', powerW: -2000, durationS: 600 };
    await d.agg.publish(`${d.root}/dispatch`, body);
    await d.waitStatus('u1', 'active');
    const n = d.answers('u1').length;
    // same fields, another key order and an explicit version: the same body
    await d.agg.publish(`${d.root}/dispatch`, { durationS: 600, v: 1, powerW: -2000, id: 'u1' });
    await waitFor(() => d.answers('u1').length === n + 1, 'second answer');
    assert.equal(d.answers('u1')[n].status, 'active');
    await d.agg.publish(`${d.root}/dispatch`, { ...body, powerW: -9000 });
    const conflict = await d.waitStatus('u1', 'rejected');
    assert.equal(conflict.reason, 'duplicate_conflict');
    assert.equal(d.site.inverter.setpointW, -2000, 'nothing changed');
  });
});

test('group dispatch is answered on the device own response topic', async () => {
  await withDevice('e2e-group', async (d) => {
    await d.agg.publish('wallbox/group/north/dispatch', { id: 'g1', powerW: -1500, durationS: 60 });
    await d.waitStatus('g1', 'accepted');
    await d.waitStatus('g1', 'active');
    assert.equal(d.responses.find((r) => r.id === 'g1')?.source, 'group:north');
  }, ['north']);
});

test('MQTT 5 response topic: the core answers there too, with the correlation data', { skip: brokerSkip(['mqtt5']) }, async (t) => {
  const broker = await startBroker();
  if (broker.kind !== 'mosquitto') {
    await broker.stop();
    t.skip('needs an MQTT 5 broker');
    return;
  }
  await broker.stop();
  await withDevice('e2e-rr', async (d) => {
    await d.agg.client.subscribeAsync('agg/replies', { qos: 1 });
    await d.agg.publish(`${d.root}/dispatch`, { id: 'r1', powerW: -1000, durationS: 60 }, {
      qos: 1, properties: { responseTopic: 'agg/replies', correlationData: Buffer.from('corr-7') },
    });
    await waitFor(() => d.agg.on('agg/replies').some((r) => r.json?.status === 'active'), 'replies');
    const replies = d.agg.on('agg/replies');
    assert.deepEqual(replies.map((r) => r.json?.status), ['accepted', 'active']);
    for (const r of replies) assert.deepEqual(r.correlationData, Buffer.from('corr-7'));
  });
});

test('setpoints never exceed the inverter rating, whatever the request', async () => {
  await withDevice('e2e-bound', async (d) => {
    await d.agg.publish(`${d.root}/dispatch`, { id: 'big', powerW: -1_000_000, durationS: 60 });
    const a = await d.waitStatus('big', 'accepted');
    // AC side at the connection point: the car's 11 kW (car side) through the 95 % inverter is 10,450 W
    assert.equal(a.acceptedW, -Math.min(RATED_W, Math.floor(RATED_W * 0.95)));
    await d.step(3);
    assert.ok(d.setpoints.every((w) => Math.abs(w) <= RATED_W), JSON.stringify(d.setpoints));
  });
});
