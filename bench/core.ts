/**
 * Control-core benchmarks: decide() cost per call (target: median under 20 µs), and a simulated 24 h
 * day at 1 s ticks through the runtime with the simulators (target: under 2 s wall on this machine).
 */
import { decide, initialMemory } from '../src/control/decide.ts';
import type { Memory, Snapshot } from '../src/control/types.ts';
import { loadConfig } from '../src/config/load.ts';
import { controlSettings } from '../src/runtime.ts';
import { parseScenario, runScenario } from '../src/simulate.ts';
import { fmt, rssMiB, summarize } from './stats.ts';

export async function main(): Promise<void> {
  const c = controlSettings(loadConfig(null, { timezone: 'Europe/Paris' }));
  const t0 = Date.parse('2026-11-23T17:00:00Z');
  let mem: Memory = initialMemory(t0);
  const snap = (now: number, soc: number): Snapshot => ({
    vehicle: { connected: true, socPct: soc, socAtMs: now, socSource: 'vehicle', capacityWh: 60000, maxChargeW: 11000, maxDischargeW: 11000, bidirectional: true, atMs: now },
    inverter: { atMs: now, powerW: -7000, maxChargeW: 11000, maxDischargeW: 11000, efficiency: 0.95, gridForming: false, connected: true, gridAlarm: false, islandCapable: true },
    grid: { sensePresent: true },
    contactor: { installed: true, feedbackClosed: true, commandedClosed: true },
    estopPressed: false, houseLoadW: 600, loadTierCount: 2, commands: [],
    energy: { exportedWh: 1.9, importedWh: 0, carSideWh: -2 },
  });
  // a day's worth of dispatch history in memory, and one running now
  for (let i = 0; i < 40; i++) {
    const now = t0 + i * 1000;
    const req = { id: `hist-${i}`, powerW: -3000, durationS: 1 };
    mem = decide({ ...snap(now, 90), commands: [{ kind: 'dispatch', request: req, body: JSON.stringify(req), receivedMs: now, source: 'device' }] }, c, mem, now).memory;
  }
  const req = { id: 'live', powerW: -7000, durationS: 86400 };
  let now = t0 + 60_000;
  mem = decide({ ...snap(now, 90), commands: [{ kind: 'dispatch', request: req, body: JSON.stringify(req), receivedMs: now, source: 'device' }] }, c, mem, now).memory;

  const warm = 20_000;
  const n = 200_000;
  const samples: number[] = [];
  let soc = 90;
  for (let i = 0; i < warm + n; i++) {
    now += 1000;
    soc -= 0.003;
    const s = snap(now, soc);
    const a = process.hrtime.bigint();
    const p = decide(s, c, mem, now);
    const b = process.hrtime.bigint();
    mem = p.memory;
    if (i >= warm) samples.push(Number(b - a) / 1000);
  }
  const d = summarize(samples);
  console.log(`decide(): ${d.n} calls, median ${fmt(d.median)} µs, p99 ${fmt(d.p99)} µs, max ${fmt(d.max)} µs (target median < 20 µs)`);

  const day = parseScenario({
    start: '2026-11-23T17:00:00+01:00', timezone: 'Europe/Paris',
    vehicle: { capacityWh: 60000, socPct: 90, maxChargeW: 11000, maxDischargeW: 11000 }, inverter: { ratedW: 11000, efficiency: 0.95 },
    config: { vehicle: { dischargeFloorPct: 50, targetSocPct: 80, departureTime: '07:30' } },
    houseLoadW: [[0, 600], [3600, 1500], [14400, 400], [50400, 800]], sheddableLoadsW: [800, 400], durationS: 86400,
    events: [
      { at: 3600, dispatch: { id: 'peak', powerW: -7000, durationS: 3600 } },
      { at: 30000, gridDown: true }, { at: 37200, gridUp: true },
    ],
  });
  const runs: number[] = [];
  let ticks = 0;
  for (let i = 0; i < 3; i++) {
    const a = performance.now();
    const r = await runScenario(day);
    runs.push(performance.now() - a);
    ticks = r.summary.ticks;
  }
  const w = summarize(runs);
  console.log(`simulated 24 h day at 1 s ticks through the runtime (${ticks} ticks, dispatch + 2 h outage): median ${fmt(w.median / 1000, 3)} s wall, best ${fmt(Math.min(...runs) / 1000, 3)} s (target < 2 s); RSS ${rssMiB()} MiB`);
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
