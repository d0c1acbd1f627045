/**
 * A real MQTT broker for tests: Mosquitto on a free loopback port when it is installed (CI installs it),
 * else the embedded broker (aedes), and the test output says which.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { createServer, connect, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestBroker {
  kind: 'mosquitto' | 'embedded';
  port: number;
  url: string;
  /** Stop the broker (idempotent). */
  stop(): Promise<void>;
  /**
   * Start it again on the same port (Mosquitto only keeps persistence if configured). `whileDown` runs
   * between the stop and the start, to act during the outage.
   */
  restart(whileDown?: () => Promise<void> | void): Promise<void>;
}

export interface BrokerOptions {
  /** Extra lines for mosquitto.conf (e.g. TLS listener settings). */
  extraConfig?: string[];
  /** Reuse this port (for restarts in a new broker). */
  port?: number;
  /** Keep retained messages and sessions on disk across restarts. */
  persistence?: boolean;
}

export function mosquittoPath(): string | undefined {
  for (const p of ['/usr/sbin/mosquitto', '/usr/bin/mosquitto', '/usr/local/sbin/mosquitto']) {
    const r = spawnSync(p, ['-h'], { stdio: 'ignore' });
    if (!r.error) return p;
  }
  return undefined;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const c = connect(port, '127.0.0.1');
      c.once('connect', () => {
        c.destroy();
        resolve(true);
      });
      c.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`broker did not listen on 127.0.0.1:${port} within ${timeoutMs} ms`);
}

let announced = false;

export async function startBroker(opts: BrokerOptions = {}): Promise<TestBroker> {
  const port = opts.port ?? (await freePort());
  const bin = mosquittoPath();
  if (bin) return startMosquitto(bin, port, opts);
  if (!announced) {
    announced = true;
    console.log('# Mosquitto is not installed: broker tests fall back to the embedded broker (CI installs Mosquitto)');
  }
  return startEmbedded(port);
}

async function startMosquitto(bin: string, port: number, opts: BrokerOptions): Promise<TestBroker> {
  const dir = mkdtempSync(join(tmpdir(), 'wallbox-mosq-'));
  // started as root, Mosquitto drops to its own user, which must be able to write the persistence file
  if (opts.persistence) chmodSync(dir, 0o777);
  const conf = join(dir, 'mosquitto.conf');
  const lines = [
    `listener ${port} 127.0.0.1`,
    'allow_anonymous true',
    ...(opts.persistence ? ['persistence true', `persistence_location ${dir}/`, 'autosave_interval 1'] : ['persistence false']),
    ...(opts.extraConfig ?? []),
  ];
  writeFileSync(conf, lines.join('\n') + '\n');
  let child: ChildProcess | undefined;
  const start = async () => {
    child = spawn(bin, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (d) => (stderr += d));
    try {
      await waitForPort(port, 5000);
    } catch (e) {
      child.kill('SIGKILL');
      throw new Error(`${(e as Error).message}: ${stderr}`);
    }
  };
  const stop = async () => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      c.once('exit', () => resolve());
      c.kill('SIGTERM');
      setTimeout(() => c.kill('SIGKILL'), 2000).unref();
    });
  };
  await start();
  return {
    kind: 'mosquitto',
    port,
    url: `mqtt://127.0.0.1:${port}`,
    stop: async () => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
    restart: async (whileDown?: () => Promise<void> | void) => {
      await stop();
      await whileDown?.();
      await start();
    },
  };
}

async function startEmbedded(port: number): Promise<TestBroker> {
  const { startEmbeddedBroker } = await import('../../src/uplink/embedded-broker.ts');
  let b: { server: Server; close(): Promise<void> } | undefined = await startEmbeddedBroker(port, '127.0.0.1');
  return {
    kind: 'embedded',
    port,
    url: `mqtt://127.0.0.1:${port}`,
    stop: async () => {
      await b?.close();
      b = undefined;
    },
    restart: async (whileDown?: () => Promise<void> | void) => {
      await b?.close();
      await whileDown?.();
      b = await startEmbeddedBroker(port, '127.0.0.1');
    },
  };
}
