/**
 * Commands from Home Assistant, through the same code as `wallbox config set` and the quick actions:
 * homeowner settings only (src/homeowner/settings.ts HOMEOWNER_KEYS), validated, written atomically, and
 * refused in plain words with the file unchanged. Only the Home Assistant connection calls this; the
 * aggregator's uplink has no path to it.
 */
import type { Config } from '../config/types.ts';
import { ConfigError } from '../config/load.ts';
import { clearOverride, OverrideError, setOverride } from '../homeowner/overrides.ts';
import { changeSettings, SettingsError } from '../homeowner/settings.ts';
import { plainProblem, shortJson } from '../homeowner/wording.ts';
import { V2G_PAUSE_OPTIONS } from './discovery.ts';

export type CommandResult =
  | { ok: true; what: string; changed: boolean; pauseLabel?: string }
  | { ok: false; what: string; problems: string[] };

/** Number entities and the setting each one changes. */
const NUMBERS: Record<string, string> = {
  discharge_floor: 'vehicle.dischargeFloorPct',
  backup_floor: 'vehicle.backupFloorPct',
  target_soc: 'vehicle.targetSocPct',
  backup_hours_target: 'backup.targetHours',
};

/** Entities that take a command (the last part of the command topic). */
export const COMMAND_ENTITIES = [...Object.keys(NUMBERS), 'v2g', 'departure_time', 'charge_mode', 'v2g_pause', 'charge_now', 'charge_now_stop', 'reserve_tonight', 'reserve_stop'];

export interface CommandContext {
  /** The local config file. */
  path: string;
  /** The config in force (defaults for quick actions). */
  config: Config;
  /** The calendar clock, ms. */
  wallMs: number;
}

function setting(ctx: CommandContext, key: string, value: unknown): CommandResult {
  try {
    const r = changeSettings(ctx.path, [{ key, value }], { homeownerOnly: true });
    return { ok: true, what: key, changed: r.changed.length > 0 };
  } catch (e) {
    if (e instanceof SettingsError) return { ok: false, what: key, problems: e.problems.map((p) => `${p.key} ${p.message}`) };
    throw e;
  }
}

function quick(what: string, fn: () => unknown, extra: { pauseLabel?: string } = {}): CommandResult {
  try {
    fn();
    return { ok: true, what, changed: true, ...extra };
  } catch (e) {
    if (e instanceof OverrideError) return { ok: false, what, problems: e.problems };
    if (e instanceof ConfigError) return { ok: false, what, problems: e.problems.map((p) => { const q = plainProblem(p); return `${q.key} ${q.message}`; }) };
    throw e;
  }
}

/** Carry out one command; never throws for bad input (the result says why it was refused). */
export function handleCommand(entity: string, payloadText: string, ctx: CommandContext): CommandResult {
  const payload = payloadText.trim();
  if (entity in NUMBERS) {
    const key = NUMBERS[entity];
    const n = Number(payload);
    if (payload === '' || !Number.isFinite(n)) return { ok: false, what: key, problems: [`${key} must be a number; you gave ${shortJson(payloadText)}`] };
    return setting(ctx, key, n);
  }
  switch (entity) {
    case 'v2g':
      if (payload !== 'ON' && payload !== 'OFF') return { ok: false, what: 'vehicle.v2gEnabled', problems: [`vehicle.v2gEnabled takes ON or OFF; you gave ${shortJson(payloadText)}`] };
      return setting(ctx, 'vehicle.v2gEnabled', payload === 'ON');
    case 'departure_time':
      // empty: no fixed departure (the car's own, if it sends one); "7:30" is written as "07:30"
      return setting(ctx, 'vehicle.departureTime', payload === '' ? null : payload);
    case 'charge_mode':
      if (!ctx.config.charge) return { ok: false, what: 'charge.mode', problems: ['charge.mode is not a setting of this device'] };
      return setting(ctx, 'charge.mode', payload);
    case 'charge_now':
      return quick('boost', () => setOverride(ctx.path, { kind: 'boost' }, { nowMs: ctx.wallMs, by: 'homeassistant', config: ctx.config }));
    case 'charge_now_stop':
      return quick('boost', () => clearOverride(ctx.path, 'boost', { nowMs: ctx.wallMs }));
    case 'reserve_tonight':
      return quick('backupReserve', () => setOverride(ctx.path, { kind: 'backupReserve' }, { nowMs: ctx.wallMs, by: 'homeassistant', config: ctx.config }));
    case 'reserve_stop':
      return quick('backupReserve', () => clearOverride(ctx.path, 'backupReserve', { nowMs: ctx.wallMs }));
    case 'v2g_pause': {
      if (!Object.hasOwn(V2G_PAUSE_OPTIONS, payload)) return { ok: false, what: 'pauseV2g', problems: [`Pause V2G takes one of ${Object.keys(V2G_PAUSE_OPTIONS).join(', ')}; you gave ${shortJson(payloadText)}`] };
      if (payload === 'other') return { ok: true, what: 'pauseV2g', changed: false };
      const until = V2G_PAUSE_OPTIONS[payload];
      if (until === null) return quick('pauseV2g', () => clearOverride(ctx.path, 'pauseV2g', { nowMs: ctx.wallMs }));
      return quick('pauseV2g', () => setOverride(ctx.path, { kind: 'pauseV2g', until }, { nowMs: ctx.wallMs, by: 'homeassistant', config: ctx.config }), { pauseLabel: payload });
    }
    default:
      return { ok: false, what: entity, problems: [`${entity} is not something Home Assistant can change here`] };
  }
}
