/**
 * The page's server in-process for API and hostile-input tests: a real config file and a real SQLite store
 * in a temp directory, a real password file, the real settings and overrides code. The daemon's status is
 * the one thing stood in for (the browser test runs the whole daemon).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request, type IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.ts';
import type { Config } from '../../src/config/types.ts';
import { openStore, type Store } from '../../src/store/index.ts';
import { hashPassword, passwordFilePath, writePasswordFile } from '../../src/ui/auth.ts';
import { UiServer } from '../../src/ui/server.ts';
import { systemClock } from '../../hal/system-clock.ts';

export const PASSWORD = 'garage door 42';

export interface Harness {
  dir: string;
  cfgPath: string;
  base: string;
  port: number;
  server: UiServer;
  store: Store;
  reloads: string[];
  config: () => Config;
  close(): Promise<void>;
}

export async function startHarness(opts: { publicRead?: boolean; maxStreams?: number; password?: boolean; status?: Record<string, unknown>; allowedHosts?: string[] } = {}): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'wallbox-ui-'));
  const cfgPath = join(dir, 'local.json');
  writeFileSync(cfgPath, JSON.stringify({ deviceId: 'ui-test', storage: { path: join(dir, 'wallbox.db') }, uplink: { url: null }, inverter: { modbus: { host: '127.0.0.1' } }, vehicle: { dischargeFloorPct: 40 } }, null, 2) + '\n');
  let running = loadConfig(cfgPath);
  const store = openStore(running.storage.path);
  if (opts.password !== false) writePasswordFile(passwordFilePath(running.storage.path), await hashPassword(PASSWORD));
  const reloads: string[] = [];
  const server = new UiServer(
    {
      configPath: cfgPath,
      config: () => running,
      status: async () => ({
        mode: 'idle', grid: 'up', socPct: 63.04, socSource: 'vehicle', socAgeS: 1, powerW: 0, setpointW: 0,
        floors: { dischargeFloorPct: running.vehicle.dischargeFloorPct, backupFloorPct: running.vehicle.backupFloorPct, effectiveFloorPct: running.vehicle.dischargeFloorPct },
        dispatchId: null, backup: { active: false, phase: 'on-grid', shedTiers: [] }, departureAt: null, departureAtRisk: false, reasons: [], fault: null, portFaults: [], faults: [],
        deviceId: running.deviceId, version: 'test', ...(opts.status ?? {}),
      }),
      dispatches: () => [],
      clock: systemClock,
      reload: async (why) => {
        reloads.push(why);
        running = loadConfig(cfgPath);
        return { ok: true, applied: [], restartNeeded: [] };
      },
      log: () => {},
    },
    { publicRead: opts.publicRead ?? false, maxStreams: opts.maxStreams ?? 8, allowedHosts: opts.allowedHosts },
  );
  const { port } = await server.listen('127.0.0.1:0');
  return {
    dir, cfgPath, base: `http://127.0.0.1:${port}`, port, server, store, reloads, config: () => running,
    async close() {
      await server.close();
      store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  json: () => Record<string, unknown>;
}

/** One HTTP request on its own connection (no agent), answered or failed. */
export function http(port: number, method: string, path: string, opts: { headers?: Record<string, string | number>; body?: string | Buffer; agent?: false } = {}): Promise<Reply> {
  return new Promise((res, rej) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers: opts.headers, agent: false }, (r) => {
      const chunks: Buffer[] = [];
      r.on('data', (c: Buffer) => chunks.push(c));
      r.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        res({ status: r.statusCode ?? 0, headers: r.headers, body, json: () => JSON.parse(body) as Record<string, unknown> });
      });
      r.on('error', rej);
    });
    req.on('error', rej);
    if (opts.body !== undefined) req.write(opts.body);
    req.end();
  });
}

export const JSON_HEADERS = { 'Content-Type': 'application/json' };

/** Logs in and returns the Cookie header value. */
export async function login(port: number, password = PASSWORD): Promise<string> {
  const r = await http(port, 'POST', '/api/login', { headers: JSON_HEADERS, body: JSON.stringify({ password }) });
  if (r.status !== 200) throw new Error(`login: ${r.status} ${r.body}`);
  const set = String(r.headers['set-cookie']?.[0] ?? '');
  return set.split(';')[0];
}
