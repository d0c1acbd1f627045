/**
 * The homeowner settings the page shows and changes (contract §2, docs/configuration.md "Homeowner keys").
 * A change goes through `setLocalKey` (src/config/load.ts), the code behind `wallbox config set`: the same
 * validation, the same atomic replace of the file; a refusal leaves the file as it was and is shown next
 * to its field in the homeowner's words. Nothing else in the config can be changed from the page.
 */
import { readFileSync } from 'node:fs';
import { ConfigError, defaultConfigJson, getKey, SCHEMA_PATH, setLocalKey } from '../config/load.ts';
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
  { key: 'vehicle.chargeStrategy', label: 'Charge mode', help: 'when the car is charged for departure', kind: 'choice', choices: [
    { value: 'departure', label: 'just in time for departure' }, { value: 'immediate', label: 'at once, to the target' }] },
  { key: 'backup.enabled', label: 'House backup', help: 'island and serve the house from the car in a power cut', kind: 'boolean' },
  { key: 'backup.targetHours', label: 'Backup target', help: 'hours the backup should last; loads are shed to reach it', kind: 'hours', min: 0, max: 168, step: 1 },
];

/** A solar charge mode, when the config has one (`charge.mode`, an enum in the schema). */
function solarModeField(): SettingField | undefined {
  if (getKey(defaultConfigJson(), 'charge.mode') === undefined) return undefined;
  let choices: string[] = [];
  try {
    const schema = JSON.parse(readFileSync(SCHEMA_PATH, 'utf8')) as { properties?: { charge?: { properties?: { mode?: { enum?: unknown[] } } } } };
    choices = (schema.properties?.charge?.properties?.mode?.enum ?? []).filter((v): v is string => typeof v === 'string');
  } catch {
    return undefined;
  }
  if (!choices.length) return undefined;
  return { key: 'charge.mode', label: 'Solar mode', help: 'how the car follows the solar surplus', kind: 'choice', choices: choices.map((c) => ({ value: c, label: c })) };
}

let fields: SettingField[] | undefined;
/** The fields, in page order; only keys this build's config has. */
export function settingFields(): SettingField[] {
  if (!fields) {
    const defaults = defaultConfigJson();
    const solar = solarModeField();
    fields = [...FIELDS, ...(solar ? [solar] : [])].filter((f) => getKey(defaults, f.key) !== undefined);
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

/**
 * One validation problem (`key: rule`, as ConfigError gives it) in the homeowner's words: keys become the
 * field names, the schema's wording becomes plain language.
 */
export function plainProblem(problem: string, field: SettingField): string {
  let rule = problem.replace(/^[A-Za-z0-9_.[\]()]+: /, '');
  if (/^must match /.test(rule) && field.kind === 'time') rule = 'must be a time like 07:30 (24-hour clock)';
  else if (/^must be (number|integer)/.test(rule) || /^must be number,null/.test(rule)) rule = field.nullable ? 'must be a number, or empty' : 'must be a number';
  else if (/^must be boolean/.test(rule)) rule = 'must be on or off';
  else if (/^must be string,null/.test(rule)) rule = field.kind === 'time' ? 'must be a time like 07:30, or off' : 'must be text';
  else if (/^must be one of /.test(rule) && field.choices) rule = `must be one of: ${field.choices.map((c) => c.label).join('; ')}`;
  rule = rule
    .replace(/^must be >= (-?[\d.]+)/, 'must be at least $1')
    .replace(/^must be <= (-?[\d.]+)/, 'must be at most $1')
    .replace(/^must be > (-?[\d.]+)/, 'must be more than $1')
    .replace(/^must be < (-?[\d.]+)/, 'must be less than $1');
  // other keys named in a cross-key rule ("must not exceed vehicle.dischargeFloorPct (60 > 50)")
  return rule.replace(/\b(vehicle|backup|charge)\.[A-Za-z]+\b/g, (k) => `the ${labelOf(k)}`);
}

export type FieldResult = { ok: true; value: unknown } | { ok: false; error: string; value: unknown };

export class UnknownSettingError extends Error {
  constructor(readonly keys: string[]) {
    super(`not a setting this page changes: ${keys.join(', ')} (it changes ${settingFields().map((f) => f.key).join(', ')})`);
    this.name = 'UnknownSettingError';
  }
}

/**
 * Apply `changes` (dotted key → JSON value) to the config file at `path`, one key at a time through
 * `setLocalKey`. A key refused because of another key of the same request (a backup floor raised above
 * the old discharge floor together with a higher discharge floor) is tried again after the others, so the
 * order the page sends them in does not matter. Every key is answered: written, or refused with why.
 * Unknown keys refuse the whole request before anything is written.
 */
export function applySettings(path: string, changes: Record<string, unknown>): Record<string, FieldResult> {
  const known = new Map(settingFields().map((f) => [f.key, f]));
  const unknown = Object.keys(changes).filter((k) => !known.has(k));
  if (unknown.length) throw new UnknownSettingError(unknown);
  const results: Record<string, FieldResult> = {};
  let pending = Object.keys(changes);
  for (let pass = 0; pending.length && pass < pending.length + 1; pass++) {
    const left: string[] = [];
    let progress = false;
    for (const key of pending) {
      const field = known.get(key)!;
      const value = changes[key];
      try {
        setLocalKey(path, key, value as Parameters<typeof setLocalKey>[2]);
        results[key] = { ok: true, value };
        progress = true;
      } catch (e) {
        if (!(e instanceof ConfigError)) throw e;
        const mine = e.problems.filter((p) => p.startsWith(`${key}:`) || p.startsWith(`${key} `));
        const shown = (mine.length ? mine : e.problems).map((p) => plainProblem(p, field));
        results[key] = { ok: false, error: shown.join('; '), value };
        left.push(key);
      }
    }
    pending = left;
    if (!progress) break;
  }
  return results;
}
