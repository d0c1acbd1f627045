/**
 * Changing settings in the local config file: the one path shared by `wallbox config set`, the local page
 * and Home Assistant. A change is merged into the file (an object value merges into its section, never
 * replaces it), the whole result validated, and the file replaced atomically only when it is valid; a
 * refusal names each key, its rule in plain words and the value given, and leaves the file as it was.
 */
import { existsSync } from 'node:fs';
import {
  ConfigError, defaultConfigJson, getKey, keyProblems, mergeConfig, parseConfigText, readConfigText, validateConfig, writeFileAtomic,
} from '../config/load.ts';
import type { Config } from '../config/types.ts';
import { TIME_OF_DAY_KEYS, normaliseTimeOfDay, plainProblem, type SettingProblem } from './wording.ts';

type Json = Parameters<typeof mergeConfig>[0];
type JsonObject = { [k: string]: Json };

/**
 * The settings a homeowner changes from the local surfaces (page, Home Assistant): contract §2 and
 * docs/homeowner.md. `charge.mode` is included when the config has it. The CLI (run with the rights to
 * edit the file) may change any key.
 */
export const HOMEOWNER_KEYS: readonly string[] = [
  'vehicle.dischargeFloorPct', 'vehicle.backupFloorPct', 'vehicle.targetSocPct', 'vehicle.departureTime', 'vehicle.v2gEnabled',
  'vehicle.maxDischargeW', 'vehicle.maxChargeW', 'vehicle.chargeStrategy', 'vehicle.departureSource', 'vehicle.departureMarginS',
  'vehicle.capacityWh', 'backup.enabled', 'backup.targetHours', 'charge.mode',
];

/** A refused change: every problem for a person, and the file that was left unchanged. */
export class SettingsError extends Error {
  readonly fileChanged = false;
  constructor(readonly problems: SettingProblem[], readonly path: string) {
    super(`${problems.map((p) => `${p.key}: ${p.message}`).join('\n')}\nThe file ${path} was not changed.`);
    this.name = 'SettingsError';
  }
}

export interface SettingChange {
  key: string;
  value: unknown;
}

export interface ChangeOptions {
  /** Replace an object value whole instead of merging it into the section (default: merge). */
  replace?: boolean;
  /** Refuse keys outside {@link HOMEOWNER_KEYS} (the page and Home Assistant). */
  homeownerOnly?: boolean;
}

const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Sections whose keys the schema does not list one by one (driver-specific, free-form). */
const OPEN_SECTIONS = /^(simulation|inverter|vehicleLink|gpio|uplink|storage|reward|charge)\./;

function readLocal(path: string): JsonObject {
  if (!existsSync(path)) return {};
  let local: Json;
  try {
    local = parseConfigText(readConfigText(path), path);
  } catch (e) {
    if (e instanceof ConfigError) throw new SettingsError(e.problems.map((p) => ({ key: '(file)', message: `the file itself cannot be used: ${p}; fix or remove it first` })), path);
    throw e;
  }
  if (!isObject(local)) throw new SettingsError([{ key: '(file)', message: 'the file must hold one JSON object, {…}' }], path);
  return local;
}

function setAt(obj: JsonObject, key: string, value: Json, replace: boolean): void {
  const parts = key.split('.');
  let cur = obj;
  for (const part of parts.slice(0, -1)) {
    if (!isObject(cur[part])) cur[part] = {};
    cur = cur[part] as JsonObject;
  }
  const last = parts[parts.length - 1];
  // an object merges into what the file has there: `vehicle {"dischargeFloorPct":60}` keeps departureTime
  cur[last] = !replace && isObject(value) && isObject(cur[last]) ? mergeConfig(cur[last], value) : value;
}

/** Problems with the changes themselves (key form, unknown or not a homeowner's key), before any reading. */
function changeProblems(changes: SettingChange[], opts: ChangeOptions): SettingProblem[] {
  const out: SettingProblem[] = [];
  const defaults = defaultConfigJson();
  for (const { key, value } of changes) {
    const kp = keyProblems(key);
    if (kp.length) {
      out.push({ key, message: kp[0].slice(kp[0].indexOf(': ') + 2) });
      continue;
    }
    if (opts.homeownerOnly && !HOMEOWNER_KEYS.includes(key)) out.push({ key, message: 'is not a setting that can be changed here' });
    else if (getKey(defaults, key) === undefined && !OPEN_SECTIONS.test(key)) out.push({ key, message: 'is not a setting (check the spelling; `wallbox config get` shows them all)' });
    else if (value === undefined) out.push({ key, message: 'needs a value' });
  }
  return out;
}

/**
 * Apply changes to the local config file at `path`: all or nothing. Returns the merged config now in the
 * file and the dotted keys whose value really changed. Throws SettingsError (file not changed).
 */
export function changeSettings(path: string, changes: SettingChange[], opts: ChangeOptions = {}): { config: Config; changed: string[] } {
  const early = changeProblems(changes, opts);
  if (early.length) throw new SettingsError(early, path);
  const local = readLocal(path);
  const before = mergeConfig(defaultConfigJson(), structuredClone(local));
  for (const { key, value } of changes) setAt(local, key, value as Json, opts.replace === true);
  // a time of day typed as "7:30" is written as "07:30", wherever the change put it (the key or its section)
  for (const tk of TIME_OF_DAY_KEYS) {
    if (!changes.some(({ key }) => tk === key || tk.startsWith(`${key}.`))) continue;
    const v = getKey(local, tk);
    if (typeof v === 'string') setAt(local, tk, normaliseTimeOfDay(v) as Json, true);
  }
  const candidate = mergeConfig(defaultConfigJson(), local);
  let config: Config;
  try {
    config = validateConfig(candidate, path);
  } catch (e) {
    if (e instanceof ConfigError) throw new SettingsError(e.problems.map((p) => plainProblem(p, candidate)), path);
    throw e;
  }
  writeFileAtomic(path, JSON.stringify(local, null, 2) + '\n');
  const changed = changes.flatMap(({ key }) => leafKeys(getKey(before, key), getKey(candidate, key), key));
  return { config, changed: [...new Set(changed)] };
}

/** Dotted leaves that differ between two values at `at`. */
function leafKeys(a: unknown, b: unknown, at: string): string[] {
  if (isObject(a) && isObject(b)) return [...new Set([...Object.keys(a), ...Object.keys(b)])].flatMap((k) => leafKeys(a[k], b[k], `${at}.${k}`));
  return JSON.stringify(a) === JSON.stringify(b) ? [] : [at];
}
