/**
 * The daemon as systemd runs it: a real process on simulated hardware. Config reload keeps the last good
 * config when the new file is invalid; status answers over the local socket; SIGTERM stops it cleanly.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../src/config/load.ts';
import { askStatus } from '../../src/status-socket.ts';
import { freePort } from '../helpers/broker.ts';

async function waitFor<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, tries = 100, everyMs = 100): Promise<T> {
  for (let i = 0; i < tries; i++) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out waiting for ${what}`);
}

test('daemon: status over the socket, invalid config refused with the last good kept, clean stop', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'wallbox-daemon-'));
  const cfg = join(dir, 'local.json');
  // the simulated inverter is served over Modbus TCP on a free loopback port and read through the SunSpec driver
  const good = { deviceId: 'test-daemon', storage: { path: join(dir, 'wallbox.db') }, uplink: { url: null }, vehicle: { dischargeFloorPct: 40 }, simulation: { servePort: await freePort() }, inverter: { modbus: { host: '127.0.0.1', port: 0 } } };
  good.inverter.modbus.port = good.simulation.servePort;
  writeFileSync(cfg, JSON.stringify(good));
  const child = spawn(process.execPath, ['--import', 'tsx', join(PROJECT_ROOT, 'src/cli.ts'), 'run', '--config', cfg], { cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const sock = join(dir, 'wallbox.sock');
  try {
    const s1 = (await waitFor('status', () => askStatus(sock, { cmd: 'status' }, 500))) as { deviceId: string; floors: { dischargeFloorPct: number }; mode: string };
    assert.equal(s1.deviceId, 'test-daemon');
    assert.equal(s1.floors.dischargeFloorPct, 40);

    writeFileSync(cfg, JSON.stringify({ ...good, vehicle: { dischargeFloorPct: 30, backupFloorPct: 45 } }));
    await waitFor('refusal', () => (/config refused/.test(out) ? true : undefined));
    assert.match(out, /vehicle\.backupFloorPct: must not exceed vehicle\.dischargeFloorPct/);
    const s2 = (await askStatus(sock, { cmd: 'status' })) as { floors: { dischargeFloorPct: number } };
    assert.equal(s2.floors.dischargeFloorPct, 40, 'the last good config stays in force');

    writeFileSync(cfg, JSON.stringify({ ...good, vehicle: { dischargeFloorPct: 35 } }));
    await waitFor('reload', async () => (((await askStatus(sock, { cmd: 'status' })) as { floors: { dischargeFloorPct: number } }).floors.dischargeFloorPct === 35 ? true : undefined));

    child.kill('SIGHUP');
    await waitFor('SIGHUP reload', () => (/config reloaded \(SIGHUP\)/.test(out) ? true : undefined));
    assert.equal(child.exitCode, null, 'still running');

    const exit = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    child.kill('SIGTERM');
    assert.equal(await exit, 0, out);
    assert.match(out, /SIGTERM: stopping/);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('daemon: an invalid config at start is a clear error and exit code 78', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'wallbox-daemon-'));
  const cfg = join(dir, 'local.json');
  writeFileSync(cfg, JSON.stringify({ vehicle: { dischargeFloorPct: 'half' } }));
  const child = spawn(process.execPath, ['--import', 'tsx', join(PROJECT_ROOT, 'src/cli.ts'), 'run', '--config', cfg], { cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  rmSync(dir, { recursive: true, force: true });
  assert.equal(code, 78);
  assert.match(out, /vehicle\.dischargeFloorPct: must be number/);
});
