/**
 * Signed dispatch end to end: with uplink.dispatchPublicKey set, only dispatches signed by the
 * aggregator's key move the car; unsigned, wrongly signed, tampered and replayed ones are rejected.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { startBroker } from '../helpers/broker.ts';
import { canonicalJson } from '../../src/uplink/canonical.ts';
import { isoUtc } from '../../src/contract.ts';
import { startDevice } from './runtime-harness.ts';
import { waitFor } from './helpers.ts';

const agg = generateKeyPairSync('ed25519');
const mallory = generateKeyPairSync('ed25519');
const der = agg.publicKey.export({ format: 'der', type: 'spki' });
const rawPublicKey = der.subarray(der.length - 32).toString('base64');

function signed(msg: Record<string, unknown>, key: KeyObject = agg.privateKey): Record<string, unknown> {
  return { ...msg, sig: sign(null, Buffer.from(canonicalJson(msg)), key).toString('base64') };
}

test('signed dispatch: good signature accepted; unsigned, wrong key, tampered and replayed rejected', async () => {
  const broker = await startBroker();
  const d = await startDevice({ url: broker.url, deviceId: 'e2e-signed', uplink: { dispatchPublicKey: rawPublicKey, maxDispatchAgeS: 300 } });
  try {
    const now = () => d.clock.nowMs();
    // probe until subscribed, with a signed cancel of an unknown id
    for (let i = 0; i < 50 && d.uplink.stats().commands === 0; i++) {
      await d.agg.publish(`${d.root}/dispatch`, signed({ id: `probe-${i}`, cancel: true, issuedAt: isoUtc(now()) }));
      await waitFor(() => d.uplink.stats().commands > 0, 'probe', 200).catch(() => {});
    }
    const good = signed({ id: 'sg1', powerW: -3000, durationS: 600, issuedAt: isoUtc(now() - 5000) });
    await d.agg.publish(`${d.root}/dispatch`, good);
    await d.waitStatus('sg1', 'active');
    assert.equal(d.site.inverter.setpointW, -3000);

    const cases: [string, Record<string, unknown>, string][] = [
      ['un1', { id: 'un1', powerW: -9000, durationS: 600, issuedAt: isoUtc(now()) }, 'signature'],
      ['wk1', signed({ id: 'wk1', powerW: -9000, durationS: 600, issuedAt: isoUtc(now()) }, mallory.privateKey), 'signature'],
      ['tp1', { ...signed({ id: 'tp1', powerW: -1000, durationS: 600, issuedAt: isoUtc(now()) }), powerW: -11000 }, 'signature'],
      ['old1', signed({ id: 'old1', powerW: -9000, durationS: 600, issuedAt: isoUtc(now() - 301_000) }), 'replay'],
    ];
    for (const [id, msg, reason] of cases) {
      await d.agg.publish(`${d.root}/dispatch`, msg);
      const r = await d.waitStatus(id, 'rejected');
      assert.equal(r.reason, reason, id);
    }
    // a cancel is a command too: an unsigned one cannot stop the dispatch
    await d.agg.publish(`${d.root}/dispatch`, { id: 'sg1', cancel: true });
    await d.waitStatus('sg1', 'rejected');
    assert.equal(d.answers('sg1').find((a) => a.status === 'rejected')!.reason, 'signature');

    // the very same signed message again: the idempotent answer, not a replay rejection
    const n = d.answers('sg1').length;
    await d.agg.publish(`${d.root}/dispatch`, good);
    await waitFor(() => d.answers('sg1').length === n + 1, 're-delivery answered');
    assert.equal(d.answers('sg1')[n].status, 'active');
    // an older signed message for an id already seen: a replay
    await d.agg.publish(`${d.root}/dispatch`, signed({ id: 'sg1', powerW: -3000, durationS: 600, issuedAt: isoUtc(now() - 60_000) }));
    await waitFor(() => d.answers('sg1').some((a) => a.reason === 'replay'), 'replay rejected');

    await d.step(2);
    assert.equal(d.site.inverter.setpointW, -3000, 'only the signed dispatch ever moved the car');
    assert.ok(d.setpoints.every((w) => w === 0 || w === -3000), JSON.stringify(d.setpoints));
  } finally {
    await d.close();
    await broker.stop();
  }
});
