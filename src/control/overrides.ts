/**
 * Homeowner overrides (quick actions) as the core sees them. Pure: which overrides are in force at a
 * calendar instant, and what each does to the homeowner's limits. They only ever tighten what the grid may
 * take (a higher floor, V2G off) or add a reason to charge, so every invariant of decide() still holds:
 * the floor is never lowered, the departure floor still wins over the aggregator, the backup floor and
 * islanding are untouched.
 *
 * The end of an override is a calendar time ("until 07:00" ends when the wall clock says 07:00), so it is
 * compared with `calendarMs(snapshot, nowMs)`, never with the monotonic `nowMs`.
 */
import type { ControlSettings, OverridesConfig } from '../config/types.ts';
import { calendarMs, localParts } from './time.ts';
import type { Floors } from './types.ts';

export interface ActiveOverrides {
  boost?: { targetSocPct: number; untilMs: number };
  pauseV2g?: { untilMs: number };
  backupReserve?: { socPct: number; untilMs: number };
}

/** Parse an override's `until`; undefined when it is not a finite instant (then the override is not in force). */
export function untilMs(until: unknown): number | undefined {
  if (typeof until !== 'string') return undefined;
  const ms = Date.parse(until);
  return Number.isFinite(ms) ? ms : undefined;
}

const pct = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) && v >= 0 && v <= 100 ? v : undefined);

/** The overrides in force at `calendarNowMs`: set, well-formed, and not yet ended (the end is exclusive). */
export function activeOverrides(o: OverridesConfig | undefined | null, calendarNowMs: number): ActiveOverrides {
  const out: ActiveOverrides = {};
  if (!o || typeof o !== 'object' || !Number.isFinite(calendarNowMs)) return out;
  const live = (u: unknown) => {
    const ms = untilMs(u);
    return ms !== undefined && calendarNowMs < ms ? ms : undefined;
  };
  if (o.boost) {
    const end = live(o.boost.until);
    const target = pct(o.boost.targetSocPct);
    if (end !== undefined && target !== undefined) out.boost = { targetSocPct: target, untilMs: end };
  }
  if (o.pauseV2g) {
    const end = live(o.pauseV2g.until);
    if (end !== undefined) out.pauseV2g = { untilMs: end };
  }
  if (o.backupReserve) {
    const end = live(o.backupReserve.until);
    const soc = pct(o.backupReserve.socPct);
    if (end !== undefined && soc !== undefined) out.backupReserve = { socPct: soc, untilMs: end };
  }
  return out;
}

/** The homeowner's settings with the overrides in force: a V2G pause is `v2gEnabled: false`. */
export function withOverrides(c: ControlSettings, a: ActiveOverrides): ControlSettings {
  if (!a.pauseV2g || !c.vehicle.v2gEnabled) return c;
  return { ...c, vehicle: { ...c.vehicle, v2gEnabled: false } };
}

/** The floor the overrides in force set for discharge to the grid, %, or undefined. */
export function overrideFloorPct(a: ActiveOverrides): number | undefined {
  const list = [a.boost?.targetSocPct, a.backupReserve?.socPct].filter((v): v is number => v !== undefined);
  return list.length ? Math.max(...list) : undefined;
}

/** The floors with the override floor folded into the effective one (never lower than before). */
export function floorsWithOverrides(f: Floors, a: ActiveOverrides): Floors {
  const o = overrideFloorPct(a);
  if (o === undefined) return f;
  return { ...f, overrideFloorPct: o, effectiveFloorPct: Math.min(100, Math.max(f.effectiveFloorPct, o)) };
}

/**
 * Whether an override wants the car charged now, and why (the plan's reason): a boost below its target,
 * a backup reserve below its level. A SoC that is not known charges under a boost (the homeowner asked;
 * the car's own BMS ends it) but not for a reserve. Undefined = no override asks for charge.
 */
export function overrideChargeReason(a: ActiveOverrides, socPct: number | undefined, connected: boolean): 'boost' | 'backup_reserve' | undefined {
  if (!connected) return undefined;
  if (a.boost && (socPct === undefined || socPct < a.boost.targetSocPct)) return 'boost';
  if (a.backupReserve && socPct !== undefined && socPct < a.backupReserve.socPct) return 'backup_reserve';
  return undefined;
}

/**
 * decide()'s hook: the overrides in force at the snapshot's calendar time, and the homeowner's settings
 * with them applied (a V2G pause is `v2gEnabled: false`, with every consequence that has).
 */
export function overridesInForce(c: ControlSettings, s: { wallMs?: number }, nowMs: number): { active: ActiveOverrides; settings: ControlSettings } {
  const active = activeOverrides(c.overrides, calendarMs(s, nowMs));
  return { active, settings: withOverrides(c, active) };
}

/** The overrides in force as a key (kind, level, end), to say a change once. Undefined = none. */
export function overridesKey(a: ActiveOverrides): string | undefined {
  return a.boost || a.pauseV2g || a.backupReserve ? JSON.stringify(a) : undefined;
}

const pad2 = (n: number) => String(n).padStart(2, '0');

function describe(kind: keyof ActiveOverrides, a: ActiveOverrides): string {
  if (kind === 'boost') return `charge now to ${a.boost!.targetSocPct} %`;
  if (kind === 'pauseV2g') return 'V2G paused';
  return `backup reserve ${a.backupReserve!.socPct} %`;
}

/**
 * Events for quick actions that came into force, changed or ended since the last decision (`prevKey` is
 * the memory's `overridesKey`): one each, with its end in local time (`timeZone`), for the event log.
 */
export function overrideEvents(prevKey: string | undefined, a: ActiveOverrides, calendarNowMs: number, timeZone: string): { kind: string; severity: 'info'; message: string }[] {
  let prev: ActiveOverrides = {};
  try {
    if (prevKey) prev = JSON.parse(prevKey) as ActiveOverrides;
  } catch {
    prev = {};
  }
  const local = (ms: number) => {
    const p = localParts(ms, timeZone);
    return `${p.year}-${pad2(p.month)}-${pad2(p.day)} ${pad2(p.hour)}:${pad2(p.minute)}`;
  };
  const out: { kind: string; severity: 'info'; message: string }[] = [];
  for (const kind of ['boost', 'pauseV2g', 'backupReserve'] as const) {
    const now = a[kind];
    const before = prev[kind];
    if (now && JSON.stringify(now) !== JSON.stringify(before))
      out.push({ kind: 'override', severity: 'info', message: `quick action: ${describe(kind, a)} until ${local(now.untilMs)} (${timeZone})` });
    else if (!now && before)
      out.push({ kind: 'override', severity: 'info', message: `quick action ended: ${describe(kind, prev)}${calendarNowMs >= before.untilMs ? ' (its time is up)' : ' (ended early)'}` });
  }
  return out;
}
