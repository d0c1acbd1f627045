/**
 * The daemon as systemd runs it: a real process (`wallbox run`) on simulated hardware. Config reload keeps
 * the last good config when the new file is invalid or gone; status answers over the local socket; a config
 * that cannot work exits 78; SIGTERM sets the power to zero and the process is gone within its bound, also
 * during a dispatch, during start-up and while an MQTT connect hangs; a taken simulator port is a clear error.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, mkdtempSync, writeFileSync, rmSync, unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { PROJECT_ROOT } from '../../src/config/load.ts';
import { askStatus } from '../../src/status-socket.ts';
import { EXIT_CONFIG, STOP_BUDGET_MS } from '../../src/daemon.ts';
import { SimSite } from '../../hal/sim/site.ts';
import { startSimSunspecServer } from '../../hal/sim/sunspec-server.ts';
import { systemClock } from '../../hal/system-clock.ts';
import { brokerProtocolVersion, freePort, startBroker } from '../helpers/broker.ts';
import { NO_MOUNT, tinyFs } from '../helpers/tmpfs.ts';
import { waitFor } from '../helpers/wait.ts';

const CLI = join(PROJECT_ROOT, 'src/cli.ts');

interface Daemon {
  child: ChildProcess;
  out: () => string;
  exited: Promise<number | null>;
  sock: string;
  /** Exit code, or a failure if the process is still alive `ms` after the call (a hang, not a speed figure). */
  exitWithin(ms: number): Promise<number | null>;
}

function startDaemon(cfg: string, sockDir: string, env: NodeJS.ProcessEnv = {}): Daemon {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'run', '--config', cfg], { cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return {
    child,
    out: () => out,
    exited,
    sock: join(sockDir, 'wallbox.sock'),
    exitWithin: (ms) => {
      let t: NodeJS.Timeout;
      return Promise.race([
        exited.finally(() => clearTimeout(t)),
        new Promise<never>((_, rej) => (t = setTimeout(() => rej(new Error(`still running ${ms} ms later:\n${out}`)), ms))),
      ]);
    },
  };
}

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'wallbox-daemon-'));
}

type Status = { deviceId: string; floors: { dischargeFloorPct: number }; mode: string; faults: string[]; reasons: string[]; ticks: number; config: { restartNeeded: string[] } };

async function simConfig(dir: string, extra: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
  // the simulated inverter is served over Modbus TCP on a free loopback port and read through the SunSpec driver
  const port = await freePort();
  return {
    deviceId: 'test-daemon', storage: { path: join(dir, 'wallbox.db') }, uplink: { url: null }, vehicle: { dischargeFloorPct: 40 },
    simulation: { serveInverter: true, servePort: port }, inverter: { driver: 'sunspec', modbus: { host: '127.0.0.1', port } }, vehicleLink: { driver: 'sim' }, gpio: { driver: 'sim' },
    ...extra,
  };
}

/**
 * A daemon on a fresh simulated config (`simConfig(dir, extra)`) in its own directory; whatever `body` does,
 * the process is killed if still running and the directory removed afterwards.
 */
