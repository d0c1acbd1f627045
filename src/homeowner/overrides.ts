/**
 * Quick actions (homeowner overrides): charge now to a target (boost), pause V2G until a time, keep a
 * backup reserve for tonight. The one API the CLI, the local page and Home Assistant call; the aggregator's
 * uplink never reaches it.
 *
 * Where they live: in the local config file, section `overrides` (config/schema.json). That file is already
 * the homeowner's durable settings: written atomically, validated by the same code as every other key,
 * watched by the running daemon (a change is applied at once, no restart), and readable by the CLI and the
 * page while the daemon is down. The database is written only by the daemon, so a quick action set while
 * it is stopped could not go there. An override that has ended is inert (the core compares its end with
 * the calendar clock) and is removed from the file at the next write.
 *
 * Times: an end given as "07:00" is the next 07:00 on the wall clock in the configured zone; the file holds
 * the instant (ISO 8601 UTC), so a restart or a zone change cannot move it.
 */
import { existsSync } from 'node:fs';
import type { Config, OverrideSource, OverridesConfig } from '../config/types.ts';
import { ConfigError, defaultConfigJson, mergeConfig, parseConfigText, readConfigText, validateConfig, writeFileAtomic } from '../config/load.ts';
import { activeOverrides, untilMs } from '../control/overrides.ts';
import { localParts, localToUtcMs, nextLocalTimeMs } from '../control/time.ts';
import { isoUtc } from '../contract.ts';

export type OverrideKind = 'boost' | 'pauseV2g' | 'backupReserve';
export const OVERRIDE_KINDS: readonly OverrideKind[] = ['boost', 'pauseV2g', 'backupReserve'];

/** What a surface asks for. `until` is text as a person types it (see {@link parseUntil}) or an instant in ms. */
export type OverrideRequest =
  | { kind: 'boost'; targetSocPct?: number; until?: string | number }
  | { kind: 'pauseV2g'; until?: string | number }
  | { kind: 'backupReserve'; socPct?: number; until?: string | number };

/** A refused quick action: each problem in the homeowner's words, naming the value given. */
export class OverrideError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join('; '));
    this.name = 'OverrideError';
  }
}

/** One override as every surface shows it. */
export interface OverrideView {
  kind: OverrideKind;
  /** Plain words: "charge now to 90 %", "V2G paused", "backup reserve 80 %". */
  label: string;
  targetSocPct?: number;
  socPct?: number;
  /** The end, ISO 8601 UTC (machines) and local `YYYY-MM-DD HH:MM` in the configured zone (people). */
  until: string;
  untilLocal: string;
  setAt?: string;
  by?: OverrideSource;
}

/** The zone a person reads times in: the config's, else the system's. */
export function zoneOf(config: Pick<Config, 'timezone'>): string {
  return config.timezone ?? Intl.DateTimeFormat().resolvedOptions().timeZone ?? 'UTC';
}

const pad = (n: number) => String(n).padStart(2, '0');

/** `YYYY-MM-DD HH:MM` in `zone`: how every surface shows a time to a person. */
export function localTimeText(ms: number, zone: string): string {
  const p = localParts(ms, zone);
  return `${p.year}-${pad(p.month)}-${pad(p.day)} ${pad(p.hour)}:${pad(p.minute)}`;
}

