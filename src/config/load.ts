import { readFileSync, writeFileSync, renameSync, existsSync, openSync, fsyncSync, closeSync, mkdirSync, fstatSync, readSync } from 'node:fs';
import { open as openAsync } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type ErrorObject } from 'ajv';
import type { Config } from './types.ts';
import { gpioConfigProblems } from '../../hal/gpio/config.ts';
import { sameBroker } from '../homeassistant/broker-identity.ts';

/**
 * The installed tree (config/, package.json): the nearest directory above this module holding package.json,
 * two levels up from src/config when run from the sources, three from dist/src/config in the production
 * build (`npm run build`).
 */
export const PROJECT_ROOT = ((): string => {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    dir = dirname(dir);
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'config'))) return dir;
  }
  return resolve(dirname(fileURLToPath(import.meta.url)), '../..');
})();
/** The built-in defaults: a real install (every default is stated here once). */
export const DEFAULT_CONFIG_PATH = join(PROJECT_ROOT, 'config/default.json');
/** The simulated home on loopback: `npm start`, the tests and scenario runs, merged over the defaults. */
export const SIMULATION_PROFILE_PATH = join(PROJECT_ROOT, 'config/simulation.json');
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
    for (const [k, v] of Object.entries(override)) {
      // never through the prototype: structuralProblems refuses these keys, this keeps merge safe on its own
      if (FORBIDDEN_KEYS.has(k)) continue;
      out[k] = Object.hasOwn(base, k) ? mergeConfig(base[k], v) : v;
    }
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

/** An ISO 8601 time whose date and time exist (Date.parse takes 2026-02-31 as 3 March). */
export function isRealInstant(text: string): boolean {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(text);
  if (!m || !Number.isFinite(Date.parse(text))) return false;
  const [y, mo, d, h, mi] = m.slice(1).map(Number);
  const check = new Date(Date.UTC(y, mo - 1, d));
  return check.getUTCMonth() === mo - 1 && check.getUTCDate() === d && h < 24 && mi < 60;
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
  // Home Assistant on a local broker; the aggregator's broker only when the installer says so
  const ha = c.homeassistant;
  if (ha && ha.url !== null) {
    if (!/^mqtts?:\/\/[^\s]+$/.test(ha.url)) p.push('homeassistant.url: must be mqtt://… or mqtts://…, or null');
    else if (!ha.shareUplinkBroker && sameBroker(ha.url, c.uplink.url, typeof c.uplink.embeddedPort === 'number' ? c.uplink.embeddedPort : 1883))
      p.push(`homeassistant.url: is the aggregator's broker (uplink.url); use a local broker, or set homeassistant.shareUplinkBroker to true if the installer means it`);
  }
  // an override's end must be a real instant (the pattern lets 2026-02-31T25:00Z through)
  for (const [kind, o] of Object.entries(c.overrides ?? {}))
    if (o && typeof o === 'object' && !isRealInstant((o as { until: string }).until))
      p.push(`overrides.${kind}.until: "${(o as { until: string }).until}" is not a real date and time`);
  // pins shared between roles and feedback/tiers without a contactor are rules the schema cannot express
  p.push(...gpioConfigProblems(c.gpio));
  return p;
}

/**
 * Rules that need no valid schema first, so they are reported with the schema's problems: a real
 * inverter link with nowhere to go cannot work, and is refused at start (exit 78) rather than run in fault.
 */
function installProblems(candidate: unknown): string[] {
  const inverter = isPlainObject(candidate) ? candidate.inverter : undefined;
  if (!isPlainObject(inverter) || inverter.driver !== 'sunspec') return [];
  const modbus = isPlainObject(inverter.modbus) ? inverter.modbus : {};
  const has = (k: string) => typeof modbus[k] === 'string' && modbus[k] !== '';
  return has('host') || has('path') ? [] : ['inverter.modbus: needs "host" (Modbus TCP, e.g. {"host": "192.168.1.50"}) or "path" (Modbus RTU, e.g. {"path": "/dev/ttyAMA0"})'];
}

/** Validate a merged config object; returns it typed or throws ConfigError listing every problem. */
export function validateConfig(candidate: unknown, source = '(config)'): Config {
  const structural = structuralProblems(candidate);
  if (structural.length) throw new ConfigError(structural, source);
  const validate = schemaValidator();
  const install = installProblems(candidate);
  if (!validate(candidate)) {
    const problems = [...new Set((validate.errors ?? []).map(describe))];
    throw new ConfigError([...problems, ...install], source);
  }
  if (install.length) throw new ConfigError(install, source);
  const problems = semanticProblems(candidate as Config);
  if (problems.length) throw new ConfigError(problems, source);
  return candidate as Config;
}

/**
 * A config file larger than this is refused unread: a real one is a few kilobytes, and a file that is not
 * one (a symlink to /dev/zero, a log written to the wrong path) must not fill the memory of the board.
 */
