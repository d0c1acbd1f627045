/**
 * Issue 15 §8 and §10 at the codec: old commands expire, duplicate keys are refused, a rejected payload
 * echoes the id it carried.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, sign } from 'node:crypto';
import { duplicateKey, parseDispatchPayload } from '../../src/uplink/codec.ts';
import { canonicalJson } from '../../src/uplink/canonical.ts';
import { ReplayGuard } from '../../src/uplink/signing.ts';
import { decide, initialMemory } from '../../src/control/decide.ts';
import { settings, snapshot } from '../helpers/control.ts';

const NOW = Date.UTC(2026, 10, 23, 17, 0, 0);
const iso = (ms: number) => new Date(ms).toISOString().replace(/\.000Z$/, 'Z');
const parse = (o: unknown, nowMs = NOW, extra = {}) => parseDispatchPayload(Buffer.from(typeof o === 'string' ? o : JSON.stringify(o)), { nowMs, source: 'device', ...extra });

test('old commands run late: a dispatch without start or expiresAt, issued two hours ago, is already expired when it arrives', () => {
  const r = parse({ id: 'late-1', powerW: -7000, durationS: 600, issuedAt: iso(NOW - 2 * 3_600_000) });
  assert.ok(r.ok && r.command.kind === 'dispatch');
  // 300 s (uplink.maxDispatchAgeS) after it was issued, independent of the code: 2 h ago + 5 min
  assert.equal(r.command.request.expiresAtMs, NOW - 2 * 3_600_000 + 300_000);
  assert.ok(r.command.request.expiresAtMs! < NOW);
});

test('old commands run late: the window follows uplink.maxDispatchAgeS and is counted from receipt without issuedAt', () => {
  const r = parse({ id: 'late-2', powerW: -7000, durationS: 600 }, NOW, { maxAgeS: 60 });
  assert.ok(r.ok && r.command.kind === 'dispatch');
  assert.equal(r.command.request.expiresAtMs, NOW + 60_000);
  // an issuedAt ahead of the device's clock does not stretch it
  const f = parse({ id: 'late-3', powerW: -7000, durationS: 600, issuedAt: iso(NOW + 30_000) }, NOW, { maxAgeS: 60 });
  assert.ok(f.ok && f.command.kind === 'dispatch');
  assert.equal(f.command.request.expiresAtMs, NOW + 60_000);
  // an explicit start or expiresAt is the aggregator's own word
  const s = parse({ id: 'late-4', powerW: -7000, durationS: 600, start: iso(NOW + 3_600_000) });
  assert.ok(s.ok && s.command.kind === 'dispatch' && s.command.request.expiresAtMs === undefined);
  // the default window is not part of the body: a re-delivery is still the same dispatch
  const again = parse({ id: 'late-2', powerW: -7000, durationS: 600 }, NOW + 1000, { maxAgeS: 60 });
  assert.ok(again.ok && again.command.kind === 'dispatch' && again.command.body === r.command.body);
});

test('old commands run late: the core answers such a dispatch expired and never runs it', () => {
  const r = parse({ id: 'late-5', powerW: -7000, durationS: 600, issuedAt: iso(NOW - 2 * 3_600_000) });
  assert.ok(r.ok);
  const plan = decide({ ...snapshot(NOW), commands: [r.command] }, settings(), initialMemory(NOW), NOW);
  const resp = plan.responses.find((x) => x.id === 'late-5');
  assert.equal(resp?.status, 'expired');
  assert.equal(resp?.reason, 'expired');
  assert.equal(plan.activeDispatchId ?? null, null);
  assert.ok(plan.setpointW >= 0, 'nothing is exported for it');
});

test('payloads with duplicate keys are refused, not the last one winning', () => {
  const r = parse('{"id":"dup-1","powerW":-1000,"durationS":60,"powerW":-11000}');
  assert.ok(!r.ok);
  assert.equal(r.reason, 'invalid');
  assert.equal(r.field, 'powerW');
  assert.equal(r.id, 'dup-1');
  assert.match(r.message, /duplicate/);
  // nested and escaped forms are seen too; equal keys in different objects are fine
  assert.equal(duplicateKey('{"a":{"b":1,"\\u0062":2}}'), 'b');
  assert.equal(duplicateKey('{"a":{"b":1},"c":{"b":2},"d":[{"b":1},{"b":2}]}'), undefined);
  assert.equal(duplicateKey('{"a":"}\\",\\"a\\":1","b":2}'), undefined);
  assert.equal(duplicateKey('{"id":"x","id":"y"}'), 'id');
});

test('a payload rejected for its id is answered with the id it carried, cut to 128 characters', () => {
  const bad = parse({ id: 'evt/42', powerW: -7000, durationS: 60 });
  assert.ok(!bad.ok);
  assert.equal(bad.id, 'evt/42');
  assert.equal(bad.field, 'id');
  const long = parse({ id: 'y'.repeat(1000), powerW: -7000, durationS: 60 });
  assert.ok(!long.ok);
  assert.equal(long.id, 'y'.repeat(128));
  const num = parse({ id: 42, powerW: -7000, durationS: 60 });
  assert.ok(!num.ok && num.id === null);
});

test('signed replay guard: the same message again is a re-delivery; after a cancel, the old dispatch is a replay', () => {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const signed = (m: Record<string, unknown>) => ({ ...m, sig: sign(null, Buffer.from(canonicalJson(m)), privateKey).toString('base64') });
  const guard = new ReplayGuard();
  const ctx = { publicKey, replay: guard };
  const d = signed({ id: 's1', powerW: -7000, durationS: 600, issuedAt: iso(NOW - 10_000) });
  const c = signed({ id: 's1', cancel: true, issuedAt: iso(NOW - 5_000) });
  assert.ok(parse(d, NOW, ctx).ok);
  assert.ok(parse(d, NOW, ctx).ok, 'an identical re-delivery reaches the core, which answers it idempotently');
  assert.ok(parse(c, NOW, ctx).ok);
  const again = parse(d, NOW + 1000, ctx);
  assert.ok(!again.ok && again.reason === 'replay');
});
