import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDispatchPayload, parseIsoUtcMs, type ParseResult } from '../../src/uplink/codec.ts';
import { canonicalJson } from '../../src/uplink/canonical.ts';

const NOW = Date.UTC(2026, 10, 23, 17, 0, 0);
const ctx = { nowMs: NOW, source: 'device' };
const parse = (v: unknown, c: Partial<typeof ctx & { maxBytes: number }> = {}): ParseResult =>
  parseDispatchPayload(Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)), { ...ctx, ...c });

function rejected(r: ParseResult): Extract<ParseResult, { ok: false }> {
  assert.equal(r.ok, false, `expected a rejection, got ${JSON.stringify(r)}`);
  return r as Extract<ParseResult, { ok: false }>;
}

const good = { id: 'evt-2026-11-23-0042', powerW: -7000, start: '2026-11-23T18:00:00Z', durationS: 3600, expiresAt: '2026-11-23T18:05:00Z' };

test('the contract example is a dispatch with epoch-ms times and a canonical body', () => {
  const r = parse(good);
  assert.ok(r.ok);
  assert.equal(r.command.kind, 'dispatch');
  if (r.command.kind !== 'dispatch') return;
  assert.deepEqual(r.command.request, {
    id: good.id, powerW: -7000, durationS: 3600, startMs: Date.UTC(2026, 10, 23, 18), expiresAtMs: Date.UTC(2026, 10, 23, 18, 5),
  });
  assert.equal(r.command.receivedMs, NOW);
  assert.equal(r.command.source, 'device');
  assert.equal(r.command.body, '{"durationS":3600,"expiresAt":"2026-11-23T18:05:00Z","id":"evt-2026-11-23-0042","powerW":-7000,"start":"2026-11-23T18:00:00Z"}');
});

test('the body ignores key order, version and equal spellings of the same instant', () => {
  const a = parse(good);
  const b = parse({ v: 1, expiresAt: '2026-11-23T18:05:00.000+00:00', durationS: 3600, start: '2026-11-23T18:00:00.000Z', powerW: -7000, id: good.id });
  assert.ok(a.ok && b.ok && a.command.kind === 'dispatch' && b.command.kind === 'dispatch');
  assert.equal(a.command.body, b.command.body);
  const c = parse({ ...good, powerW: -7001 });
  assert.ok(c.ok && c.command.kind === 'dispatch');
  assert.notEqual(a.command.body, c.command.body);
});

test('start and expiresAt are optional; powerW 0 holds at zero', () => {
  const r = parse({ id: 'a', powerW: 0, durationS: 1 });
  assert.ok(r.ok && r.command.kind === 'dispatch');
  assert.equal(r.command.request.startMs, undefined);
  // neither start nor expiresAt: it may start up to maxDispatchAgeS (300 s by default) after receipt
  assert.equal(r.command.request.expiresAtMs, NOW + 300_000);
  assert.equal(Object.is(r.command.request.powerW, -0), false);
  const z = parse('{"id":"a","powerW":-0,"durationS":1}');
  assert.ok(z.ok && z.command.kind === 'dispatch' && Object.is(z.command.request.powerW, 0));
});

test('cancel form', () => {
  const r = parse({ id: 'evt-1', cancel: true });
  assert.ok(r.ok);
  assert.deepEqual(r.command, { kind: 'cancel', id: 'evt-1', receivedMs: NOW, source: 'device' });
  assert.deepEqual(pick(rejected(parse({ id: 'evt-1', cancel: false }))), { id: 'evt-1', reason: 'invalid', field: 'cancel' });
  assert.deepEqual(pick(rejected(parse({ id: 'evt-1', cancel: 'yes' }))), { id: 'evt-1', reason: 'invalid', field: 'cancel' });
  assert.deepEqual(pick(rejected(parse({ id: 'evt-1', cancel: true, powerW: 5 }))), { id: 'evt-1', reason: 'invalid', field: 'powerW' });
  assert.deepEqual(pick(rejected(parse({ cancel: true }))), { id: null, reason: 'invalid', field: 'id' });
});

test('the reply route is passed through', () => {
  const r = parseDispatchPayload(Buffer.from(JSON.stringify(good)), { ...ctx, source: 'group:north', replyTo: { responseTopic: 'agg/replies', correlationData: 'AQI=' } });
  assert.ok(r.ok);
  assert.equal(r.command.source, 'group:north');
  assert.deepEqual(r.command.replyTo, { responseTopic: 'agg/replies', correlationData: 'AQI=' });
});

function pick(r: Extract<ParseResult, { ok: false }>): { id: string | null; reason: string; field?: string } {
  const o: { id: string | null; reason: string; field?: string } = { id: r.id, reason: r.reason };
  if (r.field !== undefined) o.field = r.field;
  return o;
}