export const MAX_CONFIG_BYTES = 256 * 1024;
/** Longest string value accepted anywhere in a config (PEM keys inline are the longest real ones). */
export const MAX_CONFIG_STRING = 8192;
/** Deepest nesting accepted (the schema's deepest path is 4). */
const MAX_CONFIG_DEPTH = 8;
/** Keys that would reach an object's prototype when merged or set: refused wherever they appear. */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

function notRegularFile(path: string, what: string): ConfigError {
  return new ConfigError([`not a regular file (${what}): a config must be a plain JSON file`], path);
}

/** Read a config file synchronously (the CLI), bounded to MAX_CONFIG_BYTES and to regular files. */
export function readConfigText(path: string): string {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw new ConfigError([`cannot read file: ${(e as Error).message}`], path);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw notRegularFile(path, st.isCharacterDevice() ? 'a character device' : st.isDirectory() ? 'a directory' : 'a special file');
    if (st.size > MAX_CONFIG_BYTES) throw new ConfigError([`file is ${st.size} bytes, larger than the ${MAX_CONFIG_BYTES} a config may be`], path);
    // read at most one byte more than the cap: a file growing while read is caught too
    const buf = Buffer.alloc(MAX_CONFIG_BYTES + 1);
    let n = 0;
    for (;;) {
      const r = readSync(fd, buf, n, buf.length - n, null);
      if (r === 0) break;
      n += r;
      if (n > MAX_CONFIG_BYTES) throw new ConfigError([`file is larger than the ${MAX_CONFIG_BYTES} bytes a config may be`], path);
    }
    return buf.subarray(0, n).toString('utf8');
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    throw new ConfigError([`cannot read file: ${(e as Error).message}`], path);
  } finally {
    closeSync(fd);
  }
}

/** The same, without blocking the event loop (the daemon: the control loop keeps ticking while it reads). */
export async function readConfigTextAsync(path: string): Promise<string> {
  let fh: Awaited<ReturnType<typeof openAsync>>;
  try {
    fh = await openAsync(path, 'r');
  } catch (e) {
    throw new ConfigError([`cannot read file: ${(e as Error).message}`], path);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw notRegularFile(path, st.isCharacterDevice() ? 'a character device' : st.isDirectory() ? 'a directory' : 'a special file');
    if (st.size > MAX_CONFIG_BYTES) throw new ConfigError([`file is ${st.size} bytes, larger than the ${MAX_CONFIG_BYTES} a config may be`], path);
    const buf = Buffer.alloc(MAX_CONFIG_BYTES + 1);
    let n = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, n, buf.length - n, null);
      if (bytesRead === 0) break;
      n += bytesRead;
      if (n > MAX_CONFIG_BYTES) throw new ConfigError([`file is larger than the ${MAX_CONFIG_BYTES} bytes a config may be`], path);
    }
    return buf.subarray(0, n).toString('utf8');
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    throw new ConfigError([`cannot read file: ${(e as Error).message}`], path);
  } finally {
    await fh.close().catch(() => {});
  }
}

/**
 * Problems no schema keyword catches: keys that reach a prototype, numbers JSON.parse turned into
 * Infinity (`1e400`), strings long enough to break what they feed (a 70,000-character MQTT user name),
 * nesting without end. Each problem names its key.
 */
export function structuralProblems(v: unknown, at = '', depth = 0): string[] {
  const here = at || '(root)';
  if (typeof v === 'number') return Number.isFinite(v) ? [] : [`${here}: must be a finite number`];
  if (typeof v === 'string') return v.length > MAX_CONFIG_STRING ? [`${here}: longer than ${MAX_CONFIG_STRING} characters (${v.length})`] : [];
  if (v === null || typeof v !== 'object') return [];
  if (depth >= MAX_CONFIG_DEPTH) return [`${here}: nested deeper than ${MAX_CONFIG_DEPTH} levels`];
  const out: string[] = [];
  if (Array.isArray(v)) {
    v.forEach((item, i) => out.push(...structuralProblems(item, `${at}[${i}]`, depth + 1)));
    return out;
  }
  for (const k of Object.keys(v)) {
    const path = at ? `${at}.${k}` : k;
    if (FORBIDDEN_KEYS.has(k)) {
      out.push(`${path}: "${k}" is not allowed as a key`);
      continue;
    }
    out.push(...structuralProblems((v as Record<string, unknown>)[k], path, depth + 1));
  }
  return out;
}

/** Parse config text; JSON errors and structural problems are ConfigErrors naming `source`. */
export function parseConfigText(text: string, source: string): Json {
  let v: Json;
  try {
    v = JSON.parse(text) as Json;
  } catch (e) {
    throw new ConfigError([`not valid JSON: ${(e as Error).message}`], source);
  }
  const problems = structuralProblems(v);
  if (problems.length) throw new ConfigError(problems, source);
  return v;
}

