/**
 * The config as the CLI needs it: the path, the merged config when the file is valid, and, when it is not,
 * what can still be read from it (where the database and the daemon's socket are, which time zone), so
 * `status` works while the file on disk is being fixed.
 */
import { ConfigError, defaultConfigJson, getKey, loadConfig, localConfigPath, mergeConfig, parseConfigText, readConfigText } from '../config/load.ts';
import type { Config } from '../config/types.ts';
import { zoneOf } from '../homeowner/overrides.ts';

export interface CliConfig {
  path: string;
  /** The merged, valid config; undefined when the file is invalid or unreadable. */
  config?: Config;
  /** Why the file cannot be used, when it cannot. */
  problem?: ConfigError;
  /** The database file (storage.path), from the valid config or as far as the invalid file says. */
  storagePath: string;
  /** The zone a person reads times in. */
  zone: string;
}

export function configPathFrom(values: Record<string, unknown>, env: NodeJS.ProcessEnv): string {
  return (values.config as string | undefined) ?? localConfigPath(env);
}

/** Load leniently: never throws; an invalid file leaves `config` undefined and says why in `problem`. */
export function loadForCli(path: string): CliConfig {
  try {
    const config = loadConfig(path);
    return { path, config, storagePath: config.storage.path, zone: zoneOf(config) };
  } catch (e) {
    const problem = e instanceof ConfigError ? e : new ConfigError([(e as Error).message], path);
    // the file may be invalid in one key and still say where the database is
    let merged: unknown = defaultConfigJson();
    try {
      const raw = parseConfigText(readConfigText(path), path);
      if (raw && typeof raw === 'object' && !Array.isArray(raw)) merged = mergeConfig(merged as never, raw);
    } catch {
      // unreadable or not JSON: the defaults are all there is
    }
    const storage = getKey(merged, 'storage.path');
    const tz = getKey(merged, 'timezone');
    let zone = zoneOf({ timezone: null });
    if (typeof tz === 'string') {
      try {
        new Intl.DateTimeFormat('en-US', { timeZone: tz });
        zone = tz;
      } catch {
        // not a zone: the system's
      }
    }
    return { path, problem, storagePath: typeof storage === 'string' && storage ? storage : '/var/lib/wallbox/wallbox.db', zone };
  }
}