const WEEKDAYS = ['sunday', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday'];
const UNTIL_FORMS = 'a time like 07:00 (the next one), a day like friday or tomorrow (its start, 00:00), a date like 2026-12-24 or 2026-12-24 07:00, or a duration like 90m, 4h or 2d';
/** Longest an override may last: a quick action is temporary; a lasting change is a setting. */
export const MAX_OVERRIDE_DAYS = 31;

/**
 * When an override given as text ends, as an instant (ms): `07:00` (the next 07:00), `friday`, `tomorrow`
 * (00:00 that day), `2026-12-24` (00:00), `2026-12-24 07:00` / `2026-12-24T07:00` (local), an ISO time with
 * zone, or a duration `90m`, `4h`, `2d`. Local forms are read in `zone`. Throws OverrideError in plain words.
 */
export function parseUntil(text: string, nowMs: number, zone: string): number {
  const t = text.trim().toLowerCase();
  const bad = () => new OverrideError([`"${text}" is not an end time: give ${UNTIL_FORMS}`]);
  let m: RegExpExecArray | null;
  let at: number;
  if ((m = /^(\d{1,2}):(\d{2})$/.exec(t))) {
    const [h, mi] = [Number(m[1]), Number(m[2])];
    if (h > 23 || mi > 59) throw bad();
    at = nextLocalTimeMs(`${pad(h)}:${pad(mi)}`, zone, nowMs);
  } else if ((m = /^(\d+(?:\.\d+)?)\s*(m|min|mins|minutes?|h|hours?|d|days?)$/.exec(t))) {
    const n = Number(m[1]);
    const unitMs = m[2].startsWith('m') ? 60_000 : m[2].startsWith('h') ? 3_600_000 : 86_400_000;
    if (!(n > 0)) throw bad();
    at = nowMs + n * unitMs;
  } else if (t === 'tomorrow' || WEEKDAYS.includes(t) || WEEKDAYS.some((d) => d.slice(0, 3) === t)) {
    const today = localParts(nowMs, zone);
    const weekday = new Date(Date.UTC(today.year, today.month - 1, today.day)).getUTCDay();
    const want = t === 'tomorrow' ? (weekday + 1) % 7 : WEEKDAYS.findIndex((d) => d === t || d.slice(0, 3) === t);
    const days = (want - weekday + 7) % 7 || 7;
    const d = new Date(Date.UTC(today.year, today.month - 1, today.day + days));
    at = localToUtcMs(d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate(), 0, 0, zone);
  } else if ((m = /^(\d{4})-(\d{2})-(\d{2})(?:[ t](\d{1,2}):(\d{2}))?$/.exec(t))) {
    const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
    const [h, mi] = m[4] === undefined ? [0, 0] : [Number(m[4]), Number(m[5])];
    const check = new Date(Date.UTC(y, mo - 1, d));
    if (check.getUTCMonth() !== mo - 1 || check.getUTCDate() !== d || h > 23 || mi > 59) throw bad();
    at = localToUtcMs(y, mo, d, h, mi, zone);
  } else if (/^\d{4}-\d{2}-\d{2}t\d{2}:\d{2}(:\d{2}(\.\d+)?)?(z|[+-]\d{2}:\d{2})$/.test(t)) {
    at = Date.parse(text.trim());
    if (!Number.isFinite(at)) throw bad();
  } else throw bad();
  if (!(at > nowMs)) throw new OverrideError([`"${text}" is ${localTimeText(at, zone)}, which has already passed: give a time in the future`]);
  if (at - nowMs > MAX_OVERRIDE_DAYS * 86_400_000)
    throw new OverrideError([`"${text}" is more than ${MAX_OVERRIDE_DAYS} days away: a quick action is temporary; change the setting itself for longer`]);
  return at;
}

/**
 * The end used when none is given: the next departure (`vehicle.departureTime`), else 12 hours from now.
 * "Charge now" and "reserve for tonight" then last until the morning the homeowner planned.
 */
export function defaultUntilMs(config: Config, nowMs: number): number {
  const dep = config.vehicle.departureTime;
  return dep ? nextLocalTimeMs(dep, zoneOf(config), nowMs) : nowMs + 12 * 3_600_000;
}

function percent(name: string, v: unknown, min: number): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > 100)
    throw new OverrideError([`${name} must be a percentage from ${min} to 100; you gave ${JSON.stringify(v)}`]);
  return v;
}

function resolveUntil(until: string | number | undefined, config: Config, nowMs: number): number {
  if (until === undefined) return defaultUntilMs(config, nowMs);
  if (typeof until === 'number') {
    if (!Number.isFinite(until) || until <= nowMs) throw new OverrideError([`the end must be a time in the future; you gave ${JSON.stringify(until)}`]);
    if (until - nowMs > MAX_OVERRIDE_DAYS * 86_400_000) throw new OverrideError([`the end is more than ${MAX_OVERRIDE_DAYS} days away: a quick action is temporary`]);
    return until;
  }
  return parseUntil(until, nowMs, zoneOf(config));
}

/** The value stored for a request, validated against the config in force (throws OverrideError). */
export function overrideValue(req: OverrideRequest, config: Config, nowMs: number, by: OverrideSource): NonNullable<OverridesConfig[OverrideKind]> {
  const until = isoUtc(resolveUntil(req.until, config, nowMs));
  const setAt = isoUtc(nowMs);
  switch (req.kind) {
    case 'boost': {
      const target = percent('the boost target', req.targetSocPct ?? config.vehicle.targetSocPct, 1);
      return { targetSocPct: target, until, setAt, by };
    }
    case 'pauseV2g':
      return { until, setAt, by };
    case 'backupReserve': {
      const soc = percent('the backup reserve', req.socPct ?? config.vehicle.targetSocPct, 1);
      return { socPct: soc, until, setAt, by };
    }
    default:
      throw new OverrideError([`unknown quick action ${JSON.stringify((req as { kind: unknown }).kind)}: one of ${OVERRIDE_KINDS.join(', ')}`]);
  }
}

