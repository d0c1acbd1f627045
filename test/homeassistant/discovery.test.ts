/**
 * Home Assistant MQTT discovery against a real broker (Mosquitto, or the embedded one: the link speaks
 * MQTT 3.1.1, which both serve). The retained device payload parses and has what HA needs; every state
 * topic it names carries the fields its templates read; HA's `online` makes it republish; a number
 * command changes the config file when valid and is refused in plain words (file unchanged) when not; a
 * disabled link removes the device with an empty retained payload. The expected entities are written out
 * here from HA's documented device and state classes, not read from the code under test.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { loadConfig } from '../../src/config/load.ts';
import type { Config } from '../../src/config/types.ts';
import type { CoreEvent } from '../../src/control/types.ts';
import { HomeAssistantLink } from '../../src/homeassistant/link.ts';
import { listOverrides } from '../../src/homeowner/overrides.ts';
import { startBroker, type TestBroker } from '../helpers/broker.ts';
import { waitFor as poll } from '../helpers/wait.ts';

const DEVICE = 'ha-test-1';

const waitFor = <T>(what: string, fn: () => Promise<T | undefined> | T | undefined): Promise<T> => poll(what, fn, 500, 20);

/** A client that keeps the last payload of every topic it sees (retained ones included). */
async function watcher(url: string, topics: string[]): Promise<{ client: MqttClient; last: Map<string, string>; count: Map<string, number> }> {
  const client = mqtt.connect(url, { protocolVersion: 4, reconnectPeriod: 0 });
  const last = new Map<string, string>();
  const count = new Map<string, number>();
  client.on('message', (topic, payload) => {
    last.set(topic, payload.toString());
    count.set(topic, (count.get(topic) ?? 0) + 1);
  });
  await new Promise<void>((res, rej) => {
    client.once('connect', () => res());
    client.once('error', rej);
  });
  await client.subscribeAsync(topics, { qos: 1 });
  return { client, last, count };
}

interface World {
  broker: TestBroker;
  path: string;
  config: () => Config;
  link: HomeAssistantLink;
  events: CoreEvent[];
  reloads: number;
}