function readJson(path: string): Json {
  return parseConfigText(readConfigText(path), path);
}

export function defaultConfigJson(): Json {
  return readJson(DEFAULT_CONFIG_PATH);
}

/**
 * The config file: `WALLBOX_CONFIG` (the unit and the installed command set it), else, in a checkout,
 * `config/local.json` when it exists, else the simulation profile, so `npm start` and `npm run wallbox`
 * run the simulated home. A real install always names its file, and a named file that is missing is an
 * error, never a fall-back.
 */
export function localConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.WALLBOX_CONFIG) return resolve(env.WALLBOX_CONFIG);
  const local = join(PROJECT_ROOT, 'config/local.json');
  return existsSync(local) ? local : SIMULATION_PROFILE_PATH;
}

/**
 * Load the defaults, merge the file over them and an optional in-memory override over that, validate,
 * and return the result. Throws ConfigError naming the file, each key and its rule; a file that does not
 * exist is such an error. `null` stands for the simulation profile (tests, scenario runs).
 */
export function loadConfig(localPath: string | null = localConfigPath(), extra?: unknown): Config {
  let merged = defaultConfigJson();
  const path = localPath ?? SIMULATION_PROFILE_PATH;
  const local = readJson(path);
  if (!isPlainObject(local)) throw new ConfigError(['(root): must be a JSON object'], path);
  merged = mergeConfig(merged, local);
  const source = path;
  if (extra !== undefined) merged = mergeConfig(merged, extra as Json);
  return validateConfig(merged, source);
}

/**
 * The daemon's loader: the file must exist (a missing file is an error naming the path, never a silent
 * fall-back to the built-in defaults), is read without blocking the loop and bounded in size, and is merged
 * over the defaults and validated like {@link loadConfig}.
 */
export async function loadConfigFile(path: string): Promise<Config> {
  const local = parseConfigText(await readConfigTextAsync(path), path);
  if (!isPlainObject(local)) throw new ConfigError(['(root): must be a JSON object'], path);
  return validateConfig(mergeConfig(defaultConfigJson(), local), path);
}

/** Parse a CLI value: JSON when it parses (numbers, booleans, null, objects), a plain string otherwise. */
export function parseConfigValue(text: string): Json {
  let v: Json;
  try {
    v = JSON.parse(text) as Json;
  } catch {
    return text;
  }
  // `1e400` parses to Infinity, which JSON.stringify would write as null: refuse it here, naming the value
  const problems = structuralProblems(v, '(value)');
  if (problems.length) throw new ConfigError(problems, 'command line');
  return v;
}

export function getKey(obj: unknown, key: string): unknown {
  let cur: unknown = obj;
  for (const part of key.split('.')) {
    if (!isPlainObject(cur) || !Object.hasOwn(cur, part)) return undefined;
    cur = cur[part];
  }
  return cur;
}

/** Problems with a dotted key itself, before anything is looked up or written with it. */
export function keyProblems(key: string): string[] {
  if (key.length === 0 || key.length > 256) return [`${key.slice(0, 64) || '(empty)'}: a key is 1 to 256 characters`];
  const parts = key.split('.');
  if (parts.some((p) => p === '')) return [`${key}: empty part in the dotted key`];
  const bad = parts.find((p) => FORBIDDEN_KEYS.has(p));
  if (bad) return [`${key}: "${bad}" is not allowed as a key`];
  return [];
}

function setKey(obj: { [k: string]: Json }, key: string, value: Json): void {
  const parts = key.split('.');
  let cur = obj;
  for (const part of parts.slice(0, -1)) {
    if (FORBIDDEN_KEYS.has(part)) throw new Error(`"${part}" is not allowed as a key`);
    if (!Object.hasOwn(cur, part) || !isPlainObject(cur[part])) cur[part] = {};
    cur = cur[part] as { [k: string]: Json };
  }
  cur[parts[parts.length - 1]] = value;
}

/** Write a file so that a reader sees either the old or the new content, never half of it; `mode` for a new file. */
export function writeFileAtomic(path: string, content: string, mode?: number): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, content, mode === undefined ? undefined : { mode });
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
  const kp = keyProblems(key);
  if (kp.length) throw new ConfigError(kp, localPath);
  if (getKey(defaultConfigJson(), key) === undefined && !key.startsWith('simulation.') && !/^(inverter|vehicleLink|gpio|uplink|storage|reward)\./.test(key))
    throw new ConfigError([`${key}: unknown key`], localPath);
  const local = localPath && existsSync(localPath) ? readJson(localPath) : {};
  if (!isPlainObject(local)) throw new ConfigError(['(root): must be a JSON object'], localPath);
  setKey(local, key, value);
  const merged = validateConfig(mergeConfig(defaultConfigJson(), local), `${localPath} (after setting ${key})`);
  writeFileAtomic(localPath, JSON.stringify(local, null, 2) + '\n');
  return merged;
}
