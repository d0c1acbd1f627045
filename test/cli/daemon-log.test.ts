/**
 * The daemon's log level as `wallbox run` takes it: WALLBOX_LOG_LEVEL=warn keeps the info lines out (a
 * start and a clean stop then log nothing at all), --log-level wins over the variable, and a clean stop
 * at the default level logs no warning.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../src/config/load.ts';
import { askStatus } from '../../src/status-socket.ts';
import { freePort } from '../helpers/broker.ts';

const CLI = join(PROJECT_ROOT, 'src/cli.ts');

async function runOnce(t: { after: (fn: () => void) => void }, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; out: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'wallbox-log-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const port = await freePort();
  const cfg = join(dir, 'local.json');
  writeFileSync(cfg, JSON.stringify({
    deviceId: 'log-test', storage: { path: join(dir, 'wallbox.db') }, uplink: { url: null },
    simulation: { serveInverter: true, servePort: port }, inverter: { driver: 'sunspec', modbus: { host: '127.0.0.1', port } }, vehicleLink: { driver: 'sim' }, gpio: { driver: 'sim' },
  }));
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'run', '--config', cfg, ...args], { cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const sock = join(dir, 'wallbox.sock');
  for (let i = 0; ; i++) {
    try {
      await askStatus(sock, { cmd: 'status' }, 500);
      break;
    } catch (e) {
      if (i > 200) throw new Error(`no daemon: ${(e as Error).message}\n${out}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  child.kill('SIGTERM');
  return { code: await exited, out };
}

test('WALLBOX_LOG_LEVEL=warn: no info lines; --log-level wins; the default level logs a clean stop without a warning', async (t) => {
  const quiet = await runOnce(t, [], { WALLBOX_LOG_LEVEL: 'warn' });
  assert.equal(quiet.code, 0, quiet.out);
  assert.doesNotMatch(quiet.out, / info  /, quiet.out);

  const loud = await runOnce(t, ['--log-level', 'info'], { WALLBOX_LOG_LEVEL: 'error' });
  assert.equal(loud.code, 0, loud.out);
  assert.match(loud.out, / info  wallbox [\d.]+ running as log-test/);
  const stop = loud.out.slice(loud.out.indexOf('SIGTERM: stopping'));
  assert.match(stop, /SIGTERM: stopping/);
  assert.doesNotMatch(stop, / warn  | error /, `a clean stop logs no warning:\n${stop}`);
});