async function world(t: { after: (fn: () => Promise<void> | void) => void }, extra: Record<string, unknown> = {}): Promise<World> {
  const broker = await startBroker();
  const dir = mkdtempSync(join(tmpdir(), 'wallbox-ha-'));
  const path = join(dir, 'local.json');
  writeFileSync(path, JSON.stringify({
    deviceId: DEVICE, timezone: 'Europe/Paris', storage: { path: join(dir, 'wallbox.db') }, inverter: { driver: 'sim' }, vehicleLink: { driver: 'sim' },
    reward: { currency: 'EUR', ratePerKWh: 0.2 }, homeassistant: { url: broker.url, stateIntervalS: 1 }, ...extra,
  }));
  let config = loadConfig(path);
  const w: World = { broker, path, config: () => config, link: undefined as unknown as HomeAssistantLink, events: [], reloads: 0 };
  // the daemon's status answer, as src/daemon.ts builds it (a car at 69.98 %, 7.4 kW in, a month's reward)
  const status = async () => ({
    mode: 'charge', grid: 'up', socPct: 69.98416, powerW: 7399.6, setpointW: 7400, vehicleConnected: true, faults: [],
    floors: { dischargeFloorPct: config.vehicle.dischargeFloorPct, effectiveFloorPct: config.vehicle.dischargeFloorPct, backupFloorPct: config.vehicle.backupFloorPct },
    backup: { active: false, phase: 'on-grid', shedTiers: [] }, energy: { importedWh: 12_345, exportedWh: 6_789, carSideWh: 0 },
    // a site meter with grid power and no PV figure
    site: { gridPowerW: -1850.4, gridAgeS: 1, pvPowerW: null, pvAgeS: null },
    totals: { month: { rewards: [{ amount: 4.56, currency: 'EUR' }] } }, overrides: listOverrides(config, Date.now()),
  });
  w.link = new HomeAssistantLink({
    config: () => config, configPath: path, version: '9.9.9', status, log: () => {}, wallMs: () => Date.now(),
    emit: (e) => w.events.push(e),
    reload: async () => {
      w.reloads++;
      config = loadConfig(path);
      return { ok: true };
    },
  });
  t.after(async () => {
    await w.link.stop();
    await broker.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  return w;
}

const DISCOVERY = `homeassistant/device/${DEVICE}/config`;

/** What Home Assistant needs of each entity (HA docs: sensor device classes and state classes). */
const EXPECTED: Record<string, Record<string, unknown>> = {
  power: { platform: 'sensor', device_class: 'power', unit_of_measurement: 'W', state_class: 'measurement' },
  grid_power: { platform: 'sensor', device_class: 'power', unit_of_measurement: 'W', state_class: 'measurement' },
  pv_power: { platform: 'sensor', device_class: 'power', unit_of_measurement: 'W', state_class: 'measurement' },
  soc: { platform: 'sensor', device_class: 'battery', unit_of_measurement: '%' },
  energy_imported: { platform: 'sensor', device_class: 'energy', unit_of_measurement: 'kWh', state_class: 'total_increasing' },
  energy_exported: { platform: 'sensor', device_class: 'energy', unit_of_measurement: 'kWh', state_class: 'total_increasing' },
  backup_hours: { platform: 'sensor', device_class: 'duration', unit_of_measurement: 'h' },
  month_earnings: { platform: 'sensor', device_class: 'monetary', unit_of_measurement: 'EUR' },
  plugged: { platform: 'binary_sensor', device_class: 'plug' },
  grid: { platform: 'binary_sensor', device_class: 'power' },
  fault: { platform: 'binary_sensor', device_class: 'problem' },
  discharge_floor: { platform: 'number', min: 0, max: 100 },
  backup_floor: { platform: 'number', min: 0, max: 100 },
  target_soc: { platform: 'number', min: 0, max: 100 },
  departure_time: { platform: 'text', min: 0, max: 5 },
  v2g: { platform: 'switch' },
  charge_mode: { platform: 'select' },
  v2g_pause: { platform: 'select' },
  charge_now: { platform: 'button' },
  reserve_tonight: { platform: 'button' },
};

describe('Home Assistant discovery', () => {
  test('the retained device payload has dev, o, cmps with proper classes; availability is online; every state topic carries its fields', async (t) => {
    const w = await world(t);
    w.link.start();
    const obs = await watcher(w.broker.url, ['homeassistant/#', 'wallbox/#']);
    t.after(() => obs.client.endAsync());
    const raw = await waitFor('the discovery payload', () => obs.last.get(DISCOVERY));
    const d = JSON.parse(raw) as { dev: Record<string, unknown>; o: Record<string, unknown>; cmps: Record<string, Record<string, unknown>>; availability: { topic: string }[] };
    assert.deepEqual(d.dev.ids, [DEVICE]);
    assert.equal(typeof d.dev.name, 'string');
    assert.equal(d.o.name, 'wallbox-runtime');
    assert.equal(d.o.sw, '9.9.9');
    for (const [key, want] of Object.entries(EXPECTED)) {
      const c = d.cmps[key];
      assert.ok(c, `entity ${key} is missing`);
      for (const [k, v] of Object.entries(want)) assert.equal(c[k], v, `${key}.${k}`);
    }
    const ids = Object.values(d.cmps).map((c) => c.unique_id);
    assert.equal(new Set(ids).size, ids.length, 'unique ids are unique');
    for (const c of Object.values(d.cmps)) {
      assert.ok(typeof c.platform === 'string' && typeof c.unique_id === 'string' && typeof c.name === 'string');
      if (c.command_topic) assert.ok(!String(c.command_topic).includes('+') && !String(c.command_topic).includes('#'));
    }

    const availability = d.availability[0].topic;
    assert.equal(await waitFor('availability', () => obs.last.get(availability)), 'online');
    // each state topic named carries a JSON state whose fields the templates read
    for (const [key, c] of Object.entries(d.cmps)) {
      if (!c.state_topic) continue;
      const state = JSON.parse(await waitFor(`state of ${key}`, () => obs.last.get(c.state_topic as string))) as Record<string, unknown>;
      const field = /value_json\.(\w+)/.exec(String(c.value_template))?.[1];
      assert.ok(field && Object.hasOwn(state, field), `${key}: ${field} not in the state`);
    }
    const state = JSON.parse(obs.last.get(d.cmps.power.state_topic as string)!) as Record<string, unknown>;
    // figures the test's status gave: 69.98 % → 70.0, 7399.6 W → 7400, 12,345 Wh → 12.345 kWh
    assert.equal(state.socPct, 70);
    assert.equal(state.powerW, 7400);
    // the meter's figures: exporting 1850 W (grid − = export); no PV figure is unknown (null), never 0
    assert.equal(state.gridPowerW, -1850);
    assert.equal(state.pvPowerW, null);
    assert.equal(state.importedKWh, 12.345);
    assert.equal(state.exportedKWh, 6.789);
    assert.equal(state.monthEarnings, 4.56);
    assert.ok(Date.parse(state.monthStart as string) <= Date.now(), 'the month started before now');
    assert.equal(d.cmps.month_earnings.last_reset_value_template, '{{ value_json.monthStart }}');
    assert.equal(state.plugged, 'ON');
    assert.equal(state.dischargeFloorPct, 50);
    assert.equal(state.v2gPause, 'none');
  });

  test('Home Assistant coming online makes it publish discovery again', async (t) => {
    const w = await world(t);
    w.link.start();
    const obs = await watcher(w.broker.url, [DISCOVERY]);
    t.after(() => obs.client.endAsync());
    await waitFor('first discovery', () => obs.last.get(DISCOVERY));
    const before = obs.count.get(DISCOVERY) ?? 0;
    await obs.client.publishAsync('homeassistant/status', 'online', { qos: 1 });
    await waitFor('a new discovery', () => ((obs.count.get(DISCOVERY) ?? 0) > before ? true : undefined));
  });

  test('departure time from Home Assistant: 6:15 is written 06:15, empty is none, 25:00 is refused with the file unchanged', async (t) => {
    const w = await world(t);
    w.link.start();
    const obs = await watcher(w.broker.url, [`wallbox/${DEVICE}/ha/state`, DISCOVERY]);
    t.after(() => obs.client.endAsync());
    const d = JSON.parse(await waitFor('discovery', () => obs.last.get(DISCOVERY))) as { cmps: Record<string, { pattern?: string }> };
    // the pattern HA checks before sending: what a person types, and nothing else
    const pattern = new RegExp(d.cmps.departure_time!.pattern!);
    for (const ok of ['06:15', '6:15', '23:59', '0:00', '']) assert.ok(pattern.test(ok), `${ok} is taken`);
    for (const bad of ['24:00', '6:5', '6.15', '06:15:00', 'soon']) assert.ok(!pattern.test(bad), `${bad} is not`);
    const state = () => JSON.parse(obs.last.get(`wallbox/${DEVICE}/ha/state`) ?? '{}') as { departureTime?: string };
    const inFile = () => (JSON.parse(readFileSync(w.path, 'utf8')) as { vehicle?: { departureTime?: string | null } }).vehicle?.departureTime;
    const set = `wallbox/${DEVICE}/ha/set/departure_time`;

    await obs.client.publishAsync(set, '6:15', { qos: 1 });
    await waitFor('06:15 in the file', () => (inFile() === '06:15' ? true : undefined));
    await waitFor('06:15 in the state', () => (state().departureTime === '06:15' ? true : undefined));
    await obs.client.publishAsync(set, '', { qos: 1 });
    await waitFor('no departure in the file', () => (inFile() === null ? true : undefined));
    await waitFor('empty in the state', () => (state().departureTime === '' ? true : undefined));

    const before = readFileSync(w.path, 'utf8');
    await obs.client.publishAsync(set, '25:00', { qos: 1 });
    const refusal = await waitFor('the refusal event', () => w.events.find((e) => e.severity === 'warning' && /departureTime/.test(e.message)));
    assert.match(refusal.message, /must be a time like 07:30 \(24-hour HH:MM\); you gave "25:00"/);
    assert.equal(readFileSync(w.path, 'utf8'), before, 'the refused time left the file as it was');
  });

  test('a number command changes the config (valid) or is refused in plain words with the file unchanged (invalid)', async (t) => {
    const w = await world(t);
    w.link.start();
    const obs = await watcher(w.broker.url, [`wallbox/${DEVICE}/ha/state`]);
    t.after(() => obs.client.endAsync());
    await waitFor('state', () => obs.last.get(`wallbox/${DEVICE}/ha/state`));
    const set = `wallbox/${DEVICE}/ha/set/discharge_floor`;

    await obs.client.publishAsync(set, '60', { qos: 1 });
    await waitFor('the new floor in the file', () => (JSON.parse(readFileSync(w.path, 'utf8')).vehicle?.dischargeFloorPct === 60 ? true : undefined));
    await waitFor('the new floor in the state', () => (JSON.parse(obs.last.get(`wallbox/${DEVICE}/ha/state`)!).dischargeFloorPct === 60 ? true : undefined));
    assert.ok(w.reloads >= 1, 'the running config was reloaded');

    const before = readFileSync(w.path, 'utf8');
    await obs.client.publishAsync(set, '150', { qos: 1 });
    const refusal = await waitFor('the refusal event', () => w.events.find((e) => e.severity === 'warning' && /dischargeFloorPct/.test(e.message)));
    assert.match(refusal.message, /must be at most 100; you gave 150/);
    assert.match(refusal.message, /not changed/);
    await obs.client.publishAsync(set, 'lots', { qos: 1 });
    await waitFor('the second refusal', () => w.events.find((e) => /you gave "lots"/.test(e.message)));
    // a floor above the discharge floor for the backup floor: the cross-key rule, as the CLI says it
    await obs.client.publishAsync(`wallbox/${DEVICE}/ha/set/backup_floor`, '70', { qos: 1 });
    await waitFor('the cross-key refusal', () => w.events.find((e) => /backupFloorPct must not exceed vehicle\.dischargeFloorPct/.test(e.message)));
    assert.equal(readFileSync(w.path, 'utf8'), before, 'refused commands leave the file as it was');

    // quick actions from HA: charge now, then a V2G pause chosen in the select
    await obs.client.publishAsync(`wallbox/${DEVICE}/ha/set/charge_now`, 'PRESS', { qos: 1 });
    await waitFor('the boost in the file', () => JSON.parse(readFileSync(w.path, 'utf8')).overrides?.boost?.by === 'homeassistant' || undefined);
    await obs.client.publishAsync(`wallbox/${DEVICE}/ha/set/v2g_pause`, '4 h', { qos: 1 });
    await waitFor('the select shows the pause', () => (JSON.parse(obs.last.get(`wallbox/${DEVICE}/ha/state`)!).v2gPause === '4 h' ? true : undefined));
    const pause = JSON.parse(readFileSync(w.path, 'utf8')).overrides.pauseV2g;
    const hours = (Date.parse(pause.until) - Date.parse(pause.setAt)) / 3_600_000;
    assert.ok(Math.abs(hours - 4) < 0.01, `a 4 h pause, got ${hours} h`);
  });

  test('a flood of commands is bounded: the file ends at one of the values sent, the rest are cut with one warning', async (t) => {
    const w = await world(t);
    w.link.start();
    const obs = await watcher(w.broker.url, [`wallbox/${DEVICE}/ha/state`]);
    t.after(() => obs.client.endAsync());
    await waitFor('state', () => obs.last.get(`wallbox/${DEVICE}/ha/state`));
    const sent = Array.from({ length: 200 }, (_, i) => 30 + (i % 40));
    await Promise.all(sent.map((v) => obs.client.publishAsync(`wallbox/${DEVICE}/ha/set/discharge_floor`, String(v), { qos: 1 })));
    await waitFor('the flood warning', () => w.events.find((e) => /more than 16 commands at once/.test(e.message)));
    assert.equal(w.events.filter((e) => /more than 16 commands at once/.test(e.message)).length, 1, 'said once');
    await new Promise((r) => setTimeout(r, 500));
    const floor = JSON.parse(readFileSync(w.path, 'utf8')).vehicle.dischargeFloorPct;
    assert.ok(sent.includes(floor), `the floor is one of the values sent: ${floor}`);
    assert.ok(w.reloads < sent.length, `not every command of the flood was carried out (${w.reloads})`);
  });

  test('disabled: the device is removed with an empty retained payload', async (t) => {
    const w = await world(t);
    w.link.start();
    const obs = await watcher(w.broker.url, [DISCOVERY]);
    await waitFor('discovery', () => obs.last.get(DISCOVERY));
    await obs.client.endAsync();
    writeFileSync(w.path, JSON.stringify({ ...JSON.parse(readFileSync(w.path, 'utf8')), homeassistant: { url: w.broker.url, enabled: false } }));
    await w.link.applyConfig(loadConfig(w.path));
    // a new subscriber gets no retained device any more (an empty retained payload deletes it)
    const fresh = await watcher(w.broker.url, [DISCOVERY, `wallbox/${DEVICE}/ha/availability`]);
    t.after(() => fresh.client.endAsync());
    await new Promise((r) => setTimeout(r, 300));
    // (an empty payload may still arrive live while the removal is being repeated on the new connection)
    assert.ok(!fresh.last.get(DISCOVERY), 'no retained discovery left');
    assert.ok(!fresh.last.get(`wallbox/${DEVICE}/ha/availability`), 'no retained availability left');
  });

  test('a stop says offline (retained) for Home Assistant', async (t) => {
    const w = await world(t);
    w.link.start();
    const obs = await watcher(w.broker.url, [`wallbox/${DEVICE}/ha/availability`]);
    t.after(() => obs.client.endAsync());
    await waitFor('online', () => (obs.last.get(`wallbox/${DEVICE}/ha/availability`) === 'online' ? true : undefined));
    await w.link.stop();
    await waitFor('offline', () => (obs.last.get(`wallbox/${DEVICE}/ha/availability`) === 'offline' ? true : undefined));
  });
});

test('the web page is the device\'s "Visit" link when it is served on a LAN address, never a loopback one', async () => {
  const { pageUrl } = await import('../../src/homeassistant/discovery.ts');
  assert.equal(pageUrl({ ui: { listen: '192.168.1.40:8080', publicRead: false, maxStreams: 8 } }), 'http://192.168.1.40:8080/');
  for (const listen of ['127.0.0.1:8080', 'localhost:8080', '0.0.0.0:8080', '[::1]:8080', null])
    assert.equal(pageUrl({ ui: { listen, publicRead: false, maxStreams: 8 } }), undefined, String(listen));
});

test('the earnings\' last reset is local midnight on the 1st of the month', async () => {
  const { monthStartIso } = await import('../../src/homeassistant/discovery.ts');
  // Paris is UTC+1 in winter, UTC+2 in summer; New York UTC−5 in winter
  assert.equal(monthStartIso(Date.parse('2026-12-15T12:00:00Z'), 'Europe/Paris'), '2026-11-30T23:00:00.000Z');
  assert.equal(monthStartIso(Date.parse('2026-07-01T00:30:00Z'), 'Europe/Paris'), '2026-06-30T22:00:00.000Z');
  assert.equal(monthStartIso(Date.parse('2026-12-01T03:00:00Z'), 'America/New_York'), '2026-11-01T04:00:00.000Z');
});
