import { readFileSync, writeFileSync, renameSync, existsSync, openSync, fsyncSync, closeSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type ErrorObject } from 'ajv';
import type { Config } from './types.ts';
import { gpioConfigProblems } from '../../hal/gpio/config.ts';

export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const DEFAULT_CONFIG_PATH = join(PROJECT_ROOT, 'config/default.json');
export const SCHEMA_PATH = join(PROJECT_ROOT, 'config/schema.json');

/** A config that failed validation: every problem as `"key: rule"`, key in dotted form. */
export class ConfigError extends Error {
  constructor(readonly problems: string[], readonly source: string) {
    super(`invalid config ${source}:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

let validator: ReturnType<Ajv['compile']> | undefined;
function schemaValidator() {
  if (!validator) {
    const ajv = new Ajv({ allErrors: true, strict: false });
    validator = ajv.compile(JSON.parse(readFileSync(SCHEMA_PATH, 'utf8')));
  }
  return validator;
}

function dotted(instancePath: string): string {
  return instancePath.replace(/^\//, '').replace(/\//g, '.') || '(root)';
}

function describe(e: ErrorObject): string {
  const at = dotted(e.instancePath);
  switch (e.keyword) {
    case 'additionalProperties':
      return `${at === '(root)' ? '' : at + '.'}${(e.params as { additionalProperty: string }).additionalProperty}: unknown key`;
    case 'required':
      return `${at === '(root)' ? '' : at + '.'}${(e.params as { missingProperty: string }).missingProperty}: required`;
    case 'enum':
      return `${at}: must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')}`;
    case 'pattern':
      return `${at}: must match ${(e.params as { pattern: string }).pattern}`;
    default:
      return `${at}: ${e.message ?? e.keyword}`;
  }
}

/** Merge `override` over `base`: objects deep, everything else (arrays included) replaced. */
export function mergeConfig(base: Json, override: Json): Json {
  if (override === undefined) return base;
  if (isPlainObject(base) && isPlainObject(override)) {
    const out: { [k: string]: Json } = { ...base };
    for (const [k, v] of Object.entries(override)) out[k] = k in base ? mergeConfig(base[k], v) : v;
    return out;
  }
  return override;
}

function isPlainObject(v: unknown): v is { [k: string]: Json } {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isValidTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** Rules across keys, after the schema has passed. Each problem names its key. */
export function semanticProblems(c: Config): string[] {
  const p: string[] = [];
  if (c.vehicle.backupFloorPct > c.vehicle.dischargeFloorPct)
    p.push(`vehicle.backupFloorPct: must not exceed vehicle.dischargeFloorPct (${c.vehicle.backupFloorPct} > ${c.vehicle.dischargeFloorPct})`);
  if (c.vehicle.targetSocPct < c.vehicle.backupFloorPct)
    p.push(`vehicle.targetSocPct: must not be below vehicle.backupFloorPct (${c.vehicle.targetSocPct} < ${c.vehicle.backupFloorPct})`);
  if (c.timezone !== null && c.timezone !== undefined && !isValidTimeZone(c.timezone))
    p.push(`timezone: "${c.timezone}" is not an IANA time zone`);
  if (c.uplink.url !== null && c.uplink.url !== 'embedded' && !/^mqtts?:\/\/[^\s]+$/.test(c.uplink.url))
    p.push(`uplink.url: must be mqtt://…, mqtts://…, "embedded" or null`);
  if (c.control.faultClearS < 0) p.push('control.faultClearS: must be >= 0');
  // pins shared between roles and feedback/tiers without a contactor are rules the schema cannot express
  p.push(...gpioConfigProblems(c.gpio));
  return p;
}

/** Validate a merged config object; returns it typed or throws ConfigError listing every problem. */
export function validateConfig(candidate: unknown, source = '(config)'): Config {
  const validate = schemaValidator();
  if (!validate(candidate)) {
    const problems = [...new Set((validate.errors ?? []).map(describe))];
    throw new ConfigError(problems, source);
  }
  const problems = semanticProblems(candidate as Config);
  if (problems.length) throw new ConfigError(problems, source);
  return candidate as Config;
}

function readJson(path: string): Json {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError([`cannot read file: ${(e as Error).message}`], path);
  }
  try {
    return JSON.parse(text) as Json;
  } catch (e) {
    throw new ConfigError([`not valid JSON: ${(e as Error).message}`], path);
  }
}

export function defaultConfigJson(): Json {
  return readJson(DEFAULT_CONFIG_PATH);
}

/** Where the local override lives: `WALLBOX_CONFIG`, else `config/local.json`. */
export function localConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.WALLBOX_CONFIG ? resolve(env.WALLBOX_CONFIG) : join(PROJECT_ROOT, 'config/local.json');
}

/**
 * Load defaults, merge the local file over them (when it exists) and an optional in-memory override
 * over that, validate, and return the result. Throws ConfigError naming the file, each key and its rule.
 */
export function loadConfig(localPath: string | null = localConfigPath(), extra?: unknown): Config {
  let merged = defaultConfigJson();
  let source = DEFAULT_CONFIG_PATH;
  if (localPath && existsSync(localPath)) {
    const local = readJson(localPath);
    if (!isPlainObject(local)) throw new ConfigError(['(root): must be a JSON object'], localPath);
    merged = mergeConfig(merged, local);
    source = localPath;
  }
  if (extra !== undefined) merged = mergeConfig(merged, extra as Json);
  return validateConfig(merged, source);
}

/** Parse a CLI value: JSON when it parses (numbers, booleans, null, objects), a plain string otherwise. */
export function parseConfigValue(text: string): Json {
  try {
    return JSON.parse(text) as Json;
  } catch {
    return text;
  }
}

export function getKey(obj: unknown, key: string): unknown {
  let cur: unknown = obj;
  for (const part of key.split('.')) {
    if (!isPlainObject(cur) || !(part in cur)) return undefined;
    cur = cur[part];
  }
  return cur;
}

function setKey(obj: { [k: string]: Json }, key: string, value: Json): void {
  const parts = key.split('.');
  let cur = obj;
  for (const part of parts.slice(0, -1)) {
    if (!isPlainObject(cur[part])) cur[part] = {};
    cur = cur[part] as { [k: string]: Json };
  }
  cur[parts[parts.length - 1]] = value;
}

/** Write a file so that a reader sees either the old or the new content, never half of it. */
export function writeFileAtomic(path: string, content: string): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, content);
  const fd = openSync(tmp, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

/**
 * Set one key in the local config file, validating the merged result first; the file is only
 * replaced (atomically) when the result is valid. Returns the new merged config.
 */
export function setLocalKey(localPath: string, key: string, value: Json): Config {
  if (getKey(defaultConfigJson(), key) === undefined && !key.startsWith('simulation.') && !/^(inverter|vehicleLink|gpio|uplink|storage|reward)\./.test(key))
    throw new ConfigError([`${key}: unknown key`], localPath);
  const local = localPath && existsSync(localPath) ? readJson(localPath) : {};
  if (!isPlainObject(local)) throw new ConfigError(['(root): must be a JSON object'], localPath);
  setKey(local, key, value);
  const merged = validateConfig(mergeConfig(defaultConfigJson(), local), `${localPath} (after setting ${key})`);
  writeFileAtomic(localPath, JSON.stringify(local, null, 2) + '\n');
  return merged;
}