const cases: [string, unknown, { id: string | null; field: string }][] = [
  ['not JSON', '{"id":', { id: null, field: 'payload' }],
  ['an array', '[1,2]', { id: null, field: 'payload' }],
  ['a string', '"x"', { id: null, field: 'payload' }],
  ['null', 'null', { id: null, field: 'payload' }],
  ['empty', '', { id: null, field: 'payload' }],
  ['unknown key', { ...good, foo: 1 }, { id: good.id, field: 'foo' }],
  ['__proto__ key', '{"id":"a","powerW":1,"durationS":1,"__proto__":{"x":1}}', { id: 'a', field: '__proto__' }],
  ['missing id', { powerW: 1, durationS: 1 }, { id: null, field: 'id' }],
  ['id too long (echoed, so the aggregator can match the answer)', { ...good, id: 'x'.repeat(65) }, { id: 'x'.repeat(65), field: 'id' }],
  ['id with a slash (echoed)', { ...good, id: 'a/b' }, { id: 'a/b', field: 'id' }],
  ['id a number', { ...good, id: 42 }, { id: null, field: 'id' }],
  ['missing powerW', { id: 'a', durationS: 1 }, { id: 'a', field: 'powerW' }],
  ['powerW a string', { ...good, powerW: '-7000' }, { id: good.id, field: 'powerW' }],
  ['powerW too large', { ...good, powerW: 1_000_001 }, { id: good.id, field: 'powerW' }],
  ['powerW too negative', { ...good, powerW: -1e6 - 0.5 }, { id: good.id, field: 'powerW' }],
  ['powerW overflows to Infinity', '{"id":"a","powerW":1e400,"durationS":1}', { id: 'a', field: 'powerW' }],
  ['powerW null', { ...good, powerW: null }, { id: good.id, field: 'powerW' }],
  ['missing durationS', { id: 'a', powerW: 1 }, { id: 'a', field: 'durationS' }],
  ['durationS 0', { ...good, durationS: 0 }, { id: good.id, field: 'durationS' }],
  ['durationS 86401', { ...good, durationS: 86401 }, { id: good.id, field: 'durationS' }],
  ['durationS fractional', { ...good, durationS: 1.5 }, { id: good.id, field: 'durationS' }],
  ['durationS a string', { ...good, durationS: '60' }, { id: good.id, field: 'durationS' }],
  ['start not a date', { ...good, start: 'tomorrow' }, { id: good.id, field: 'start' }],
  ['start Feb 30', { ...good, start: '2026-02-30T18:00:00Z' }, { id: good.id, field: 'start' }],
  ['start hour 24', { ...good, start: '2026-11-23T24:00:00Z' }, { id: good.id, field: 'start' }],
  ['start local time', { ...good, start: '2026-11-23T18:00:00+01:00' }, { id: good.id, field: 'start' }],
  ['start without zone', { ...good, start: '2026-11-23T18:00:00' }, { id: good.id, field: 'start' }],
  ['start a number', { ...good, start: 1763920800000 }, { id: good.id, field: 'start' }],
  ['start 8 days ahead', { ...good, start: '2026-12-01T18:00:00Z' }, { id: good.id, field: 'start' }],
  ['expiresAt not a date', { ...good, expiresAt: '2026-13-01T00:00:00Z' }, { id: good.id, field: 'expiresAt' }],
  ['version 2', { ...good, v: 2 }, { id: good.id, field: 'v' }],
  ['version "1"', { ...good, v: '1' }, { id: good.id, field: 'v' }],
  ['sig not a string', { ...good, sig: 5 }, { id: good.id, field: 'sig' }],
  ['issuedAt not a date', { ...good, issuedAt: 'now' }, { id: good.id, field: 'issuedAt' }],
];

for (const [name, input, want] of cases) {
  test(`rejected naming the field: ${name}`, () => {
    const r = rejected(parse(input));
    assert.deepEqual(pick(r), { ...want, reason: 'invalid' });
    assert.ok(r.message.length > 0 && r.message.length < 200, r.message);
  });
}

test('payloads over the size limit are refused before parsing', () => {
  const big = JSON.stringify({ ...good, pad: 'x'.repeat(5000) });
  const r = rejected(parse(big));
  assert.equal(r.field, 'payload');
  assert.match(r.message, /exceeds the limit of 4096/);
  assert.ok(parse(good, { maxBytes: 64 }).ok === false);
});

test('bytes that are not UTF-8 are refused', () => {
  const r = rejected(parseDispatchPayload(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), ctx));
  assert.equal(r.field, 'payload');
});

test('an unknown key with a long or binary name is named, shortened', () => {
  const r = rejected(parse({ id: 'a', powerW: 1, durationS: 1, ['k\u0001'.repeat(100)]: 1 }));
  assert.ok(r.field && r.field.length <= 64 && !/[\u0000-\u001f]/.test(r.field));
});

test('a past expiresAt is valid here: the core answers it with status expired', () => {
  const r = parse({ ...good, start: undefined, expiresAt: '2026-11-23T16:00:00Z' });
  assert.ok(r.ok);
});

test('parseIsoUtcMs', () => {
  assert.equal(parseIsoUtcMs('2026-11-23T18:00:00Z'), Date.UTC(2026, 10, 23, 18));
  assert.equal(parseIsoUtcMs('2024-02-29T00:00:00.5Z'), Date.UTC(2024, 1, 29, 0, 0, 0, 500));
  assert.equal(parseIsoUtcMs('2026-02-29T00:00:00Z'), undefined);
  assert.equal(parseIsoUtcMs('2026-11-23 18:00:00Z'), undefined);
  assert.equal(parseIsoUtcMs('1969-12-31T23:59:59Z'), undefined);
});

test('canonicalJson sorts keys at every depth and has no whitespace', () => {
  assert.equal(canonicalJson({ b: 1, a: { d: [1, { z: 1, y: 2 }], c: 'x' } }), '{"a":{"c":"x","d":[1,{"y":2,"z":1}]},"b":1}');
  assert.throws(() => canonicalJson(JSON.parse('['.repeat(100) + ']'.repeat(100))), /nesting/);
});
