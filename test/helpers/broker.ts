/**
 * A real MQTT broker for tests: Mosquitto on a free loopback port when it is installed (CI installs it),
 * else the embedded broker (aedes), and the test output says which. `WALLBOX_TEST_BROKER=embedded` forces
 * the embedded broker where Mosquitto is installed, so the fallback path can be run anywhere;
 * `WALLBOX_TEST_BROKER=mosquitto` makes a missing Mosquitto an error instead of a fallback.
 *
 * The embedded broker (aedes 0.51, and still 1.2) speaks MQTT 3.1.1 only: it refuses an MQTT 5 CONNECT
 * with "Unacceptable protocol version". A test that needs what only Mosquitto gives (MQTT 5 sessions and
 * properties, TLS listeners, persistence across a broker restart, the mosquitto_pub/sub clients) takes
 * `{ skip: brokerSkip([...]) }`, decided once before any broker starts, so it is reported as skipped with
 * the reason instead of failing after a timeout.
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

/** What a test may need that only Mosquitto (or its client tools) provides. */
export type BrokerNeed = 'mqtt5' | 'tls' | 'persistence' | 'clients';

let chosen: { kind: 'mosquitto' | 'embedded'; bin?: string; why: string } | undefined;

/** Which broker the tests get, decided once per process from WALLBOX_TEST_BROKER and what is installed. */
export function brokerChoice(env: NodeJS.ProcessEnv = process.env): { kind: 'mosquitto' | 'embedded'; bin?: string; why: string } {
  if (chosen && env === process.env) return chosen;
  const wanted = (env.WALLBOX_TEST_BROKER ?? '').trim().toLowerCase();
  let c: { kind: 'mosquitto' | 'embedded'; bin?: string; why: string };
  if (wanted === 'embedded') c = { kind: 'embedded', why: 'WALLBOX_TEST_BROKER=embedded' };
  else if (wanted !== '' && wanted !== 'mosquitto' && wanted !== 'auto')
    throw new Error(`WALLBOX_TEST_BROKER must be "embedded", "mosquitto" or "auto", got ${JSON.stringify(env.WALLBOX_TEST_BROKER)}`);
  else {
    const bin = mosquittoPath();
    if (bin) c = { kind: 'mosquitto', bin, why: `Mosquitto at ${bin}` };
    else if (wanted === 'mosquitto') throw new Error('WALLBOX_TEST_BROKER=mosquitto but Mosquitto is not installed (Debian package "mosquitto")');
    else c = { kind: 'embedded', why: 'Mosquitto is not installed' };
  }
  if (env === process.env) chosen = c;
  return c;
}

/** MQTT protocol version a test's own clients should use against the chosen broker. */
export function brokerProtocolVersion(): 4 | 5 {
  return brokerChoice().kind === 'mosquitto' ? 5 : 4;
}

function mosquittoClientsInstalled(): boolean {
  return !spawnSync('mosquitto_pub', ['--help'], { stdio: 'ignore' }).error && !spawnSync('mosquitto_sub', ['--help'], { stdio: 'ignore' }).error;
}

/**
 * `false` when the chosen broker serves every need, else a one-line reason for node:test's `skip`.
 * Decided before the test runs, so a skipped test costs no broker start and no timeout.
 */
export function brokerSkip(needs: BrokerNeed[]): string | false {
  const c = brokerChoice();
  const brokerNeeds = needs.filter((n) => n !== 'clients');
  if (c.kind === 'embedded' && brokerNeeds.length) {
    const what = brokerNeeds.map((n) => ({ mqtt5: 'MQTT 5', tls: 'a TLS listener', persistence: 'persistence across broker restarts', clients: '' })[n]).join(', ');
    return `needs Mosquitto for ${what}; the embedded broker (${c.why}) speaks MQTT 3.1.1 only`;
  }
  if (needs.includes('clients') && !mosquittoClientsInstalled()) return 'needs mosquitto_pub/mosquitto_sub (Debian package "mosquitto-clients")';
  return false;
}

export async function startBroker(opts: BrokerOptions = {}): Promise<TestBroker> {
  const port = opts.port ?? (await freePort());
  const c = brokerChoice();
  if (c.kind === 'mosquitto' && c.bin) return startMosquitto(c.bin, port, opts);
  if (!announced) {
    announced = true;
    console.log(`# embedded MQTT broker for the broker tests (${c.why}); tests that need Mosquitto skip and say why`);
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
