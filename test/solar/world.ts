/**
 * A small site for surplus tests: PV and house series, a car that follows the previous tick's setpoint
 * (one tick of lag, as an inverter does), and a grid meter that reads house + car − PV. Its arithmetic is
 * the test's own, independent of src/control/surplus.ts.
 */
import type { ControlSettings, ChargeConfig } from '../../src/config/types.ts';
import { decide, initialMemory } from '../../src/control/decide.ts';
import type { Plan } from '../../src/control/types.ts';
import { settings, snapshot, T0 } from '../helpers/control.ts';

export const CHARGE: ChargeConfig = {
  mode: 'pv', minPowerW: 1380, startSurplusW: null, stopImportW: 0, enableDelayS: 60, disableDelayS: 180, guardS: 300, residualPowerW: 100, surplusMaxSocPct: 100,
};

export function chargeSettings(charge: Partial<ChargeConfig>, over: Parameters<typeof settings>[0] = {}): ControlSettings {
  const base = settings({ ...over, vehicle: { departureTime: null, ...(over.vehicle ?? {}) } });
  return { ...base, charge: { ...CHARGE, ...charge } };
}

export interface Tick {
  t: number;
  plan: Plan;
  /** What the car took this tick (the previous setpoint), W. */
  carW: number;
  pvW: number;
  houseW: number;
  socPct: number;
}

export function runSite(
  c: ControlSettings,
  o: { durationS: number; tickS?: number; socPct?: number; capacityWh?: number; pvW: (t: number) => number; houseW?: (t: number) => number; maxSocPct?: number },
): Tick[] {
  const tickS = o.tickS ?? 1;
  const cap = o.capacityWh ?? 60000;
  let soc = o.socPct ?? 50;
  let mem = initialMemory(T0);
  let carW = 0;
  const out: Tick[] = [];
  for (let t = 0; t <= o.durationS; t += tickS) {
    const now = T0 + t * 1000;
    const pvW = o.pvW(t);
    const houseW = o.houseW ? o.houseW(t) : 500;
    const gridW = houseW + carW - pvW;
    const plan = decide(
      snapshot(now, {
        vehicle: { socPct: soc, socAtMs: now, atMs: now, maxSocPct: o.maxSocPct },
        inverter: { powerW: carW, atMs: now },
        houseLoadW: houseW, houseLoadAtMs: now, gridPowerW: gridW, gridPowerAtMs: now, pvPowerW: pvW, pvPowerAtMs: now,
      }),
      c, mem, now,
    );
    mem = plan.memory;
    out.push({ t, plan, carW, pvW, houseW, socPct: soc });
    soc = Math.min(100, soc + ((carW * 0.95 * tickS) / 3600 / cap) * 100);
    carW = plan.setpointW;
  }
  return out;
}

/** Times (s) at which the setpoint went from 0 to > 0 (starts) and from > 0 to 0 (stops). */
export function switches(ticks: Tick[]): { on: number[]; off: number[] } {
  const on: number[] = [];
  const off: number[] = [];
  for (let i = 1; i < ticks.length; i++) {
    const was = ticks[i - 1].plan.setpointW > 0;
    const is = ticks[i].plan.setpointW > 0;
    if (!was && is) on.push(ticks[i].t);
    if (was && !is) off.push(ticks[i].t);
  }
  if (ticks[0]?.plan.setpointW > 0) on.unshift(ticks[0].t);
  return { on, off };
}
