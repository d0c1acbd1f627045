/**
 * mqtts:// against Mosquitto with certificates made in the test: the device verifies the broker against
 * its CA and authenticates with its client certificate; a broker whose certificate does not verify is
 * refused and the uplink keeps retrying without ever connecting.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { brokerSkip, freePort, startBroker, type TestBroker } from '../helpers/broker.ts';
import { makeTestPki, mosquittoTlsConfig, opensslAvailable, type TestPki } from '../helpers/tls.ts';
import { createUplink } from '../../src/uplink/client.ts';
import { MemoryOutbox } from './memory-outbox.ts';
import { connectAggregator, quietLog, uplinkConfig, waitFor } from './helpers.ts';

async function tlsBroker(pki: TestPki): Promise<{ broker: TestBroker; goodPort: number; roguePort: number } | undefined> {
  const goodPort = await freePort();
  const roguePort = await freePort();
  const broker = await startBroker({
    extraConfig: [
      ...mosquittoTlsConfig(goodPort, pki),
      ...mosquittoTlsConfig(roguePort, { caCert: pki.caCert, serverCert: pki.otherServerCert, serverKey: pki.otherServerKey }, false),
    ],
  });
  if (broker.kind !== 'mosquitto') {
    await broker.stop();
    return undefined;
  }
  return { broker, goodPort, roguePort };
}

test('TLS: connects with the right CA and client certificate; refuses a server certificate that does not verify', { skip: brokerSkip(['tls']) || (opensslAvailable() ? false : 'needs the openssl CLI (Debian package "openssl") to make the test certificates') }, async (t) => {
  if (!opensslAvailable()) return t.skip('openssl CLI not installed');
  const pki = makeTestPki();
  const b = await tlsBroker(pki);
  if (!b) {
    pki.remove();
    return t.skip('needs Mosquitto for a TLS listener');
  }
  const tls = { ca: pki.caCert, cert: pki.clientCert, key: pki.clientKey };
  const good = createUplink({
    config: uplinkConfig('dev-tls', `mqtts://127.0.0.1:${b.goodPort}`, { tls }), outbox: new MemoryOutbox(), clock: { wallMs: () => Date.now() },
    log: quietLog, reconnectMinMs: 100, reconnectMaxMs: 500, onCommand: () => {},
  });
  const rogue = createUplink({
    config: uplinkConfig('dev-tls-rogue', `mqtts://127.0.0.1:${b.roguePort}`, { tls }), outbox: new MemoryOutbox(), clock: { wallMs: () => Date.now() },
    log: quietLog, reconnectMinMs: 100, reconnectMaxMs: 300, onCommand: () => {},
  });
  const noCert = createUplink({
    config: uplinkConfig('dev-tls-nocert', `mqtts://127.0.0.1:${b.goodPort}`, { tls: { ca: pki.caCert } }), outbox: new MemoryOutbox(), clock: { wallMs: () => Date.now() },
    log: quietLog, reconnectMinMs: 100, reconnectMaxMs: 300, onCommand: () => {},
  });
  const agg = await connectAggregator(b.broker.url, ['wallbox/dev-tls/ledger']);
  try {
    await good.start();
    await rogue.start();
    await noCert.start();
    await waitFor(() => good.connected(), 'TLS connection');
    assert.equal(good.stats().protocolVersion, 5);
    good.publish([{ topic: 'ledger', payload: { id: 't1' }, qos: 1, retain: false, class: 'ledger' }]);
    await waitFor(() => agg.received.length === 1, 'message over TLS reaches the plain listener');
    await waitFor(() => rogue.stats().connectAttempts >= 3, 'rogue retried');
    assert.equal(rogue.stats().connects, 0);
    assert.match(rogue.stats().lastError ?? '', /certificate|self[- ]signed|verify/i);
    await waitFor(() => noCert.stats().connectAttempts >= 2, 'no-cert retried');
    assert.equal(noCert.stats().connects, 0, 'the broker requires a client certificate');
  } finally {
    await good.stop();
    await rogue.stop();
    await noCert.stop();
    await agg.close();
    await b.broker.stop();
    pki.remove();
  }
});

test('TLS: a missing certificate file is reported, retried, and never throws', async () => {
  const port = await freePort();
  const u = createUplink({
    config: uplinkConfig('dev-tls-missing', `mqtts://127.0.0.1:${port}`, { tls: { ca: '/nonexistent/ca.pem' } }), outbox: new MemoryOutbox(),
    clock: { wallMs: () => Date.now() }, log: quietLog, reconnectMinMs: 50, reconnectMaxMs: 100, onCommand: () => {},
  });
  try {
    await u.start();
    await waitFor(() => u.stats().connectAttempts >= 2, 'retries');
    assert.match(u.stats().lastError ?? '', /nonexistent\/ca\.pem/);
  } finally {
    await u.stop();
  }
});
