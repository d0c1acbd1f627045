/**
 * 10,000 hostile payloads through the codec: random bytes, huge, deeply nested, wrong types, boundary
 * numbers, and mutations of valid dispatches. Every one is either a command within the contract's
 * bounds or a rejection with a reason, a field and a message; nothing throws.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ID_PATTERN, MAX_ECHOED_ID_CHARS, MAX_ABS_POWER_W, MAX_DURATION_S, parseDispatchPayload } from '../../src/uplink/codec.ts';

const NOW = Date.UTC(2026, 10, 23, 17, 0, 0);

const boundaryNumbers = fc.constantFrom(
  0, -0, 1, -1, 0.5, 1e6, -1e6, 1e6 + 1, -1e6 - 1, 86400, 86401, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER,
  Number.MAX_VALUE, Number.MIN_VALUE, -Number.MAX_VALUE, 1e-320, 2 ** 53 + 1,
);
const rawNumberText = fc.constantFrom('1e400', '-1e400', '1e-400', '0e0', '-0.0', '1E6', '999999.9999999999', '86400.0', '1.0');
const anyValue = fc.oneof(
  fc.string(), fc.integer(), fc.double(), boundaryNumbers, fc.boolean(), fc.constant(null), fc.array(fc.integer(), { maxLength: 5 }),
  fc.object({ maxDepth: 2 }), fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
);
const validish = fc.record(
  {
    id: fc.oneof(fc.stringMatching(/^[A-Za-z0-9._:-]{1,64}$/), anyValue),
    powerW: fc.oneof(fc.integer({ min: -2_000_000, max: 2_000_000 }), boundaryNumbers, anyValue),
    durationS: fc.oneof(fc.integer({ min: -10, max: 100_000 }), boundaryNumbers, anyValue),
    start: fc.oneof(fc.date({ min: new Date(NOW - 86400_000), max: new Date(NOW + 10 * 86400_000), noInvalidDate: true }).map((d) => d.toISOString()), anyValue),
    expiresAt: fc.oneof(fc.date({ noInvalidDate: true }).map((d) => d.toISOString()), anyValue),
    cancel: fc.oneof(fc.constant(true), anyValue),
    v: fc.oneof(fc.constant(1), anyValue),
    extra: anyValue,
  },
  { requiredKeys: [] },
);
const nested = fc.integer({ min: 1, max: 3000 }).map((n) => '['.repeat(n) + ']'.repeat(n));
const nestedObj = fc.integer({ min: 1, max: 1000 }).map((n) => '{"a":'.repeat(n) + '1' + '}'.repeat(n));
const payloads = fc.oneof(
  { weight: 3, arbitrary: fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)) },
  { weight: 1, arbitrary: fc.integer({ min: 4000, max: 200_000 }).map((n) => Buffer.alloc(n, 0x20)) },
  { weight: 1, arbitrary: nested.map((s) => Buffer.from(s)) },
  { weight: 1, arbitrary: nestedObj.map((s) => Buffer.from(s)) },
  { weight: 6, arbitrary: validish.map((o) => Buffer.from(JSON.stringify(o))) },
  { weight: 1, arbitrary: rawNumberText.map((t) => Buffer.from(`{"id":"n","powerW":${t},"durationS":${t}}`)) },
  { weight: 1, arbitrary: fc.json().map((s) => Buffer.from(s)) },
);

test('codec fuzz: 10,000 payloads, each a bounded command or a reasoned rejection', () => {
  let accepted = 0;
  let rejectedCount = 0;
  fc.assert(
    fc.property(payloads, (buf) => {
      const r = parseDispatchPayload(buf, { nowMs: NOW, source: 'device' });
      if (r.ok) {
        accepted++;
        const c = r.command;
        if (c.kind === 'cancel') return ID_PATTERN.test(c.id);
        const q = c.request;
        return (
          ID_PATTERN.test(q.id) && Number.isFinite(q.powerW) && Math.abs(q.powerW) <= MAX_ABS_POWER_W &&
          Number.isInteger(q.durationS) && q.durationS >= 1 && q.durationS <= MAX_DURATION_S &&
          (q.startMs === undefined || Number.isFinite(q.startMs)) && (q.expiresAtMs === undefined || Number.isFinite(q.expiresAtMs)) &&
          buf.length <= 4096
        );
      }
      rejectedCount++;
      return (
        ['invalid', 'signature', 'replay'].includes(r.reason) && typeof r.field === 'string' && r.field.length > 0 && r.field.length <= 64 &&
        typeof r.message === 'string' && r.message.length > 0 && (r.id === null || (typeof r.id === 'string' && r.id.length <= MAX_ECHOED_ID_CHARS))
      );
    }),
    { numRuns: 10_000, seed: 20261123 },
  );
  assert.equal(accepted + rejectedCount, 10_000);
  assert.ok(accepted > 50, `the generator should reach valid dispatches too (got ${accepted})`);
  console.log(`# codec fuzz: ${accepted} accepted, ${rejectedCount} rejected`);
});
