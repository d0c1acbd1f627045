/**
 * Solar surplus and plot figures: decide() per call with surplus charging following a moving PV figure
 * (charge.mode pv) against the default mode, the same with a clear-sky PV forecast for flex (site.pvForecast:
 * up to 96 quarter hours of sun position a call), and the plot of each 24 h scenario (render time, SVG size).
 */
import { decide, initialMemory } from '../src/control/decide.ts';
import type { Memory, Snapshot } from '../src/control/types.ts';
import { loadConfig } from '../src/config/load.ts';
import { controlSettings } from '../src/runtime/settings.ts';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../src/config/load.ts';
import { loadScenarioFile, runScenario } from '../src/simulate.ts';
import { plotContext, plotSvg } from '../src/plot.ts';
import { fmt, rssMiB, runIfMain, summarize } from './stats.ts';

function decideCost(mode: 'pv' | 'target', forecast = false): ReturnType<typeof summarize> & { lastSetpointW: number } {
  const site = forecast ? { pvForecast: { peakW: 6000, latitudeDeg: 52.5, longitudeDeg: 13.4 } } : {};
  const c = controlSettings(loadConfig(null, { timezone: 'Europe/Berlin', charge: { mode }, site, vehicle: { v2gEnabled: forecast } }));
  const t0 = Date.parse('2026-06-15T10:00:00Z');
  let mem: Memory = initialMemory(t0);
  let carW = 0;
  const snap = (now: number, pvW: number): Snapshot => ({
    vehicle: { connected: true, socPct: 50, socAtMs: now, socSource: 'vehicle', capacityWh: 60000, maxChargeW: 11000, maxDischargeW: 11000, bidirectional: true, atMs: now },
    inverter: { atMs: now, powerW: carW, maxChargeW: 11000, maxDischargeW: 11000, efficiency: 0.95, gridForming: false, connected: true, islandCapable: true },
    grid: { sensePresent: true },
    contactor: { installed: true, feedbackClosed: true, commandedClosed: true },
    estopPressed: false, houseLoadW: 600, houseLoadAtMs: now, gridPowerW: 600 + carW - pvW, gridPowerAtMs: now, pvPowerW: pvW, pvPowerAtMs: now,
    loadTierCount: 2, commands: [], energy: { exportedWh: 0, importedWh: 0, carSideWh: 0 },
  });
  const samples: number[] = [];
  for (let i = 0; i < 20_000; i++) {
    const now = t0 + i * 1000;
    const s = snap(now, 4000 + 1500 * Math.sin(i / 300));
    const a = performance.now();
    const p = decide(s, c, mem, now);
    samples.push((performance.now() - a) * 1000);
    mem = p.memory;
    carW = p.setpointW;
  }
  return { ...summarize(samples.slice(2000)), lastSetpointW: carW };
}

export async function main(): Promise<void> {
  for (const mode of ['target', 'pv'] as const) {
    const s = decideCost(mode);
    console.log(`decide() charge.mode ${mode.padEnd(6)}  median ${fmt(s.median, 1)} µs  p99 ${fmt(s.p99, 1)} µs  (${s.n} calls, last setpoint ${s.lastSetpointW} W)`);
  }
  // V2G on so that flex is computed (and with it the forecast, up to the next 07:30 departure)
  const f = decideCost('pv', true);
  console.log(`decide() charge.mode pv + PV forecast  median ${fmt(f.median, 1)} µs  p99 ${fmt(f.p99, 1)} µs  (${f.n} calls)`);
  for (const file of ['daily-cycle.json', 'outage-24h.json', 'outage-heavy-house.json']) {
    const sc = loadScenarioFile(join(PROJECT_ROOT, 'config/scenarios', file));
    const r = await runScenario(sc, { name: file });
    const ms: number[] = [];
    let bytes = 0;
    for (let i = 0; i < 5; i++) {
      const a = performance.now();
      const svg = await plotSvg(r.samples, sc.description ?? file, plotContext(r));
      ms.push(performance.now() - a);
      bytes = Buffer.byteLength(svg);
    }
    const s = summarize(ms);
    console.log(`plot ${file.padEnd(24)} ${(bytes / 1024).toFixed(0)} KB  render median ${fmt(s.median, 0)} ms  p99 ${fmt(s.p99, 0)} ms  (${r.samples.length} samples)`);
  }
  console.log(`RSS ${rssMiB()} MiB`);
}

runIfMain(import.meta.url, main);
