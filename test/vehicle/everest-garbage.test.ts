/**
 * Garbage on the EVerest API topics: random bytes, oversize payloads, wrong types, deep nesting and
 * prototype tricks on each topic. The process stays up, nothing throws or rejects, the bad fields read
 * as missing, the readings stay in range, and a good message afterwards is taken as usual.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { connect, type MqttClient } from 'mqtt';
import { startBroker, type TestBroker } from '../helpers/broker.ts';
import { VirtualClock } from '../../hal/sim/virtual-clock.ts';
import { EverestVehicleLink } from '../../hal/vehicle/everest.ts';
import type { VehicleState } from '../../hal/ports.ts';
import { T0_MS, logCollector, waitFor } from './helpers.ts';

const EVSE = 'evse_manager';
const TOPICS = ['ev_info', 'session_info', 'limits', 'hardware_capabilities'] as const;

const GOOD: Record<(typeof TOPICS)[number], Record<string, unknown>> = {
  ev_info: { soc: 55, battery_capacity: 64_000, maximum_power_limit: 11_000, departure_time: '2026-11-24T06:30:00Z', minimum_soc: 20, target_soc: 80, maximum_discharge_power: 9_000 },
  session_info: { state: 'Charging', charged_energy_wh: 100, discharged_energy_wh: 5, latest_total_w: 7_000 },
  limits: { uuid: EVSE, max_current: 32, nr_of_phases_available: 3 },
  hardware_capabilities: { max_current_A_import: 32, max_current_A_export: 16, max_phase_count_import: 3, max_phase_count_export: 3 },
};

function assertSane(s: VehicleState, where: string): void {
  assert.equal(typeof s.connected, 'boolean', where);
  assert.ok(Number.isFinite(s.atMs), where);
  for (const k of ['socPct', 'minSocPct', 'targetSocPct', 'maxSocPct'] as const)
    if (s[k] !== undefined) assert.ok(Number.isFinite(s[k]) && s[k]! >= 0 && s[k]! <= 100, `${where}: ${k}=${s[k]}`);
  for (const k of ['maxChargeW', 'maxDischargeW', 'chargedWh', 'dischargedWh'] as const)
    if (s[k] !== undefined) assert.ok(Number.isFinite(s[k]) && s[k]! >= 0, `${where}: ${k}=${s[k]}`);
  if (s.capacityWh !== undefined) assert.ok(Number.isFinite(s.capacityWh) && s.capacityWh > 0, where);
  for (const k of ['socAtMs', 'departureAtMs'] as const) if (s[k] !== undefined) assert.ok(Number.isFinite(s[k]), `${where}: ${k}`);
  if (s.bidirectional !== undefined) assert.equal(typeof s.bidirectional, 'boolean', where);
}

describe('EVerest link under garbage', () => {
  let broker: TestBroker;
  let pub: MqttClient;
  let link: EverestVehicleLink;
  let clock: VirtualClock;
  const logs = logCollector();
  const crashes: unknown[] = [];
  const onCrash = (e: unknown) => crashes.push(e);

  before(async () => {
    process.on('uncaughtException', onCrash);
    process.on('unhandledRejection', onCrash);
    broker = await startBroker();
    pub = connect(broker.url, { protocolVersion: 4, reconnectPeriod: 0 });
    await new Promise<void>((resolve, reject) => {
      pub.once('connect', () => resolve());
      pub.once('error', reject);
    });
    clock = new VirtualClock(T0_MS);
    link = new EverestVehicleLink({ url: broker.url, evseId: EVSE, clock, forwardLimit: true, log: logs.log });
    await link.open();
  });
  after(async () => {
    await link.close();
    await pub.endAsync(true);
    await broker.stop();
    process.off('uncaughtException', onCrash);
    process.off('unhandledRejection', onCrash);
    assert.deepEqual(crashes, []);
  });

  const handled = () => link.counters.messages + link.counters.rejectedMessages;

  async function send(topic: string, body: string | Buffer): Promise<void> {
    const seen = handled();
    await pub.publishAsync(`everest_api/${EVSE}/var/${topic}`, body, { qos: 0 });
    await waitFor(() => handled() > seen, `message on ${topic} handled`, 1000);
  }

  async function sendGood(): Promise<void> {
    for (const t of ['limits', 'hardware_capabilities', 'session_info', 'ev_info'] as const) await send(t, JSON.stringify(GOOD[t]));
    const s = link.state();
    assert.equal(s.connected, true);
    assert.equal(s.socPct, 55);
    assert.equal(s.maxDischargeW, 9_000);
    assert.equal(s.fault, undefined);
  }

  for (const topic of TOPICS) {
    it(`${topic}: random bytes, oversize and non-object payloads are ignored whole`, async () => {
      await sendGood();
      const before = link.state();
      const rejectedBefore = link.counters.rejectedMessages;
      const randomPayloads = fc.sample(fc.uint8Array({ minLength: 1, maxLength: 2048 }), { numRuns: 40 });
      const bodies: (string | Buffer)[] = [
        ...randomPayloads.map((b) => Buffer.from(b)),
        Buffer.from([0xff, 0xfe, 0x7b, 0x7d]),
        '',
        'null', '42', '"soc"', 'true', '[{"soc": 50}]',
        '{"soc": 50', '{"soc": NaN}', '{"soc": Infinity}', "{'soc': 50}",
        Buffer.alloc(1024 * 1024, 0x61),
        JSON.stringify({ ...GOOD[topic], pad: 'x'.repeat(200_000) }),
        '['.repeat(30_000) + ']'.repeat(30_000),
      ];
      for (const b of bodies) {
        clock.advance(100);
        await send(topic, b);
      }
      // a payload that is a valid 1-byte JSON number or empty-ish may be taken as a (useless) object only if it is one
      assert.ok(link.counters.rejectedMessages - rejectedBefore >= bodies.length - 1);
      const after = link.state();
      assert.equal(after.atMs, before.atMs, 'garbage is not news from the bridge');
      assert.equal(after.fault?.code, 'garbage', 'a stream of nothing usable is a fault');
      assertSane(after, topic);
      await sendGood();
      assert.equal(link.state().fault, undefined, 'a usable message clears it');
    });

    it(`${topic}: wrong types and ranges in each field read as missing, the other fields are kept`, async () => {
      const wrong: unknown[] = ['12', '', null, true, [], [55], {}, { value: 55 }, -1, 1e12, -1e12, 'NaN', '2026-13-45T99:99:99Z', 'x'.repeat(500)];
      for (const field of Object.keys(GOOD[topic])) {
        for (const w of wrong) {
          await sendGood();
          clock.advance(100);
          const dropped = link.counters.droppedFields;
          await send(topic, JSON.stringify({ ...GOOD[topic], [field]: w }));
          const s = link.state();
          assertSane(s, `${topic}.${field}=${JSON.stringify(w)?.slice(0, 30)}`);
          if (link.counters.droppedFields === dropped) continue; // a value that happens to be valid for this field
          if (topic === 'ev_info' && field === 'soc') assert.equal(s.socPct, undefined);
          if (topic === 'ev_info' && field === 'departure_time') assert.equal(s.departureAtMs, undefined);
          if (topic === 'ev_info' && field === 'battery_capacity') assert.equal(s.capacityWh, undefined);
          if (topic === 'ev_info' && field === 'minimum_soc') assert.equal(s.minSocPct, undefined);
          if (topic === 'session_info' && field === 'state') assert.equal(s.connected, false);
          if (topic === 'session_info' && field === 'charged_energy_wh') assert.equal(s.chargedWh, undefined);
          // the message's other fields still count
          if (topic === 'ev_info' && field !== 'soc') assert.equal(s.socPct, 55);
          if (topic === 'ev_info' && field !== 'battery_capacity') assert.equal(s.capacityWh, 64_000);
          if (topic === 'session_info' && field !== 'state') assert.equal(s.connected, true);
          if (topic === 'session_info' && field !== 'charged_energy_wh') assert.equal(s.chargedWh, 100);
          assert.equal(s.atMs, clock.nowMs(), 'a partly usable message is news');
        }
      }
    });
  }

  it('prototype tricks do not leak into the readings or into Object.prototype', async () => {
    await sendGood();
    await send('ev_info', '{"__proto__": {"soc": 12, "polluted": true}, "constructor": {"prototype": {"polluted": true}}, "battery_capacity": 50000}');
    assert.equal(link.state().socPct, undefined);
    assert.equal(link.state().capacityWh, 50_000);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });

  it('property: any JSON object built from the topic fields leaves the readings in range', async () => {
    const value = fc.oneof(
      fc.double(), fc.integer(), fc.string({ maxLength: 40 }), fc.constant(null), fc.boolean(),
      fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
      fc.jsonValue({ maxDepth: 3 }),
    );
    for (const topic of TOPICS) {
      const keys = [...Object.keys(GOOD[topic]), 'present_voltage', 'maximum_soc', 'battery_full_soc', 'ac_max_discharge_power', 'unknown_field'];
      await fc.assert(
        fc.asyncProperty(fc.dictionary(fc.constantFrom(...keys), value, { maxKeys: keys.length }), async (obj) => {
          clock.advance(10);
          await send(topic, JSON.stringify(obj));
          assertSane(link.state(), `${topic} ${JSON.stringify(obj).slice(0, 200)}`);
        }),
        { numRuns: 60 },
      );
    }
    await sendGood();
  });

  it('the link still works after all of it: setPowerLimitW resolves, warnings were logged and throttled', async () => {
    await link.setPowerLimitW(1_000);
    await link.refresh();
    assert.equal(link.state().fault, undefined);
    const warns = logs.lines.filter((l) => l.startsWith('warn'));
    assert.ok(warns.length > 0);
    // one warning per cause per minute of the clock: far fewer lines than dropped fields and messages
    assert.ok(warns.length < link.counters.droppedFields + link.counters.rejectedMessages, `${warns.length} warnings`);
    assert.deepEqual(crashes, []);
  });
});
