/**
 * The daemon as systemd runs it (`wallbox run`, simulated hardware) with the aggregator on one broker and
 * Home Assistant on another: settings and quick actions from Home Assistant and the CLI are taken by the
 * running loop without a restart; the same commands sent on the aggregator's broker change nothing; a
 * clean stop logs no warning and tells Home Assistant the device is offline. Also the config rule that
 * keeps Home Assistant off the aggregator's broker unless the installer says so.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { ConfigError, PROJECT_ROOT, loadConfig } from '../../src/config/load.ts';
import { main } from '../../src/cli.ts';
import { askStatus } from '../../src/status-socket.ts';
import { freePort, startBroker } from '../helpers/broker.ts';
import { waitFor as poll } from '../helpers/wait.ts';

const waitFor = <T>(what: string, fn: () => Promise<T | undefined> | T | undefined): Promise<T> => poll(what, fn, 200, 100);

const CLI = join(PROJECT_ROOT, 'src/cli.ts');
const ID = 'ha-daemon-1';

type Status = { floors: { dischargeFloorPct: number; overrideFloorPct?: number }; overrides: { kind: string }[]; homeassistant: { connected: boolean } | null };

describe('Home Assistant in the daemon', () => {
  test('HA and the CLI change settings live; the aggregator\'s broker cannot; a clean stop logs no warning', async (t) => {
    const uplinkBroker = await startBroker();
    const haBroker = await startBroker();
    const dir = mkdtempSync(join(tmpdir(), 'wallbox-ha-daemon-'));
    t.after(async () => {
      await uplinkBroker.stop();
      await haBroker.stop();
      rmSync(dir, { recursive: true, force: true });
    });
    const port = await freePort();
    const cfg = join(dir, 'local.json');
    writeFileSync(cfg, JSON.stringify({
      deviceId: ID, storage: { path: join(dir, 'wallbox.db') }, vehicle: { dischargeFloorPct: 40, v2gEnabled: true },
      uplink: { url: uplinkBroker.url }, homeassistant: { url: haBroker.url, stateIntervalS: 1 },
      simulation: { serveInverter: true, servePort: port }, inverter: { driver: 'sunspec', modbus: { host: '127.0.0.1', port } }, vehicleLink: { driver: 'sim' }, gpio: { driver: 'sim' },
    }));
    const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'run', '--config', cfg], { cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    t.after(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    const sock = join(dir, 'wallbox.sock');
    const status = async () => (await askStatus(sock, { cmd: 'status' }, 1000)) as Status;
    await waitFor('the daemon', () => status());

    const ha = mqtt.connect(haBroker.url, { protocolVersion: 4, reconnectPeriod: 0 });
    const agg = mqtt.connect(uplinkBroker.url, { protocolVersion: 4, reconnectPeriod: 0 });
    t.after(async () => {
      await ha.endAsync();
      await agg.endAsync();
    });
    const haSeen = new Map<string, string>();
    ha.on('message', (topic, p) => haSeen.set(topic, p.toString()));
    await waitFor('clients', () => (ha.connected && agg.connected ? true : undefined));
    await ha.subscribeAsync([`homeassistant/device/${ID}/config`, `wallbox/${ID}/ha/#`], { qos: 1 });
    await waitFor('discovery on the HA broker', () => haSeen.get(`homeassistant/device/${ID}/config`));
    assert.equal((await status()).homeassistant?.connected, true);

    // the aggregator's side: every path that could look like a setting, on its broker
    const before = readFileSync(cfg, 'utf8');
    for (const [topic, payload] of [
      [`wallbox/${ID}/ha/set/discharge_floor`, '65'],
      [`wallbox/${ID}/ha/set/charge_now`, 'PRESS'],
      [`wallbox/${ID}/ha/set/v2g`, 'OFF'],
      [`wallbox/${ID}/config`, '{"vehicle":{"dischargeFloorPct":65}}'],
      [`wallbox/${ID}/set/vehicle.dischargeFloorPct`, '65'],
      [`wallbox/${ID}/dispatch`, '{"vehicle":{"dischargeFloorPct":65}}'],
      [`homeassistant/device/${ID}/config`, '{}'],
    ] as const)
      await agg.publishAsync(topic, payload, { qos: 1 });
    await new Promise((r) => setTimeout(r, 2000));
    assert.equal(readFileSync(cfg, 'utf8'), before, 'nothing from the aggregator\'s broker reached the config file');
    const untouched = await status();
    assert.equal(untouched.floors.dischargeFloorPct, 40);
    assert.deepEqual(untouched.overrides, []);

    // Home Assistant's side: the same command is taken, and the running loop uses it without a restart
    await ha.publishAsync(`wallbox/${ID}/ha/set/discharge_floor`, '65', { qos: 1 });
    await waitFor('the floor from HA in force', async () => ((await status()).floors.dischargeFloorPct === 65 ? true : undefined));
    assert.equal(JSON.parse(readFileSync(cfg, 'utf8')).vehicle.dischargeFloorPct, 65);

    // a quick action from the CLI, in force at once in the running loop (the boost target is its floor)
    const lines: string[] = [];
    const code = await main(['boost', '90', '--until', '3h', '--config', cfg], { out: (s) => lines.push(s), err: (s) => lines.push(s), env: {} });
    assert.equal(code, 0, lines.join('\n'));
    assert.match(lines.join('\n'), /applied by the running daemon: overrides\.boost/);
    const boosted = await waitFor('the boost in force', async () => {
      const s = await status();
      return s.floors.overrideFloorPct === 90 ? s : undefined;
    });
    assert.deepEqual(boosted.overrides.map((o) => o.kind), ['boost']);
    await waitFor('the boost shown in HA', () => (JSON.parse(haSeen.get(`wallbox/${ID}/ha/state`) ?? '{}').boostUntil ? true : undefined));

    const stopAt = out.length;
    child.kill('SIGTERM');
    assert.equal(await exited, 0, out);
    const tail = out.slice(stopAt);
    assert.match(tail, /SIGTERM: stopping/);
    assert.doesNotMatch(tail, / warn  /, `a clean stop logs no warning:\n${tail}`);
    await waitFor('offline for HA', () => (haSeen.get(`wallbox/${ID}/ha/availability`) === 'offline' ? true : undefined));
  });

  test('Home Assistant on the aggregator\'s broker is refused unless the installer says so', () => {
    const dir = mkdtempSync(join(tmpdir(), 'wallbox-ha-cfg-'));
    try {
      const cfg = join(dir, 'local.json');
      const base = { deviceId: 'x', storage: { path: join(dir, 'db') }, inverter: { driver: 'sim' }, vehicleLink: { driver: 'sim' } };
      writeFileSync(cfg, JSON.stringify({ ...base, uplink: { url: 'mqtt://broker.example:1883' }, homeassistant: { url: 'mqtt://BROKER.example' } }));
      assert.throws(() => loadConfig(cfg), (e: unknown) => e instanceof ConfigError && e.problems.some((p) => /^homeassistant\.url: is the aggregator's broker/.test(p)));
      writeFileSync(cfg, JSON.stringify({ ...base, uplink: { url: 'mqtt://broker.example:1883' }, homeassistant: { url: 'mqtt://broker.example', shareUplinkBroker: true } }));
      assert.equal(loadConfig(cfg).homeassistant?.shareUplinkBroker, true);
      // the embedded broker is loopback on its port
      writeFileSync(cfg, JSON.stringify({ ...base, uplink: { url: 'embedded', embeddedPort: 1884 }, homeassistant: { url: 'mqtt://localhost:1884' } }));
      assert.throws(() => loadConfig(cfg), /is the aggregator's broker/);
      writeFileSync(cfg, JSON.stringify({ ...base, uplink: { url: 'embedded', embeddedPort: 1884 }, homeassistant: { url: 'mqtt://127.0.0.1:1883' } }));
      assert.equal(loadConfig(cfg).homeassistant?.url, 'mqtt://127.0.0.1:1883');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