type Json = Parameters<typeof mergeConfig>[0];

function readLocal(path: string): Record<string, Json> {
  if (!existsSync(path)) return {};
  const local = parseConfigText(readConfigText(path), path);
  if (typeof local !== 'object' || local === null || Array.isArray(local)) throw new ConfigError(['(root): must be a JSON object'], path);
  return local as Record<string, Json>;
}

/**
 * Write the overrides section: `kind` set to `value` (null clears it), ended overrides dropped, the merged
 * file validated like any config change and replaced atomically; returns the new merged config. On any
 * problem nothing is written (ConfigError / OverrideError).
 */
function writeOverride(path: string, kind: OverrideKind, value: Json, nowMs: number): Config {
  const local = readLocal(path);
  const before = (local.overrides && typeof local.overrides === 'object' && !Array.isArray(local.overrides) ? local.overrides : {}) as Record<string, Json>;
  const next: Record<string, Json> = {};
  for (const k of OVERRIDE_KINDS) {
    const o = before[k] as { until?: unknown } | null | undefined;
    const end = o ? untilMs(o.until) : undefined;
    next[k] = o && end !== undefined && end > nowMs ? (o as Json) : null;
  }
  next[kind] = value;
  local.overrides = next;
  const merged = validateConfig(mergeConfig(defaultConfigJson(), local), `${path} (after the quick action)`);
  writeFileAtomic(path, JSON.stringify(local, null, 2) + '\n');
  return merged;
}

/**
 * Set a quick action: validated (plain-language OverrideError naming the value given), then written to the
 * local config file atomically. `nowMs` is the calendar time (Clock.wallMs / Date.now). Returns the stored
 * override as shown to people, and the new merged config.
 */
export function setOverride(path: string, req: OverrideRequest, opts: { nowMs: number; by: OverrideSource; config: Config }): { view: OverrideView; config: Config } {
  const value = overrideValue(req, opts.config, opts.nowMs, opts.by);
  const config = writeOverride(path, req.kind, value as Json, opts.nowMs);
  const view = listOverrides(config, opts.nowMs).find((v) => v.kind === req.kind);
  if (!view) throw new OverrideError(['the quick action was written but is not in force (its end has passed)']);
  return { view, config };
}

/** End a quick action now (nothing to end is not an error). Returns the new merged config. */
export function clearOverride(path: string, kind: OverrideKind, opts: { nowMs: number }): Config {
  if (!OVERRIDE_KINDS.includes(kind)) throw new OverrideError([`unknown quick action ${JSON.stringify(kind)}: one of ${OVERRIDE_KINDS.join(', ')}`]);
  return writeOverride(path, kind, null, opts.nowMs);
}

/** The overrides in force at calendar time `nowMs`, in the order boost, pauseV2g, backupReserve. */
export function listOverrides(config: Pick<Config, 'overrides' | 'timezone'>, nowMs: number): OverrideView[] {
  const a = activeOverrides(config.overrides, nowMs);
  const zone = zoneOf(config);
  const o = config.overrides ?? {};
  const out: OverrideView[] = [];
  const common = (kind: OverrideKind, untilAt: number) => ({
    kind, until: isoUtc(untilAt), untilLocal: localTimeText(untilAt, zone), setAt: o[kind]?.setAt, by: o[kind]?.by,
  });
  if (a.boost) out.push({ ...common('boost', a.boost.untilMs), label: `charge now to ${a.boost.targetSocPct} %`, targetSocPct: a.boost.targetSocPct });
  if (a.pauseV2g) out.push({ ...common('pauseV2g', a.pauseV2g.untilMs), label: 'V2G paused' });
  if (a.backupReserve) out.push({ ...common('backupReserve', a.backupReserve.untilMs), label: `backup reserve ${a.backupReserve.socPct} %`, socPct: a.backupReserve.socPct });
  return out;
}

/** One line per override in force, for people: "charge now to 90 % until 2026-12-02 07:00". */
export function describeOverrides(views: OverrideView[]): string {
  return views.length ? views.map((v) => `${v.label} until ${v.untilLocal}`).join('; ') : 'none';
}
