/**
 * The uplink against a real broker (Mosquitto when installed): birth, graceful offline, dispatch intake
 * on own and group topics, MQTT 5 request/response, invalid payloads answered, outbox order across a
 * broker outage, protocol fallback, connect watchdog.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { brokerSkip, startBroker, freePort } from '../helpers/broker.ts';
import { createUplink, type InvalidDispatch, type Uplink } from '../../src/uplink/client.ts';
import { startEmbeddedBroker } from '../../src/uplink/embedded-broker.ts';
import type { DispatchCommand } from '../../src/control/types.ts';
import type { OutboundMessage } from '../../src/contract.ts';
import { MemoryOutbox } from './memory-outbox.ts';
import { connectAggregator, quietLog, uplinkConfig, waitFor } from './helpers.ts';

const clock = { wallMs: () => Date.now() };
const fast = { reconnectMinMs: 100, reconnectMaxMs: 1000, log: quietLog };

function device(url: string, id: string, extra: Record<string, unknown> = {}, outbox = new MemoryOutbox()) {
  const commands: DispatchCommand[] = [];
  const invalid: InvalidDispatch[] = [];
  const uplink = createUplink({
    config: uplinkConfig(id, url, extra), outbox, clock, version: '9.9.9', ...fast,
    onCommand: (c) => commands.push(c), onInvalid: (i) => invalid.push(i),
  });
  return { uplink, commands, invalid, outbox };
}

const ledger = (i: number): OutboundMessage => ({ topic: 'ledger', payload: { id: `d${i}`, exportedWh: i }, qos: 1, retain: false, class: 'ledger' });

test('birth retained on connect; graceful stop leaves a retained offline with ts and seq, not the last will', async () => {
  const broker = await startBroker();
  const d = device(broker.url, 'dev-birth');
  let agg: Awaited<ReturnType<typeof connectAggregator>> | undefined;
  try {
    await d.uplink.start();
    await waitFor(() => d.uplink.connected(), 'device connected');
    assert.equal(d.uplink.stats().protocolVersion, broker.kind === 'mosquitto' ? 5 : 4);
    agg = await connectAggregator(broker.url, ['wallbox/dev-birth/status']);
    await waitFor(() => agg!.received.length >= 1, 'retained birth');
    const birth = agg.received[0];
    assert.equal(birth.retain, true);
    assert.equal(birth.json?.online, true);
    assert.equal(birth.json?.version, '9.9.9');
    assert.match(String(birth.json?.startedAt), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.equal(typeof birth.json?.seq, 'number');
    await d.uplink.stop();
    await waitFor(() => agg!.received.length >= 2, 'offline status');
    const off = agg.received[1];
    assert.equal(off.json?.online, false);
    assert.equal(typeof off.json?.ts, 'string', 'the explicit offline carries ts; the last will would not');
    assert.ok((off.json?.seq as number) > (birth.json?.seq as number));
  } finally {
    await d.uplink.stop();
    await agg?.close();
    await broker.stop();
  }
});

test('start() resolves with no broker, publish never throws, and the device connects when the broker appears', async () => {
  const port = await freePort();
  const d = device(`mqtt://127.0.0.1:${port}`, 'dev-late');
  await d.uplink.start();
  try {
    assert.equal(d.uplink.connected(), false);
    d.uplink.publish([ledger(1), { topic: 'state', payload: { mode: 'idle' }, qos: 0, retain: false, class: 'state' }]);
    d.uplink.publish([{ topic: 'bad/#', payload: {}, qos: 1, retain: false, class: 'event' }]);
    d.uplink.publish(null as unknown as OutboundMessage[]);
    assert.equal(d.outbox.size(), 1);
    assert.equal(d.uplink.stats().qos0Dropped, 1);
    assert.equal(d.uplink.stats().publishErrors, 1);
    const broker = await startBroker({ port });
    try {
      const agg = await connectAggregator(broker.url, ['wallbox/dev-late/#']);
      await waitFor(() => d.outbox.size() === 0, 'backlog drained');
      await waitFor(() => agg.on('wallbox/dev-late/ledger').length === 1, 'ledger delivered');
      await agg.close();
    } finally {
      await d.uplink.stop();
      await broker.stop();
    }
  } finally {
    await d.uplink.stop();
  }
});

test('dispatch intake: own topic and group topic; MQTT 5 response topic and correlation data honoured', async () => {
  const broker = await startBroker();
  const d = device(broker.url, 'dev-intake', { groups: ['north', 'all'] });
  const agg = await connectAggregator(broker.url, ['wallbox/dev-intake/dispatch/response', 'agg/replies/#']);
  try {
    await d.uplink.start();
    await waitFor(() => d.uplink.connected(), 'device connected');
    // the subscription is made right after CONNACK; give it a moment through a round trip of our own
    await waitFor(() => d.uplink.stats().connects === 1, 'connect');
    const probe = { id: 'probe', powerW: -1000, durationS: 60 };
    await waitFor(() => d.commands.length > 0 || (void agg.publish('wallbox/dev-intake/dispatch', probe), false), 'first command', 10_000).catch(() => {});
    await waitFor(() => d.commands.length > 0, 'probe command');
    d.commands.length = 0;

    await agg.publish('wallbox/dev-intake/dispatch', { id: 'own-1', powerW: -7000, durationS: 3600 });
    await agg.publish('wallbox/group/north/dispatch', { id: 'grp-1', powerW: -3000, durationS: 60 });
    await agg.publish('wallbox/group/south/dispatch', { id: 'grp-2', powerW: -3000, durationS: 60 });
    if (broker.kind === 'mosquitto')
      await agg.publish('wallbox/dev-intake/dispatch', { id: 'rr-1', powerW: 2000, durationS: 60 }, {
        qos: 1, properties: { responseTopic: 'agg/replies/dev-intake', correlationData: Buffer.from([1, 2, 3]) },
      });
    const want = broker.kind === 'mosquitto' ? 3 : 2;
    await waitFor(() => d.commands.length >= want, 'commands');
    const byId = new Map(d.commands.map((c) => [c.kind === 'dispatch' ? c.request.id : c.id, c]));
    assert.equal(byId.get('own-1')?.source, 'device');
    assert.equal(byId.get('grp-1')?.source, 'group:north');
    assert.equal(byId.has('grp-2'), false, 'a group the device is not in');
    if (broker.kind === 'mosquitto') {
      const rr = byId.get('rr-1')!;
      assert.deepEqual(rr.replyTo, { responseTopic: 'agg/replies/dev-intake', correlationData: Buffer.from([1, 2, 3]).toString('base64') });
      // what the runtime does with the core's response: one message, the reply route copied over
      d.uplink.publish([{
        topic: 'dispatch/response', payload: { id: 'rr-1', status: 'accepted', acceptedW: 2000 }, qos: 1, retain: false, class: 'response',
        responseTopic: rr.replyTo!.responseTopic, correlationData: rr.replyTo!.correlationData,
      }]);
      await waitFor(() => agg.on('agg/replies/dev-intake').length === 1 && agg.on('wallbox/dev-intake/dispatch/response').length >= 1, 'both copies of the response');
      const reply = agg.on('agg/replies/dev-intake')[0];
      assert.deepEqual(reply.correlationData, Buffer.from([1, 2, 3]));
      assert.equal(reply.json?.status, 'accepted');
      assert.deepEqual(reply.json, agg.on('wallbox/dev-intake/dispatch/response').find((r) => r.json?.id === 'rr-1')?.json, 'the same message, same seq, on both topics');
      await waitFor(() => d.outbox.size() === 0, 'row acknowledged once both copies are');
    }
  } finally {
    await d.uplink.stop();
    await agg.close();
    await broker.stop();
  }
});

test('invalid payloads are answered by the uplink, naming the field, and never reach the core', async () => {
  const broker = await startBroker();
  const d = device(broker.url, 'dev-invalid');
  const agg = await connectAggregator(broker.url, ['wallbox/dev-invalid/dispatch/response', 'agg/r']);
  try {
    await d.uplink.start();
    await waitFor(() => d.uplink.connected(), 'device connected');
    const sends: [string | Buffer, string | null, string][] = [
      ['{"id":"x1","powerW":"high","durationS":60}', 'x1', 'powerW'],
      ['{"id":"x2","powerW":-1000,"durationS":60,"colour":"red"}', 'x2', 'colour'],
      ['not json', null, 'payload'],
      [Buffer.alloc(5000, 0x41), null, 'payload'],
      ['{"id":"x3","powerW":-1000,"durationS":60,"v":7}', 'x3', 'v'],
    ];
    // wait until the subscription is live, then send the real cases
    await waitFor(() => d.invalid.length > 0 || (void agg.publish('wallbox/dev-invalid/dispatch', '{"probe":1}'), false), 'probe', 10_000).catch(() => {});
    await waitFor(() => d.invalid.length > 0, 'probe answered');
    const base = d.invalid.length;
    for (const [p] of sends) await agg.publish('wallbox/dev-invalid/dispatch', p);
    await waitFor(() => d.invalid.length === base + sends.length, 'all judged');
    const responses = () => agg.on('wallbox/dev-invalid/dispatch/response').map((r) => r.json!);
    await waitFor(() => responses().length >= base + sends.length, 'all answered');
    const answers = responses().slice(base);
    sends.forEach(([, id, field], i) => {
      assert.equal(answers[i].id, id);
      assert.equal(answers[i].status, 'rejected');
      assert.equal(answers[i].reason, 'invalid');
      assert.equal(answers[i].field, field);
      assert.equal(typeof answers[i].message, 'string');
      assert.equal(typeof answers[i].seq, 'number');
    });
    assert.equal(d.commands.length, 0);
    if (broker.kind === 'mosquitto') {
      await agg.publish('wallbox/dev-invalid/dispatch', '{"id":"x4"}', { qos: 1, properties: { responseTopic: 'agg/r', correlationData: Buffer.from('c') } });
      await waitFor(() => agg.on('agg/r').length === 1, 'answer on the response topic');
      assert.equal(agg.on('agg/r')[0].json?.field, 'powerW');
      assert.deepEqual(agg.on('agg/r')[0].correlationData, Buffer.from('c'));
    }
  } finally {
    await d.uplink.stop();
    await agg.close();
    await broker.stop();
  }
});

test('broker outage: QoS 1 backlog queued while down arrives afterwards in seq order, nothing missing', { skip: brokerSkip(['mqtt5', 'persistence']) }, async () => {
  const broker = await startBroker({ persistence: true, extraConfig: ['max_queued_messages 100000'] });
  const d = device(broker.url, 'dev-outage');
  // the aggregator keeps a persistent session, so what the device sends while it reconnects is queued for it
  const agg = await connectAggregator(broker.url, ['wallbox/dev-outage/ledger'], { clean: false, clientId: 'agg-outage', protocolVersion: 5, properties: { sessionExpiryInterval: 600 } });
  try {
    await d.uplink.start();
    await waitFor(() => d.uplink.connected(), 'device connected');
    for (let i = 0; i < 50; i++) d.uplink.publish([ledger(i)]);
    await waitFor(() => agg.received.length === 50, 'first 50');
    await broker.restart(async () => {
      await waitFor(() => !d.uplink.connected(), 'device saw the outage');
      for (let i = 50; i < 550; i++) d.uplink.publish([ledger(i)]);
      assert.equal(d.outbox.size(), 500);
    });
    await waitFor(() => d.outbox.size() === 0, 'outbox drained', 30_000);
    await waitFor(() => new Set(agg.received.map((r) => r.json!.seq)).size === 550, 'all 550 seqs', 30_000).catch((e) => {
      console.log('# got', agg.received.length, new Set(agg.received.map((r) => r.json!.seq)).size, JSON.stringify(d.uplink.stats()), agg.client.connected);
      throw e;
    });
    const seqs = agg.received.map((r) => r.json!.seq as number);
    const firstSeen: number[] = [];
    const seen = new Set<number>();
    for (const s of seqs) if (!seen.has(s)) (seen.add(s), firstSeen.push(s));
    assert.deepEqual(firstSeen, [...firstSeen].sort((a, b) => a - b), 'in seq order');
    const ids = agg.received.map((r) => r.json!.id as string);
    assert.equal(new Set(ids).size, 550);
    assert.ok(d.uplink.stats().connects >= 2);
  } finally {
    await d.uplink.stop();
    await agg.close();
    await broker.stop();
  }
});

test('3.1.1 fallback: the embedded broker refuses MQTT 5 and the uplink works over 3.1.1', async () => {
  const b = await startEmbeddedBroker(0);
  const url = `mqtt://127.0.0.1:${b.port}`;
  const d = device(url, 'dev-311');
  const agg = await connectAggregator(url, ['wallbox/dev-311/#'], { protocolVersion: 4 });
  try {
    await d.uplink.start();
    await waitFor(() => d.uplink.connected(), 'device connected');
    assert.equal(d.uplink.stats().protocolVersion, 4);
    await waitFor(() => d.commands.length > 0 || (void agg.publish('wallbox/dev-311/dispatch', { id: 'e1', powerW: -1, durationS: 5 }), false), 'command', 10_000).catch(() => {});
    await waitFor(() => d.commands.length > 0, 'command over 3.1.1');
    d.uplink.publish([ledger(1)]);
    await waitFor(() => agg.on('wallbox/dev-311/ledger').length === 1, 'ledger over 3.1.1');
  } finally {
    await d.uplink.stop();
    await agg.close();
    await b.close();
  }
});

test('connect watchdog: a server that accepts TCP and never answers does not leave the uplink stuck', async () => {
  const sockets = new Set<Socket>();
  const hole = createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
  });
  await new Promise<void>((r) => hole.listen(0, '127.0.0.1', () => r()));
  const port = (hole.address() as { port: number }).port;
  const d = device(`mqtt://127.0.0.1:${port}`, 'dev-hole', { connectTimeoutS: 1 });
  try {
    await d.uplink.start();
    await waitFor(() => d.uplink.stats().connectAttempts >= 3, 'repeated attempts', 30_000);
    assert.equal(d.uplink.connected(), false);
    assert.ok(sockets.size >= 2, 'each attempt opened a new connection');
  } finally {
    await d.uplink.stop();
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => hole.close(() => r()));
  }
});

test('queued QoS 1 dispatches sent while the device was stopped arrive when it comes back (persistent session)', { skip: brokerSkip(['mqtt5']) }, async (t) => {
  const broker = await startBroker();
  if (broker.kind !== 'mosquitto') {
    await broker.stop();
    t.skip('needs Mosquitto (session expiry)');
    return;
  }
  const first = device(broker.url, 'dev-session');
  const agg = await connectAggregator(broker.url, []);
  try {
    await first.uplink.start();
    await waitFor(() => first.uplink.connected(), 'connected');
    await waitFor(() => first.commands.length > 0 || (void agg.publish('wallbox/dev-session/dispatch', { id: 'p', powerW: 1, durationS: 1 }), false), 'subscribed', 10_000).catch(() => {});
    await waitFor(() => first.commands.length > 0, 'subscribed');
    await first.uplink.stop();
    await agg.publish('wallbox/dev-session/dispatch', { id: 'while-away', powerW: -2000, durationS: 600 });
    const second = device(broker.url, 'dev-session');
    await second.uplink.start();
    try {
      await waitFor(() => second.commands.some((c) => c.kind === 'dispatch' && c.request.id === 'while-away'), 'queued dispatch delivered');
    } finally {
      await second.uplink.stop();
    }
  } finally {
    await first.uplink.stop();
    await agg.close();
    await broker.stop();
  }
});

export type { Uplink };

test('url "embedded": the uplink starts the local broker, and mosquitto_pub / mosquitto_sub work against it', { skip: brokerSkip(['clients']) }, async (t) => {
  const { spawn, spawnSync } = await import('node:child_process');
  if (spawnSync('mosquitto_pub', ['--help'], { stdio: 'ignore' }).error) return t.skip('mosquitto clients not installed');
  const port = await freePort();
  // the embedded broker lives in this process: the CLI must run asynchronously, not block the event loop
  const pub = (m: string) =>
    new Promise<void>((resolve) => {
      const c = spawn('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-q', '1', '-t', 'wallbox/dev-embedded/dispatch', '-m', m], { stdio: 'ignore' });
      c.once('exit', () => resolve());
      c.once('error', () => resolve());
    });
  const d = device('embedded', 'dev-embedded', { embeddedPort: port });
  let out = '';
  let sub: ReturnType<typeof spawn> | undefined;
  try {
    await d.uplink.start();
    await waitFor(() => d.uplink.connected(), 'connected to the embedded broker');
    // started once the broker listens; the retained birth reaches it anyway
    sub = spawn('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(port), '-v', '-t', 'wallbox/#'], { stdio: ['ignore', 'pipe', 'ignore'] });
    sub.stdout!.on('data', (b) => (out += b));
    assert.equal(d.uplink.stats().protocolVersion, 4);
    await waitFor(() => out.includes('wallbox/dev-embedded/status'), 'mosquitto_sub sees the birth');
    for (let i = 0; i < 50 && d.commands.length === 0; i++) {
      await pub('{"id":"cli-1","powerW":-7000,"durationS":600}');
      await waitFor(() => d.commands.length > 0, 'command', 200).catch(() => {});
    }
    assert.equal(d.commands[0].kind === 'dispatch' && d.commands[0].request.id, 'cli-1');
    await pub('{"id":"cli-2"}');
    await waitFor(() => out.includes('"field":"powerW"'), 'mosquitto_sub sees the rejection');
  } finally {
    sub?.kill();
    await d.uplink.stop();
  }
});

test('url "embedded": MQTT 3.1.1 from the first connect, no protocol fall-back warning at every start', async () => {
  const port = await freePort();
  const warnings: string[] = [];
  const log = { ...quietLog, warn: (_o: object, m: string) => warnings.push(m) };
  const uplink = createUplink({
    config: uplinkConfig('dev-embedded-311', 'embedded', { embeddedPort: port }), outbox: new MemoryOutbox(), clock, version: '9.9.9', ...fast, log,
    onCommand: () => {},
  });
  try {
    await uplink.start();
    await waitFor(() => uplink.connected(), 'connected to the embedded broker');
    assert.equal(uplink.stats().protocolVersion, 4);
    assert.deepEqual(warnings, []);
  } finally {
    await uplink.stop();
  }
});

test('MQTT 5 message expiry: a dispatch that expired at the broker while the device was away never arrives', { skip: brokerSkip(['mqtt5']) }, async (t) => {
  const broker = await startBroker();
  if (broker.kind !== 'mosquitto') {
    await broker.stop();
    return t.skip('needs an MQTT 5 broker');
  }
  const first = device(broker.url, 'dev-expiry');
  const agg = await connectAggregator(broker.url, []);
  try {
    await first.uplink.start();
    await waitFor(() => first.uplink.connected(), 'connected');
    for (let i = 0; i < 50 && first.commands.length === 0; i++) {
      await agg.publish('wallbox/dev-expiry/dispatch', { id: `p${i}`, cancel: true });
      await waitFor(() => first.commands.length > 0, 'subscribed', 200).catch(() => {});
    }
    await first.uplink.stop();
    await agg.publish('wallbox/dev-expiry/dispatch', { id: 'stale', powerW: -2000, durationS: 600 }, { qos: 1, properties: { messageExpiryInterval: 1 } });
    await agg.publish('wallbox/dev-expiry/dispatch', { id: 'fresh', powerW: -2000, durationS: 600 }, { qos: 1, properties: { messageExpiryInterval: 600 } });
    await new Promise((r) => setTimeout(r, 2100));
    const second = device(broker.url, 'dev-expiry');
    await second.uplink.start();
    try {
      await waitFor(() => second.commands.some((c) => c.kind === 'dispatch' && c.request.id === 'fresh'), 'fresh one delivered');
      assert.equal(second.commands.some((c) => c.kind === 'dispatch' && c.request.id === 'stale'), false);
    } finally {
      await second.uplink.stop();
    }
  } finally {
    await first.uplink.stop();
    await agg.close();
    await broker.stop();
  }
});

test('signed dispatch configured with an unusable key: every dispatch is refused, none reaches the core', async () => {
  const broker = await startBroker();
  const d = device(broker.url, 'dev-nokey', { dispatchPublicKey: '/nonexistent/aggregator.pub' });
  const agg = await connectAggregator(broker.url, ['wallbox/dev-nokey/dispatch/response']);
  try {
    await d.uplink.start();
    await waitFor(() => d.uplink.connected(), 'connected');
    assert.match(d.uplink.stats().lastError ?? '', /cannot read key file/);
    for (let i = 0; i < 50 && d.invalid.length === 0; i++) {
      await agg.publish('wallbox/dev-nokey/dispatch', { id: 'n1', powerW: -1000, durationS: 60 });
      await waitFor(() => d.invalid.length > 0, 'judged', 200).catch(() => {});
    }
    await waitFor(() => agg.received.length > 0, 'answer');
    assert.equal(agg.received[0].json?.reason, 'signature');
    assert.equal(d.commands.length, 0);
  } finally {
    await d.uplink.stop();
    await agg.close();
    await broker.stop();
  }
});

test('reconfigure: groups re-subscribed at once; a connection setting reconnects cleanly (no last will); prefix needs a restart', async () => {
  const broker = await startBroker();
  const d = device(broker.url, 'dev-reconf', { groups: ['a'] });
  const agg = await connectAggregator(broker.url, ['wallbox/dev-reconf/status']);
  try {
    await d.uplink.start();
    await waitFor(() => d.uplink.connected(), 'connected');
    const viaGroup = async (g: string, id: string) => {
      for (let i = 0; i < 30 && !d.commands.some((c) => c.kind === 'cancel' && c.id === id); i++) {
        await agg.publish(`wallbox/group/${g}/dispatch`, { id, cancel: true });
        await waitFor(() => d.commands.some((c) => c.kind === 'cancel' && c.id === id), id, 200).catch(() => {});
      }
      return d.commands.some((c) => c.kind === 'cancel' && c.id === id);
    };
    assert.ok(await viaGroup('a', 'a1'));
    const cfg = uplinkConfig('dev-reconf', broker.url, { groups: ['b'] }).uplink;
    assert.deepEqual(d.uplink.reconfigure(cfg), { applied: ['groups'], restartNeeded: [] });
    assert.ok(await viaGroup('b', 'b1'));
    await agg.publish('wallbox/group/a/dispatch', { id: 'a2', cancel: true });
    const connects = d.uplink.stats().connects;
    const r = d.uplink.reconfigure({ ...cfg, keepaliveS: 20, prefix: 'other' });
    assert.deepEqual(r, { applied: ['keepaliveS'], restartNeeded: ['prefix'] });
    await waitFor(() => d.uplink.stats().connects === connects + 1, 'reconnected');
    assert.equal(d.commands.some((c) => c.kind === 'cancel' && c.id === 'a2'), false, 'group a left');
    await waitFor(() => agg.received.filter((m) => m.json?.online === true).length >= 2, 'second birth');
    assert.equal(agg.received.some((m) => m.json?.online === false), false, 'no last will on a clean reconnect');
    assert.equal(d.uplink.root, 'wallbox/dev-reconf');
  } finally {
    await d.uplink.stop();
    await agg.close();
    await broker.stop();
  }
});
