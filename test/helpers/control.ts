/** Builders for control-core tests: a healthy on-grid snapshot and settings from the shipped defaults. */
import { loadConfig } from '../../src/config/load.ts';
import type { ControlSettings } from '../../src/config/types.ts';
import { controlSettings } from '../../src/runtime/settings.ts';
import type { DispatchCommand, Memory, Plan, Snapshot } from '../../src/control/types.ts';
import { decide, initialMemory } from '../../src/control/decide.ts';

export const T0 = Date.parse('2026-11-23T17:00:00Z');

type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? DeepPartial<T[K]> : T[K] };

export function settings(over: DeepPartial<ControlSettings> = {}): ControlSettings {
  const base = controlSettings(loadConfig(null, { timezone: 'UTC' }));
  return {
    ...base,
    ...over,
    vehicle: { ...base.vehicle, ...(over.vehicle ?? {}) },
    backup: { ...base.backup, ...(over.backup ?? {}) },
    site: { ...base.site, ...(over.site ?? {}) },
    control: { ...base.control, ...(over.control ?? {}) },
  } as ControlSettings;
}

export function snapshot(nowMs: number, over: DeepPartial<Snapshot> = {}): Snapshot {
  const base: Snapshot = {
    vehicle: {
      connected: true, socPct: 85, socAtMs: nowMs, socSource: 'vehicle', capacityWh: 60000, maxChargeW: 11000, maxDischargeW: 11000,
      bidirectional: true, atMs: nowMs,
    },
    inverter: { atMs: nowMs, powerW: 0, ratedW: 11000, maxChargeW: 11000, maxDischargeW: 11000, efficiency: 0.95, gridForming: false, connected: true, alarms: [], islandCapable: true },
    grid: { sensePresent: true },
    contactor: { installed: true, feedbackClosed: true, commandedClosed: true },
    estopPressed: false,
    houseLoadW: 500,
    loadTierCount: 2,
    commands: [],
    energy: { exportedWh: 0, importedWh: 0, carSideWh: 0 },
  };
  return {
    ...base,
    ...over,
    vehicle: { ...base.vehicle, ...(over.vehicle ?? {}) },
    inverter: { ...base.inverter, ...(over.inverter ?? {}) },
    grid: { ...base.grid, ...(over.grid ?? {}) },
    contactor: { ...base.contactor, ...(over.contactor ?? {}) },
    energy: { ...base.energy, ...(over.energy ?? {}) },
    commands: (over.commands as DispatchCommand[] | undefined) ?? [],
  } as Snapshot;
}

export function dispatchCmd(id: string, powerW: number, durationS: number, receivedMs: number, extra: { startMs?: number; expiresAtMs?: number; source?: string } = {}): DispatchCommand {
  const request = { id, powerW, durationS, startMs: extra.startMs, expiresAtMs: extra.expiresAtMs };
  return { kind: 'dispatch', request, body: JSON.stringify(request), receivedMs, source: extra.source ?? 'device' };
}

export function cancelCmd(id: string, receivedMs: number): DispatchCommand {
  return { kind: 'cancel', id, receivedMs, source: 'device' };
}

/** Run decide() over (offsetS, snapshot overrides) steps from T0, carrying the memory; returns every plan. */
export function runDecide(c: ControlSettings, steps: [number, Parameters<typeof snapshot>[1]][], mem: Memory = initialMemory(T0)): Plan[] {
  const plans: Plan[] = [];
  for (const [atS, over] of steps) {
    const now = T0 + atS * 1000;
    const p = decide(snapshot(now, over), c, mem, now);
    mem = p.memory;
    plans.push(p);
  }
  return plans;
}
