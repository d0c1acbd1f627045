/**
 * The homeowner settings the page shows and changes (contract §2, docs/configuration.md "Homeowner keys").
 * A change goes through `changeSettings` (src/homeowner/settings.ts), the code behind `wallbox config set`
 * and Home Assistant: the same validation and plain wording, the same atomic replace of the file; a
 * refusal leaves the file as it was and is shown next to its field. Nothing else can be changed here.
 */
import { defaultConfigJson, getKey } from '../config/load.ts';
import { changeSettings, SettingsError } from '../homeowner/settings.ts';
import type { Config } from '../config/types.ts';

export type FieldKind = 'percent' | 'time' | 'boolean' | 'power' | 'hours' | 'choice';

export interface SettingField {
  key: string;
  label: string;
  help: string;
  kind: FieldKind;
  /** `null` is a value the homeowner may choose (no departure, no cap). */
  nullable?: boolean;
  min?: number;
  max?: number;
  step?: number;
  choices?: { value: string; label: string }[];
}

const FIELDS: SettingField[] = [
  { key: 'vehicle.dischargeFloorPct', label: 'Discharge floor', help: 'the grid never takes the car below this charge', kind: 'percent', min: 0, max: 100, step: 1 },
  { key: 'vehicle.backupFloorPct', label: 'Backup floor', help: 'in a power cut the house is served down to this charge (not above the discharge floor)', kind: 'percent', min: 0, max: 100, step: 1 },
  { key: 'vehicle.targetSocPct', label: 'Departure target', help: 'charge wanted when you leave', kind: 'percent', min: 0, max: 100, step: 1 },
  { key: 'vehicle.departureTime', label: 'Departure time', help: 'every day, local time; off = no daily departure', kind: 'time', nullable: true },
  { key: 'vehicle.v2gEnabled', label: 'V2G', help: 'let the aggregator use the car (off cancels a running dispatch)', kind: 'boolean' },
  { key: 'vehicle.maxDischargeW', label: 'Max discharge power', help: 'W; empty = the inverter rating', kind: 'power', nullable: true, min: 0, max: 1_000_000, step: 100 },
  { key: 'vehicle.maxChargeW', label: 'Max charge power', help: 'W; empty = no cap of yours', kind: 'power', nullable: true, min: 0, max: 1_000_000, step: 100 },
  { key: 'vehicle.chargeStrategy', label: 'Departure charging', help: 'when the car is charged for the departure target', kind: 'choice', choices: [
    { value: 'departure', label: 'just in time for departure' }, { value: 'immediate', label: 'at once, to the target' }] },
  // charge.mode (docs/solar.md): the words a homeowner chooses by, the config value beside them
  { key: 'charge.mode', label: 'Charging', help: 'how the car is charged: from the sun, the grid, or both; the departure target always wins', kind: 'choice', choices: [
    { value: 'target', label: 'just in time for my departure (and any sun that would be wasted)' },
    { value: 'pv', label: 'from the sun only (the grid only if the departure target needs it)' },
    { value: 'minpv', label: 'slowly from the grid, faster with the sun' },
    { value: 'now', label: 'now, at full power, to the target' },
    { value: 'off', label: 'off (backup reserve only)' }] },
  { key: 'backup.enabled', label: 'House backup', help: 'island and serve the house from the car in a power cut', kind: 'boolean' },
  { key: 'backup.targetHours', label: 'Backup target', help: 'hours the backup should last; loads are shed to reach it', kind: 'hours', min: 0, max: 168, step: 1 },
];

let fields: SettingField[] | undefined;
/** The fields, in page order; only keys this build's config has. */
export function settingFields(): SettingField[] {
  if (!fields) {
    const defaults = defaultConfigJson();
    fields = FIELDS.filter((f) => getKey(defaults, f.key) !== undefined);
  }
  return fields;
}

export function settingValues(config: Config): Record<string, unknown> {
  return Object.fromEntries(settingFields().map((f) => [f.key, getKey(config, f.key) ?? null]));
}

function labelOf(key: string): string {
  const f = settingFields().find((x) => x.key === key);
  return f ? f.label.toLowerCase() : key;
}

/** A field's refusal in the page's words: other keys named by their field labels. */
export function fieldMessage(message: string): string {
  return message.replace(/\b(vehicle|backup|charge)\.[A-Za-z]+\b/g, (k) => `the ${labelOf(k)}`);
}

export class UnknownSettingError extends Error {
  constructor(readonly keys: string[]) {
    super(`not a setting this page changes: ${keys.join(', ')} (it changes ${settingFields().map((f) => f.key).join(', ')})`);
    this.name = 'UnknownSettingError';
  }
}

export type ApplyResult =
  | { ok: true; config: Config; changed: string[] }
  | { ok: false; fields: Record<string, string>; general: string[] };

/**
 * Apply `changes` (dotted key → JSON value) to the config file at `path` with `changeSettings`
 * (src/homeowner/settings.ts), the code behind `wallbox config set` and Home Assistant's commands: all of
 * them or none, validated together (so raising both floors at once works whatever their order), the file
 * replaced atomically only when the result is valid. A refusal is returned per field, in plain words; a
 * problem at a key the page does not show (the file itself) is `general`. Keys that are not page fields
 * refuse the request before anything is read.
 */
export function applySettings(path: string, changes: Record<string, unknown>): ApplyResult {
  const known = new Set(settingFields().map((f) => f.key));
  const unknown = Object.keys(changes).filter((k) => !known.has(k));
  if (unknown.length) throw new UnknownSettingError(unknown);
  try {
    const r = changeSettings(path, Object.entries(changes).map(([key, value]) => ({ key, value })), { homeownerOnly: true });
    return { ok: true, config: r.config, changed: r.changed };
  } catch (e) {
    if (!(e instanceof SettingsError)) throw e;
    const fields: Record<string, string> = {};
    const general: string[] = [];
    for (const p of e.problems) {
      const msg = fieldMessage(p.message);
      if (known.has(p.key)) fields[p.key] = fields[p.key] ? `${fields[p.key]}; ${msg}` : msg;
      else general.push(p.key.startsWith('(') ? msg : `${p.key} ${msg}`);
    }
    return { ok: false, fields, general };
  }
}
