/**
 * The page as part of the daemon (`wallbox run` on simulated hardware): private until logged in;
 * `wallbox config set ui.publicRead true` opens reading at once; live status arrives as server-sent
 * events; a quick action set on the page is in the daemon's status and can be ended; `ui.listen` moved by
 * a reload moves the page; a clean stop with the page open.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../src/config/load.ts';
import { askStatus } from '../../src/status-socket.ts';
import { hashPassword, passwordFilePath, writePasswordFile } from '../../src/ui/auth.ts';
import { freePort } from '../helpers/broker.ts';
import { http, JSON_HEADERS, login } from './helpers.ts';
import { waitFor } from '../helpers/wait.ts';

const CLI = join(PROJECT_ROOT, 'src/cli.ts');

/** The first `status` event of the live stream. */
function firstEvent(port: number, cookie: string): Promise<Record<string, unknown>> {
  return new Promise((res, rej) => {
    const req = request({ host: '127.0.0.1', port, path: '/api/stream', headers: { Cookie: cookie }, agent: false }, (r) => {
      if (r.statusCode !== 200) return rej(new Error(`stream ${r.statusCode}`));
      let buf = '';
      r.setEncoding('utf8');
      r.on('data', (d: string) => {
        buf += d;
        const m = /event: status\ndata: (.*)\n\n/.exec(buf);
        if (m) {
          req.destroy();
          res(JSON.parse(m[1]) as Record<string, unknown>);
        }
      });
    });
    req.on('error', rej);
    req.end();
  });
}

describe('web page in the daemon', () => {
  test('private reading, config set opens it, live stream, quick action, ui.listen moved, clean stop', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wallbox-ui-daemon-'));
    const cfg = join(dir, 'local.json');
    const invPort = await freePort();
    const portA = await freePort();
    const portB = await freePort();
    writeFileSync(cfg, JSON.stringify({
      deviceId: 'ui-daemon', storage: { path: join(dir, 'wallbox.db') }, uplink: { url: null }, vehicle: { v2gEnabled: true },
      simulation: { serveInverter: true, servePort: invPort }, inverter: { driver: 'sunspec', modbus: { host: '127.0.0.1', port: invPort } }, vehicleLink: { driver: 'sim' }, gpio: { driver: 'sim' },
      ui: { listen: `127.0.0.1:${portA}` },
    }, null, 2) + '\n');
    writePasswordFile(passwordFilePath(join(dir, 'wallbox.db')), await hashPassword('open sesame 1'));
    const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'run', '--config', cfg], { cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    const sock = join(dir, 'wallbox.sock');
    const configSet = (key: string, value: string) => spawnSync(process.execPath, ['--import', 'tsx', CLI, 'config', 'set', key, value, '--config', cfg], { cwd: PROJECT_ROOT, encoding: 'utf8' });
    try {
      await waitFor('status', () => askStatus(sock, { cmd: 'status' }, 500));
      await waitFor('page', async () => ((await http(portA, 'GET', '/api/session')).status === 200 ? true : undefined));
      assert.equal((await http(portA, 'GET', '/api/status')).status, 401, 'private by default');

      const set = configSet('ui.publicRead', 'true');
      assert.equal(set.status, 0, set.stderr);
      const pub = await waitFor('public reading', async () => {
        const r = await http(portA, 'GET', '/api/status');
        return r.status === 200 ? r.json() : undefined;
      });
      const st = (await askStatus(sock, { cmd: 'status' })) as { socPct: number; floors: { effectiveFloorPct: number } };
      assert.ok(Math.abs((pub.socPct as number) - st.socPct) < 1);
      assert.equal((pub.floors as { effectiveFloorPct: number }).effectiveFloorPct, Math.round(st.floors.effectiveFloorPct * 10) / 10);
      // reading public, writing still needs the password
      assert.equal((await http(portA, 'POST', '/api/settings', { headers: JSON_HEADERS, body: '{"vehicle.dischargeFloorPct": 45}' })).status, 401);

      const cookie = await login(portA, 'open sesame 1');
      const ev = await firstEvent(portA, cookie);
      assert.equal(ev.deviceId, 'ui-daemon');
      assert.equal(typeof ev.socPct, 'number');

      // a quick action from the page: in the daemon's status, then ended
      const setAction = await http(portA, 'POST', '/api/actions/set', { headers: { ...JSON_HEADERS, Cookie: cookie }, body: JSON.stringify({ kind: 'pauseV2g', until: '4h' }) });
      assert.equal(setAction.status, 200, setAction.body);
      await waitFor('override in status', async () => {
        const r = (await http(portA, 'GET', '/api/status')).json();
        return (r.overrides as { kind: string }[]).some((o) => o.kind === 'pauseV2g') ? true : undefined;
      });
      const bad = await http(portA, 'POST', '/api/actions/set', { headers: { ...JSON_HEADERS, Cookie: cookie }, body: JSON.stringify({ kind: 'boost', targetSocPct: 250 }) });
      assert.equal(bad.status, 422);
      assert.match(String(bad.json().error), /250/);
      const clear = await http(portA, 'POST', '/api/actions/clear', { headers: { ...JSON_HEADERS, Cookie: cookie }, body: JSON.stringify({ kind: 'pauseV2g' }) });
      assert.equal(clear.status, 200, clear.body);
      await waitFor('override gone', async () => {
        const r = (await http(portA, 'GET', '/api/status')).json();
        return (r.overrides as unknown[]).length === 0 ? true : undefined;
      });

      // ui.listen moved by a reload: the page follows
      assert.equal(configSet('ui.listen', `"127.0.0.1:${portB}"`).status, 0);
      await waitFor('page moved', async () => ((await http(portB, 'GET', '/api/session')).status === 200 ? true : undefined));
      await assert.rejects(http(portA, 'GET', '/api/session'), /ECONNREFUSED/);

      child.kill('SIGTERM');
      assert.equal(await exited, 0, out);
      assert.doesNotMatch(out, /stop: web page/, 'the page stopped within its bound');
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
