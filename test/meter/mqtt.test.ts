/**
 * The MQTT site meter against a real broker (Mosquitto when installed, else the embedded broker; the
 * meter speaks MQTT 3.1.1 so both serve it): a plain number, a JSON path (Tasmota-, EVerest- and
 * Shelly-shaped payloads), kW, the sign flag, a PV topic, garbage withdrawing the figure, staleness on
 * the virtual clock, retained messages ignored, a broker that is not there, and the payload parser alone.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import mqtt, { type MqttClient } from 'mqtt';
import { MqttMeter } from '../../hal/meter/mqtt.ts';
import { parsePath, readNumber } from '../../hal/meter/mqtt-payload.ts';
import { VirtualClock } from '../../hal/sim/virtual-clock.ts';
import { brokerProtocolVersion, freePort, startBroker, type TestBroker } from '../helpers/broker.ts';

let broker: TestBroker;
let pub: MqttClient;
const T0 = Date.parse('2026-06-21T12:00:00Z');

before(async () => {
  broker = await startBroker();
  pub = await mqtt.connectAsync(broker.url, { protocolVersion: brokerProtocolVersion(), clientId: 'meter-test-pub' });
});
after(async () => {
  await pub?.endAsync();
  await broker?.stop();
});

/** Publish and wait until the meter has taken `n` more messages. */
async function send(m: MqttMeter, topic: string, payload: string, opts: { retain?: boolean } = {}): Promise<void> {
  const before = m.messages;
  await pub.publishAsync(topic, payload, { qos: 0, retain: opts.retain ?? false });
  if (opts.retain) return;
  for (let i = 0; i < 200 && m.messages === before; i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(m.messages > before, `the meter got ${topic}`);
}

let n = 0;
async function open(o: Partial<ConstructorParameters<typeof MqttMeter>[0]>, clock = new VirtualClock(T0)): Promise<{ m: MqttMeter; clock: VirtualClock; topic: string }> {
  const topic = `site/meter${++n}/power`;
  const m = new MqttMeter({ url: broker.url, grid: { topic }, maxAgeS: 10, clock, ...o });
  await m.open();
  after(() => m.close());
  return { m, clock, topic: o.grid?.topic ?? topic };
}

describe('MQTT meter on a real broker', () => {
  test('a plain number is grid power, stamped when it arrives; the age limit withdraws it', async () => {
    const { m, clock, topic } = await open({});
    assert.equal(m.state().fault?.code, 'no_data');
    assert.equal(m.state().gridPowerW, undefined);
    await send(m, topic, '1234.5');
    assert.equal(m.state().gridPowerW, 1234.5);
    assert.equal(m.state().atMs, T0);
    assert.equal(m.state().fault, undefined);
    clock.advance(10_000);
    assert.equal(m.state().gridPowerW, 1234.5, 'at the limit: still current');
    clock.advance(1);
    const s = m.state();
    assert.equal(s.gridPowerW, undefined);
    assert.equal(s.atMs, undefined);
    assert.equal(s.fault?.code, 'stale');
    assert.match(s.fault!.message, /last message on site\/meter\d+\/power is 10\.0 s old \(limit 10 s\)/);
    await send(m, topic, '-800');
    assert.equal(m.state().gridPowerW, -800);
    assert.equal(m.state().atMs, T0 + 10_001);
  });

  test('a JSON path: Tasmota ENERGY.Power, EVerest power_W.total, an array index', async () => {
    const t = await open({ grid: { topic: 'tele/meterA/SENSOR', path: 'ENERGY.Power' } });
    await send(t.m, 'tele/meterA/SENSOR', '{"Time":"2026-06-21T12:00:00","ENERGY":{"Total":1234.5,"Power":-2150,"Voltage":231}}');
    assert.equal(t.m.state().gridPowerW, -2150);
    const e = await open({ grid: { topic: 'everest/powermeter/grid', path: '$.power_W.total' } });
    await send(e.m, 'everest/powermeter/grid', '{"timestamp":"2026-06-21T12:00:00Z","power_W":{"total":3210.0,"L1":1070.0},"energy_Wh_import":{"total":55.0}}');
    assert.equal(e.m.state().gridPowerW, 3210);
    const a = await open({ grid: { topic: 'shelly/em', path: 'emeters[1].power' } });
    await send(a.m, 'shelly/em', '{"emeters":[{"power":1},{"power":"742.5"}]}');
    assert.equal(a.m.state().gridPowerW, 742.5, 'a number sent as a string is taken');
  });

  test('phase currents from the grid payload (Shelly Pro 3EM shape); one missing: no currents, grid stands', async () => {
    const { m } = await open({ grid: { topic: 'shelly/status/em:0', path: 'total_act_power' }, currentPaths: ['a_current', 'b_current', 'c_current'] });
    await send(m, 'shelly/status/em:0', '{"id":0,"a_current":4.2,"b_current":-1.5,"c_current":0.3,"total_act_power":1234.5}');
    assert.equal(m.state().gridPowerW, 1234.5);
    assert.deepEqual(m.state().phaseCurrentsA, [4.2, 1.5, 0.3]);
    await send(m, 'shelly/status/em:0', '{"id":0,"a_current":4.2,"c_current":0.3,"total_act_power":1000}');
    assert.equal(m.state().gridPowerW, 1000);
    assert.equal(m.state().phaseCurrentsA, undefined);
    assert.throws(() => new MqttMeter({ url: broker.url, grid: { topic: 'x' }, currentPaths: ['a'], maxAgeS: 10, clock: new VirtualClock(T0) }), /need a JSON payload/);
  });

  test('kW and the sign flag (a publisher that counts export positive)', async () => {
    const { m, topic } = await open({ unit: 'kW', invertSign: true });
    await send(m, topic, '2.5');
    assert.equal(m.state().gridPowerW, -2500);
  });

  test('a PV topic alongside, with its own fault', async () => {
    const { m, topic, clock } = await open({ pv: { topic: 'site/pv/power' }, maxAgeS: 5 });
    await send(m, topic, '500');
    assert.equal(m.state().pvFault?.code, 'no_data');
    await send(m, 'site/pv/power', '3000');
    assert.equal(m.state().pvPowerW, 3000);
    assert.equal(m.state().pvAtMs, T0);
    clock.advance(6000);
    await send(m, topic, '450');
    const s = m.state();
    assert.equal(s.gridPowerW, 450);
    assert.equal(s.pvPowerW, undefined, 'PV went stale on its own');
    assert.equal(s.pvFault?.code, 'stale');
    assert.equal(s.fault, undefined);
  });

  test('garbage withdraws the figure and names the payload; a good message restores it', async () => {
    const { m, topic } = await open({ grid: { topic: 'garbage/meter', path: 'ENERGY.Power' } });
    await send(m, topic, '{"ENERGY":{"Power":1000}}');
    assert.equal(m.state().gridPowerW, 1000);
    for (const [payload, re] of [
      ['not json', /payload "not json" is not JSON/],
      ['{"ENERGY":{}}', /has no ENERGY\.Power/],
      ['{"ENERGY":{"Power":null}}', /ENERGY\.Power in payload .* is null, not a finite number/],
      ['{"ENERGY":{"Power":"NaN"}}', /is "NaN", not a finite number/],
    ] as const) {
      await send(m, topic, payload);
      const s = m.state();
      assert.equal(s.gridPowerW, undefined, payload);
      assert.equal(s.fault?.code, 'garbage');
      assert.match(s.fault!.message, re);
    }
    await send(m, topic, '{"ENERGY":{"Power":900}}');
    assert.equal(m.state().gridPowerW, 900);
    assert.equal(m.state().fault, undefined);
  });

  test('a retained value is ignored: its age is unknown', async () => {
    const topic = 'retained/meter/power';
    await pub.publishAsync(topic, '4321', { qos: 1, retain: true });
    const { m } = await open({ grid: { topic } });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(m.state().gridPowerW, undefined);
    assert.equal(m.state().fault?.code, 'no_data');
    await send(m, topic, '1111');
    assert.equal(m.state().gridPowerW, 1111);
    await pub.publishAsync(topic, '', { qos: 1, retain: true });
  });

  test('no broker: open() resolves within its bound with a fault naming the URL, and connects when the broker comes', async () => {
    const port = await freePort();
    const clock = new VirtualClock(T0);
    const m = new MqttMeter({ url: `mqtt://127.0.0.1:${port}`, grid: { topic: 'late/meter' }, maxAgeS: 10, clock, connectTimeoutMs: 500 });
    after(() => m.close());
    await m.open();
    const f = m.state().fault;
    assert.equal(f?.code, 'disconnected');
    assert.match(f!.message, new RegExp(`MQTT site meter mqtt://127\\.0\\.0\\.1:${port}: `));
    assert.equal(m.state().gridPowerW, undefined);
    // the broker appears on that port; the meter's 2 s reconnect finds it and subscribes
    const late = await startBroker({ port });
    after(() => late.stop());
    const p = await mqtt.connectAsync(late.url, { protocolVersion: brokerProtocolVersion(), clientId: 'meter-test-late' });
    after(() => p.endAsync());
    for (let i = 0; i < 100 && m.state().fault?.code === 'disconnected'; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(m.state().fault?.code, 'no_data', 'connected, nothing received yet');
    const before = m.messages;
    for (let i = 0; i < 40 && m.messages === before; i++) {
      await p.publishAsync('late/meter', '777');
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(m.state().gridPowerW, 777);
  });
});

describe('payload parser', () => {
  test('paths', () => {
    assert.deepEqual(parsePath('ENERGY.Power'), ['ENERGY', 'Power']);
    assert.deepEqual(parsePath('$.power_W.total'), ['power_W', 'total']);
    assert.deepEqual(parsePath('a[0][2].b'), ['a', 0, 2, 'b']);
    assert.deepEqual(parsePath('$'), []);
    assert.throws(() => parsePath('a..b'), /empty key/);
    assert.throws(() => parsePath('a[x]'), /cannot read "a\[x\]"/);
  });

  test('plain numbers and what is not one', () => {
    for (const [p, v] of [['12', 12], [' -3.5 ', -3.5], ['1e3', 1000], ['"42"', 42], ['.5', 0.5]] as const) assert.deepEqual(readNumber(p, []), { value: v }, p);
    for (const p of ['', 'NaN', 'Infinity', '12 W', 'on', '{"a":1}']) assert.ok('error' in readNumber(p, []), p);
  });
});
