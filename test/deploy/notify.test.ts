/**
 * The production build under systemd's notify protocol, with the notify socket made by the test (a Unix
 * datagram socket, as systemd makes it): READY=1 only once the status socket answers (ports opened, first
 * plan applied), WATCHDOG=1 while the loop runs, none while the process is stalled, STOPPING=1 on SIGTERM.
 * The build goes to a directory of its own under dist/ so it never races `npm run build`.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PROJECT_ROOT } from '../../src/config/load.ts';
import { askStatus } from '../../src/status-socket.ts';
import { WatchdogGate } from '../../src/daemon.ts';
import { freePort } from '../helpers/broker.ts';

const run = promisify(execFile);

interface Received { text: string; atMs: number }

function dgramServer(path: string): { messages: Received[]; close(): void } {
  const require = createRequire(import.meta.url);
  const { createSocket } = require('unix-dgram') as { createSocket(type: 'unix_dgram', fn: (buf: Buffer) => void): { bind(p: string): void; close(): void; on(e: string, fn: (e: Error) => void): void } };
  const messages: Received[] = [];
  const sock = createSocket('unix_dgram', (buf) => messages.push({ text: buf.toString('utf8'), atMs: Date.now() }));
  sock.on('error', (e) => {
    throw e;
  });
  sock.bind(path);
  return { messages, close: () => sock.close() };
}

async function until(what: string, cond: () => boolean, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('watchdog gate: a ping only when the tick count moved since the last one', () => {
  const g = new WatchdogGate();
  assert.equal(g.shouldPing(0), true);
  assert.equal(g.shouldPing(0), false, 'a loop stuck at the same tick is not fed');
  assert.equal(g.shouldPing(0), false);
  assert.equal(g.shouldPing(1), true);
  assert.equal(g.shouldPing(5), true);
  assert.equal(g.shouldPing(5), false);
});

describe('built daemon under a test-made NOTIFY_SOCKET', () => {
  const buildDir = join(PROJECT_ROOT, 'dist', `test-build-${process.pid}`);
  before(async () => {
    // type errors are `npm run typecheck`'s to report; this test needs the emitted JavaScript
    await run(process.execPath, [join(PROJECT_ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(PROJECT_ROOT, 'tsconfig.build.json'), '--outDir', buildDir, '--sourceMap', 'false', '--noEmitOnError', 'false'], { cwd: PROJECT_ROOT })
      .catch((e: Error) => {
        if (!existsSync(join(buildDir, 'src/cli.js'))) throw e;
      });
    cpSync(join(PROJECT_ROOT, 'hal/inverter/sunspec/models'), join(buildDir, 'hal/inverter/sunspec/models'), { recursive: true });
  });
  after(() => rmSync(buildDir, { recursive: true, force: true }));

  test('READY after the first plan, watchdog pings while ticking, none while stalled, STOPPING on SIGTERM', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wallbox-notify-'));
    const notifyPath = join(dir, 'notify.sock');
    const server = dgramServer(notifyPath);
    const port = await freePort();
    const cfg = join(dir, 'local.json');
    writeFileSync(cfg, JSON.stringify({
      deviceId: 'notify-test', storage: { path: join(dir, 'wallbox.db') }, uplink: { url: null },
      inverter: { driver: 'sunspec', modbus: { host: '127.0.0.1', port } }, vehicleLink: { driver: 'sim' }, gpio: { driver: 'sim' },
      simulation: { serveInverter: true, servePort: port },
    }));
    const child = spawn(process.execPath, [join(buildDir, 'src/cli.js'), 'run', '--config', cfg], {
      cwd: dir, stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NOTIFY_SOCKET: notifyPath, WATCHDOG_USEC: '1000000' },
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    const texts = () => server.messages.map((m) => m.text);
    try {
      await until('READY=1', () => texts().some((t) => t.split('\n').includes('READY=1')));
      // READY means the status socket is served and a plan exists
      const status = (await askStatus(join(dir, 'wallbox.sock'), { cmd: 'status' })) as { ticks: number; mode: string };
      assert.ok(status.ticks >= 1, `a first tick ran before READY: ${JSON.stringify(status)}`);
      const ready = texts().find((t) => t.includes('READY=1'))!;
      assert.match(ready, /STATUS=\w+/, 'READY carries a status line for systemctl status');

      const pings = () => texts().filter((t) => t === 'WATCHDOG=1').length;
      await until('watchdog pings', () => pings() >= 3, 15_000);

      // a stalled process feeds nothing: systemd's WatchdogSec then restarts the service
      child.kill('SIGSTOP');
      await new Promise((r) => setTimeout(r, 300));
      const during = pings();
      await new Promise((r) => setTimeout(r, 2500));
      assert.equal(pings(), during, 'no watchdog ping while the process is stopped');
      child.kill('SIGCONT');
      await until('pings again once it runs', () => pings() > during, 15_000);

      child.kill('SIGTERM');
      assert.equal(await exited, 0, out);
      assert.ok(texts().includes('STOPPING=1'), texts().join(' | '));
      assert.ok(texts().indexOf('STOPPING=1') > texts().findIndex((t) => t.includes('READY=1')));
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
