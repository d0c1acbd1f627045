/**
 * The homeowner's surfaces: how long `wallbox status` takes as a person runs it (a new process, tsx
 * from the sources, against a daemon's socket), the core's cost of the quick-action hook (decide() with
 * three overrides in force against none), and the Home Assistant payload sizes.
 * Run: npx tsx bench/homeowner.ts
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { PROJECT_ROOT, loadConfig } from '../src/config/load.ts';
import { decide, initialMemory } from '../src/control/decide.ts';
import { controlSettings } from '../src/runtime/settings.ts';
import { discoveryPayload, statePayload } from '../src/homeassistant/discovery.ts';
import { serveStatus, statusSocketPath } from '../src/status-socket.ts';
import { fmt, rssMiB, runIfMain, summarize } from './stats.ts';

async function statusCommand(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'wallbox-bench-'));
  const cfg = join(dir, 'local.json');
  const db = join(dir, 'wallbox.db');
  writeFileSync(cfg, JSON.stringify({ deviceId: 'bench', storage: { path: db }, inverter: { driver: 'sim' }, vehicleLink: { driver: 'sim' } }));
  const server = await serveStatus(statusSocketPath(db), () => ({ mode: 'idle', socPct: 70.04, powerW: 0, floors: { dischargeFloorPct: 50, effectiveFloorPct: 50, backupFloorPct: 20 }, overrides: [] }));
  try {
    const times: number[] = [];
    for (let i = 0; i < 8; i++) {
      const t0 = performance.now();
      // a child process (not spawnSync: this process serves the socket the command asks)
      const code = await new Promise<number | null>((res) => {
        const child = spawn(process.execPath, ['--import', 'tsx', join(PROJECT_ROOT, 'src/cli.ts'), 'status', '--json', '--config', cfg], { stdio: 'ignore' });
        child.once('exit', res);
      });
      times.push(performance.now() - t0);
      if (code !== 0) throw new Error(`status exited ${code}`);
    }
    const s = summarize(times);
    console.log(`wallbox status --json (new process, tsx): median ${fmt(s.median, 0)} ms, p99 ${fmt(s.p99, 0)} ms over ${s.n} runs`);
  } finally {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

function coreHook(): void {
  const base = controlSettings(loadConfig(null, { timezone: 'Europe/Paris' }));
  const t0 = Date.parse('2026-12-01T18:00:00Z');
  const iso = (ms: number) => new Date(ms).toISOString();
  const withOverrides = {
    ...base,
    overrides: {
      boost: { targetSocPct: 90, until: iso(t0 + 3_600_000) }, pauseV2g: { until: iso(t0 + 7_200_000) }, backupReserve: { socPct: 80, until: iso(t0 + 7_200_000) },
    },
  };
  const snap = (now: number) => ({
    vehicle: { connected: true, socPct: 85, socAtMs: now, socSource: 'vehicle' as const, capacityWh: 60000, maxChargeW: 11000, maxDischargeW: 11000, bidirectional: true, atMs: now },
    inverter: { atMs: now, powerW: 0, ratedW: 11000, maxChargeW: 11000, maxDischargeW: 11000, efficiency: 0.95, gridForming: false, connected: true, alarms: [], islandCapable: true },
    grid: { sensePresent: true }, contactor: { installed: true, feedbackClosed: true, commandedClosed: true }, estopPressed: false, houseLoadW: 500, loadTierCount: 0,
    commands: [], energy: { exportedWh: 0, importedWh: 0, carSideWh: 0 },
  });
  for (const [name, c] of [['no override', base], ['three overrides in force', withOverrides]] as const) {
    let mem = initialMemory(t0);
    const times: number[] = [];
    for (let i = 0; i < 20_000; i++) {
      const now = t0 + i * 1000;
      const a = performance.now();
      const p = decide(snap(now), c, mem, now);
      times.push((performance.now() - a) * 1000);
      mem = p.memory;
    }
    const s = summarize(times.slice(1000));
    console.log(`decide() with ${name}: median ${fmt(s.median, 1)} µs, p99 ${fmt(s.p99, 1)} µs per call`);
  }
}

function haPayloads(): void {
  const c = loadConfig(null, { homeassistant: { url: 'mqtt://127.0.0.1:18830' }, uplink: { url: null } });
  const discovery = JSON.stringify(discoveryPayload(c, '0.1.0'));
  const state = JSON.stringify(statePayload({ mode: 'charge', socPct: 70.1, powerW: 7400, overrides: [], energy: { importedWh: 1234, exportedWh: 0 } }, c, Date.now()));
  console.log(`Home Assistant: discovery payload ${discovery.length} bytes (${Object.keys(JSON.parse(discovery).cmps).length} entities), state ${state.length} bytes`);
}

export async function main(): Promise<void> {
  await statusCommand();
  coreHook();
  haPayloads();
  console.log(`RSS of this process ${rssMiB()} MiB`);
}

runIfMain(import.meta.url, main);