async function withSimDaemon(extra: Record<string, unknown>, body: (d: Daemon, ctx: { cfg: string; config: Record<string, unknown> }) => Promise<void>): Promise<void> {
  const dir = tempDir();
  const cfg = join(dir, 'local.json');
  const config = await simConfig(dir, extra);
  writeFileSync(cfg, JSON.stringify(config));
  const d = startDaemon(cfg, dir);
  try {
    await body(d, { cfg, config });
  } finally {
    if (d.child.exitCode === null) d.child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('daemon', () => {
  test('status over the socket, invalid config refused with the last good kept, clean stop', async () => {
    await withSimDaemon({}, async (d, { cfg, config: good }) => {
      const s1 = (await waitFor('status', () => askStatus(d.sock, { cmd: 'status' }, 500))) as Status;
      assert.equal(s1.deviceId, 'test-daemon');
      assert.equal(s1.floors.dischargeFloorPct, 40);

      writeFileSync(cfg, JSON.stringify({ ...good, vehicle: { dischargeFloorPct: 30, backupFloorPct: 45 } }));
      await waitFor('refusal', () => (/config .* refused/.test(d.out()) ? true : undefined));
      assert.match(d.out(), /vehicle\.backupFloorPct: must not exceed vehicle\.dischargeFloorPct/);
      const s2 = (await askStatus(d.sock, { cmd: 'status' })) as Status;
      assert.equal(s2.floors.dischargeFloorPct, 40, 'the last good config stays in force');

      writeFileSync(cfg, JSON.stringify({ ...good, vehicle: { dischargeFloorPct: 35 } }));
      await waitFor('reload', async () => (((await askStatus(d.sock, { cmd: 'status' })) as Status).floors.dischargeFloorPct === 35 ? true : undefined));

      d.child.kill('SIGHUP');
      await waitFor('SIGHUP reload', () => (/config reloaded \(SIGHUP\)/.test(d.out()) ? true : undefined));
      assert.equal(d.child.exitCode, null, 'still running');

      d.child.kill('SIGTERM');
      assert.equal(await d.exitWithin(STOP_BUDGET_MS + 5000), 0, d.out());
      assert.match(d.out(), /SIGTERM: stopping/);
    });
  });

  test('an invalid config at start is a clear error and exit code 78', async () => {
    const dir = tempDir();
    const cfg = join(dir, 'local.json');
    writeFileSync(cfg, JSON.stringify({ vehicle: { dischargeFloorPct: 'half' } }));
    const d = startDaemon(cfg, dir);
    const code = await d.exitWithin(30_000);
    rmSync(dir, { recursive: true, force: true });
    assert.equal(code, EXIT_CONFIG);
    assert.equal(EXIT_CONFIG, 78, 'the unit file names 78 in RestartPreventExitStatus');
    assert.match(d.out(), /vehicle\.dischargeFloorPct: must be number/);
  });

  test('a missing config file at start: exit 78 naming the path, never the built-in defaults', async () => {
    const dir = tempDir();
    const cfg = join(dir, 'does-not-exist.json');
    const d = startDaemon(cfg, dir);
    const code = await d.exitWithin(30_000);
    rmSync(dir, { recursive: true, force: true });
    assert.equal(code, 78, d.out());
    assert.ok(d.out().includes(cfg), d.out());
    assert.match(d.out(), /ENOENT/);
    assert.doesNotMatch(d.out(), /running as/);
  });

  test('a deleted config on reload keeps the last good config and raises an event', async () => {
    await withSimDaemon({ vehicle: { dischargeFloorPct: 42, v2gEnabled: false } }, async (d, { cfg }) => {
      await waitFor('status', () => askStatus(d.sock, { cmd: 'status' }, 500));
      unlinkSync(cfg);
      await waitFor('the refusal event', () => (/\[config\] config .* refused \(file changed\), keeping the last good one: cannot read file/.test(d.out()) ? true : undefined));
      d.child.kill('SIGHUP');
      await waitFor('the refusal on SIGHUP', () => (/refused \(SIGHUP\)/.test(d.out()) ? true : undefined));
      const s = (await askStatus(d.sock, { cmd: 'status' })) as Status;
      assert.equal(s.floors.dischargeFloorPct, 42, 'still the last good config, not the defaults');
      assert.equal(d.child.exitCode, null);
      d.child.kill('SIGTERM');
      assert.equal(await d.exitWithin(STOP_BUDGET_MS + 5000), 0);
    });
  });

  test('sighup-during-start: a SIGHUP while the daemon starts does not end it (its default action would)', async () => {
    await withSimDaemon({}, async (d) => {
      // the first line the daemon logs comes before the hardware, the runtime and the reload path exist
      await waitFor('the first log line', () => (/ (info|warn|error) /.test(d.out()) ? true : undefined), 300, 20);
      d.child.kill('SIGHUP');
      const s = (await waitFor('status after the SIGHUP', () => askStatus(d.sock, { cmd: 'status' }, 500))) as Status;
      assert.equal(s.deviceId, 'test-daemon');
      assert.equal(d.child.exitCode, null, `still running:\n${d.out()}`);
      assert.equal(d.child.signalCode, null);
      // and once it runs, SIGHUP reloads as always
      d.child.kill('SIGHUP');
      await waitFor('SIGHUP reload', () => (/config reloaded \(SIGHUP\)/.test(d.out()) ? true : undefined));
      d.child.kill('SIGTERM');
      assert.equal(await d.exitWithin(STOP_BUDGET_MS + 5000), 0, d.out());
    });
  });

  test('a reload names the keys needing a restart (event and `wallbox config set`); live keys apply at once', async () => {
    await withSimDaemon({}, async (d, { cfg }) => {
      await waitFor('status', () => askStatus(d.sock, { cmd: 'status' }, 500));
      const { main } = await import('../../src/cli.ts');
      const run = async (...args: string[]) => {
        const lines: string[] = [];
        const code = await main(['config', 'set', ...args, '--config', cfg], { out: (s) => lines.push(s), err: (s) => lines.push(s), env: {} });
        return { code, text: lines.join('\n') };
      };
      const floor = await run('vehicle.dischargeFloorPct', '55');
      assert.equal(floor.code, 0, floor.text);
      assert.match(floor.text, /applied by the running daemon: vehicle\.dischargeFloorPct/);
      await waitFor('the new floor in force', async () => (((await askStatus(d.sock, { cmd: 'status' })) as Status).floors.dischargeFloorPct === 55 ? true : undefined));

      const driver = await run('inverter.timeoutMs', '900');
      assert.equal(driver.code, 0, driver.text);
      assert.match(driver.text, /inverter\.timeoutMs needs a restart/);
      await waitFor('the restart event', () => (/\[config\] config changes that take effect only after a restart.*inverter\.timeoutMs/.test(d.out()) ? true : undefined));
      const s = (await askStatus(d.sock, { cmd: 'status' })) as Status;
      assert.deepEqual(s.config.restartNeeded, ['inverter.timeoutMs']);

      // the reward rate: applied live or named as needing a restart, never a silent claim
      const reward = await run('reward.ratePerKWh', '0.25');
      assert.equal(reward.code, 0, reward.text);
      assert.match(reward.text, /applied by the running daemon: reward\.ratePerKWh/);
      assert.doesNotMatch(reward.text, /picks it up/);
      d.child.kill('SIGTERM');
      assert.equal(await d.exitWithin(STOP_BUDGET_MS + 5000), 0);
    });
  });

  test('a taken simulator port: a clear error and exit 1, not a silent hang', async () => {
    const dir = tempDir();
    const holder = createServer();
    const port = await new Promise<number>((r) => holder.listen(0, '127.0.0.1', () => r((holder.address() as { port: number }).port)));
    const cfg = join(dir, 'local.json');
    writeFileSync(cfg, JSON.stringify(await simConfig(dir, { simulation: { serveInverter: true, servePort: port }, inverter: { driver: 'sunspec', modbus: { host: '127.0.0.1', port } } })));
    const d = startDaemon(cfg, dir);
    try {
      const code = await d.exitWithin(30_000);
      assert.equal(code, 1, d.out());
      assert.match(d.out(), new RegExp(`EADDRINUSE.*${port}`));
    } finally {
      holder.close();
      if (d.child.exitCode === null) d.child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('daemon stop: power to zero first, the process gone within its bound', () => {
  /** A simulated inverter hosted by the test over SunSpec Modbus TCP, so its setpoint is seen from outside. */
  async function externalInverter(): Promise<{ site: SimSite; port: number; close(): Promise<void> }> {
    const site = new SimSite({
      clock: systemClock, vehicle: { capacityWh: 60_000, socPct: 90, maxChargeW: 11000, maxDischargeW: 11000 },
      inverter: { ratedW: 11000, efficiency: 0.95 }, houseLoadW: 500, sheddableLoadsW: [],
    });
    site.startPhysics(50);
    const port = await freePort();
    const server = await startSimSunspecServer({ port, inverter: site.inverter, car: site.car, clock: systemClock });
    return { site, port, close: async () => { site.stopPhysics(); await server.close(); } };
  }

  function externalConfig(dir: string, inverterPort: number, uplinkUrl: string | null): Record<string, unknown> {
    return {
      deviceId: 'stopper', storage: { path: join(dir, 'wallbox.db') }, uplink: { url: uplinkUrl },
      // reversion long: a zero seen here comes from the daemon's stop, not from the inverter's own timeout
      inverter: { driver: 'sunspec', modbus: { host: '127.0.0.1', port: inverterPort, unitId: 1 }, reversionS: 600 },
      vehicleLink: { driver: 'sim' }, gpio: { driver: 'sim' },
      vehicle: { v2gEnabled: true, dischargeFloorPct: 20, backupFloorPct: 10, departureTime: null },
      simulation: { serveInverter: false, vehicle: { socPct: 90, capacityWh: 60_000 } },
    };
  }

  test('SIGTERM during a dispatch: the setpoint goes to zero and the process exits 0 within the bound', async () => {
    const dir = tempDir();
    const inv = await externalInverter();
    const broker = await startBroker();
    const cfg = join(dir, 'local.json');
    writeFileSync(cfg, JSON.stringify(externalConfig(dir, inv.port, broker.url)));
    const agg = await mqtt.connectAsync(broker.url, { protocolVersion: brokerProtocolVersion(), reconnectPeriod: 0 });
    const d = startDaemon(cfg, dir);
    try {
      await waitFor('uplink connected', () => (/uplink: connected/.test(d.out()) ? true : undefined), 300);
      await waitFor('discharging', async () => {
        await agg.publishAsync('wallbox/stopper/dispatch', JSON.stringify({ id: 'stop-1', powerW: -5000, durationS: 600 }), { qos: 1 });
        await new Promise((r) => setTimeout(r, 300));
        return inv.site.inverter.setpointW < 0 ? true : undefined;
      }, 60, 0);
      d.child.kill('SIGTERM');
      assert.equal(await d.exitWithin(STOP_BUDGET_MS + 3000), 0, d.out());
      assert.equal(inv.site.inverter.setpointW, 0, `the daemon left the inverter at ${inv.site.inverter.setpointW} W`);
      const out = d.out();
      assert.ok(out.indexOf('stopping (power to zero)') >= 0, out);
    } finally {
      if (d.child.exitCode === null) d.child.kill('SIGKILL');
      await agg.endAsync(true);
      await broker.stop();
      await inv.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a full disk: the daemon refuses new dispatches with storage and says so in state, event and status', async (t) => {
    const fs = tinyFs(t, 8 * 1024);
    if (!fs) return t.skip(NO_MOUNT);
    const dir = tempDir();
    const broker = await startBroker();
    const cfg = join(dir, 'local.json');
    writeFileSync(cfg, JSON.stringify(await simConfig(fs, {
      deviceId: 'fulldisk', uplink: { url: broker.url }, storage: { path: join(fs, 'wallbox.db'), minFreeMiB: 2 },
      vehicle: { v2gEnabled: true, dischargeFloorPct: 20, departureTime: null },
    })));
    const agg = await mqtt.connectAsync(broker.url, { protocolVersion: brokerProtocolVersion(), reconnectPeriod: 0 });
    const seen: { topic: string; body: Record<string, unknown> }[] = [];
    agg.on('message', (topic, payload) => {
      try {
        seen.push({ topic, body: JSON.parse(payload.toString()) });
      } catch {
        // not JSON: not ours
      }
    });
    await agg.subscribeAsync('wallbox/fulldisk/#', { qos: 1 });
    const d = startDaemon(cfg, fs);
    try {
      await waitFor('uplink connected', () => (/uplink: connected/.test(d.out()) ? true : undefined), 300);
      // fill the file system the database lives on
      const filler = join(fs, 'filler');
      const chunk = Buffer.alloc(256 * 1024, 1);
      try {
        for (let i = 0; i < 64; i++) appendFileSync(filler, chunk);
      } catch (e) {
        assert.equal((e as NodeJS.ErrnoException).code, 'ENOSPC');
      }
      const alarm = await waitFor('the storage event', () => seen.find((m) => m.topic === 'wallbox/fulldisk/event' && m.body.kind === 'storage' && m.body.severity === 'alarm'), 200);
      assert.match(String(alarm.body.message), /ENOSPC: .* MiB free on .*below storage\.minFreeMiB/);
      await agg.publishAsync('wallbox/fulldisk/dispatch', JSON.stringify({ id: 'full-1', powerW: -4000, durationS: 300 }), { qos: 1 });
      const answer = await waitFor('the answer', () => seen.find((m) => m.topic === 'wallbox/fulldisk/dispatch/response' && m.body.id === 'full-1'));
      assert.equal(answer.body.status, 'rejected');
      assert.equal(answer.body.reason, 'storage');
      const state = await waitFor('a state saying so', () => seen.find((m) => m.topic === 'wallbox/fulldisk/state' && (m.body.storage as { writable?: boolean } | undefined)?.writable === false), 200);
      // the first cause seen (the free-space check) or the write that failed after it: both say "full"
      assert.match(String((state.body.storage as { fault: string }).fault), /ENOSPC|SQLITE_FULL/);
      const status = await askStatus(d.sock, { cmd: 'status' }, 2000);
      assert.match(JSON.stringify(status), /storage: (ENOSPC|SQLITE_FULL)/);
      d.child.kill('SIGTERM');
      assert.equal(await d.exitWithin(STOP_BUDGET_MS + 5000), 0, d.out());
    } finally {
      if (d.child.exitCode === null) d.child.kill('SIGKILL');
      await agg.endAsync(true);
      await broker.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('SIGTERM while the MQTT connect hangs (something on the broker port that never answers): gone within the bound', async () => {
    const dir = tempDir();
    const inv = await externalInverter();
    const sockets: Socket[] = [];
    const silent: Server = createServer((s) => sockets.push(s));
    const mqttPort = await new Promise<number>((r) => silent.listen(0, '127.0.0.1', () => r((silent.address() as { port: number }).port)));
    const cfg = join(dir, 'local.json');
    const c = externalConfig(dir, inv.port, `mqtt://127.0.0.1:${mqttPort}`);
    writeFileSync(cfg, JSON.stringify({ ...c, uplink: { url: `mqtt://127.0.0.1:${mqttPort}`, connectTimeoutS: 1 } }));
    const d = startDaemon(cfg, dir);
    try {
      await waitFor('status', () => askStatus(d.sock, { cmd: 'status' }, 500));
      await waitFor('a connection attempt held open', () => (sockets.length > 0 ? true : undefined));
      // the case: SIGTERM after the connect watchdog gave up on an attempt (connack timeout)
      await waitFor('a connack timeout', () => (/CONNACK|connack/.test(d.out()) ? true : undefined), 200);
      d.child.kill('SIGTERM');
      assert.equal(await d.exitWithin(STOP_BUDGET_MS + 3000), 0, d.out());
      assert.equal(inv.site.inverter.setpointW, 0);
    } finally {
      if (d.child.exitCode === null) d.child.kill('SIGKILL');
      for (const s of sockets) s.destroy();
      silent.close();
      await inv.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('SIGTERM during start-up (the inverter does not answer yet): the stop sequence still runs, gone within the bound', async () => {
    const dir = tempDir();
    const sockets: Socket[] = [];
    const silent: Server = createServer((s) => sockets.push(s));
    const port = await new Promise<number>((r) => silent.listen(0, '127.0.0.1', () => r((silent.address() as { port: number }).port)));
    const cfg = join(dir, 'local.json');
    writeFileSync(cfg, JSON.stringify({ ...externalConfig(dir, port, null), inverter: { driver: 'sunspec', modbus: { host: '127.0.0.1', port, unitId: 1 }, timeoutMs: 5000, retries: 3 } }));
    const d = startDaemon(cfg, dir);
    try {
      await waitFor('the inverter being opened', () => (sockets.length > 0 ? true : undefined), 300);
      d.child.kill('SIGTERM');
      assert.equal(await d.exitWithin(STOP_BUDGET_MS + 3000), 0, d.out());
      assert.match(d.out(), /SIGTERM: stopping/);
    } finally {
      if (d.child.exitCode === null) d.child.kill('SIGKILL');
      for (const s of sockets) s.destroy();
      silent.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
