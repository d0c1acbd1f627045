/**
 * Hostile payloads over the wire into the running device: 2,000 through Mosquitto into the uplink and the
 * runtime (the codec alone takes 10,000 in codec-fuzz.test.ts). Every payload is judged (a command for the
 * core or an answered rejection), the process keeps going, and no setpoint leaves the inverter's rating.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { startBroker } from '../helpers/broker.ts';
import { startDevice, untilSubscribed, RATED_W } from './runtime-harness.ts';
import { waitFor } from './helpers.ts';

const COUNT = 2000;

function payloads(nowMs: number): Buffer[] {
  const iso = (ms: number) => new Date(ms).toISOString();
  const num = fc.oneof(fc.double(), fc.integer(), fc.constantFrom(0, -0, 1e6, -1e6, 1e6 + 1, -1e6 - 1, 86400, 86401, Number.MAX_VALUE, Number.MIN_VALUE, -11000, -11001));
  const anyv = fc.oneof(fc.string(), num, fc.boolean(), fc.constant(null), fc.array(fc.integer(), { maxLength: 3 }), fc.object({ maxDepth: 2 }));
  const dispatch = fc.record(
    {
      id: fc.oneof({ weight: 4, arbitrary: fc.stringMatching(/^[A-Za-z0-9._:-]{1,12}$/) }, { weight: 1, arbitrary: anyv }),
      powerW: fc.oneof({ weight: 3, arbitrary: fc.integer({ min: -1_200_000, max: 1_200_000 }) }, { weight: 1, arbitrary: anyv }),
      durationS: fc.oneof({ weight: 3, arbitrary: fc.integer({ min: 0, max: 90_000 }) }, { weight: 1, arbitrary: anyv }),
      start: fc.oneof(fc.integer({ min: -3600, max: 3600 }).map((s) => iso(nowMs + s * 1000)), anyv),
      expiresAt: fc.oneof(fc.integer({ min: -3600, max: 3600 }).map((s) => iso(nowMs + s * 1000)), anyv),
      cancel: fc.oneof(fc.constant(true), anyv),
      junk: anyv,
    },
    { requiredKeys: [] },
  );
  // well-formed dispatches and cancels with extreme but legal values, to drive the core and the limits
  const legal = fc.oneof(
    fc.record(
      {
        id: fc.stringMatching(/^[A-Za-z0-9._:-]{1,8}$/),
        powerW: fc.oneof(fc.integer({ min: -1_000_000, max: 1_000_000 }), fc.constantFrom(-1e6, 1e6, 0, -11001, 11001, 0.5)),
        durationS: fc.oneof(fc.integer({ min: 1, max: 86400 }), fc.constantFrom(1, 86400)),
        start: fc.integer({ min: -600, max: 600 }).map((s) => iso(nowMs + s * 1000)),
        expiresAt: fc.integer({ min: -600, max: 600 }).map((s) => iso(nowMs + s * 1000)),
      },
      { requiredKeys: ['id', 'powerW', 'durationS'] },
    ),
    fc.record({ id: fc.stringMatching(/^[A-Za-z0-9._:-]{1,8}$/), cancel: fc.constant(true) }),
  );
  const arb = fc.oneof(
    { weight: 4, arbitrary: legal.map((o) => Buffer.from(JSON.stringify(o))) },
    { weight: 4, arbitrary: dispatch.map((o) => Buffer.from(JSON.stringify(o))) },
    { weight: 2, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 200 }).map((a) => Buffer.from(a)) },
    { weight: 1, arbitrary: fc.integer({ min: 4097, max: 100_000 }).map((n) => Buffer.alloc(n, 0x7b)) },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: 2000 }).map((n) => Buffer.from('['.repeat(n) + ']'.repeat(n))) },
  );
  return fc.sample(arb, { numRuns: COUNT, seed: 4242 });
}

test(`wire fuzz: ${COUNT} payloads through Mosquitto into the running device`, async () => {
  const broker = await startBroker({ extraConfig: ['max_queued_messages 100000'] });
  const d = await startDevice({ url: broker.url, deviceId: 'e2e-fuzz', invalidAnswersPerS: 1e6, invalidAnswersBurst: 1e6 });
  try {
    await untilSubscribed(d);
    const base = d.uplink.stats();
    const judgedBefore = base.commands + base.invalid;
    const list = payloads(d.clock.nowMs());
    for (let i = 0; i < list.length; i++) {
      // fire-and-forget QoS 1 in batches keeps the broker busy without unbounded queues
      await d.agg.client.publishAsync(`${d.root}/dispatch`, list[i], { qos: 1 });
      if (i % 200 === 199) await d.step(1);
    }
    await waitFor(() => {
      const s = d.uplink.stats();
      return s.commands + s.invalid - judgedBefore === COUNT;
    }, 'every payload judged', 60_000);
    await d.step(5);
    const s = d.uplink.stats();
    const invalid = s.invalid - base.invalid;
    const commands = s.commands - base.commands;
    assert.equal(s.invalidDropped, 0);
    await waitFor(() => d.uplink.stats().outboxRows === 0, 'every answer sent', 60_000);
    const rejections = () => d.agg.on(`${d.root}/dispatch/response`).filter((r) => r.json?.status === 'rejected' && typeof r.json?.field === 'string').length;
    await waitFor(() => rejections() >= invalid, `${invalid} field rejections at the aggregator`, 60_000);
    assert.ok(d.invalid.every((i) => i.answered && i.message.length > 0 && typeof i.field === 'string'));
    assert.ok(commands > 100, `the generator reaches the core too (${commands} commands)`);
    const outOfRange = d.setpoints.filter((w) => !Number.isFinite(w) || Math.abs(w) > RATED_W);
    assert.deepEqual(outOfRange, [], 'no setpoint outside the inverter rating');
    assert.ok(d.runtime.status().ticks > 0);
    console.log(`# wire fuzz: ${commands} commands to the core, ${invalid} rejected by the uplink, ${d.setpoints.length} setpoints, max |W| ${Math.max(0, ...d.setpoints.map(Math.abs))}`);
  } finally {
    await d.close();
    await broker.stop();
  }
});
