/**
 * What a config reload can change in a running process, and what needs a restart. Shared by the daemon
 * (which applies a reload and says what it could not apply) and `wallbox config set` (which says it too,
 * so nothing claims a change it did not make).
 */
import type { Config } from './types.ts';

/** Dotted paths of every leaf that differs between two configs (arrays compared whole). */
export function changedKeys(a: unknown, b: unknown, at = ''): string[] {
  const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (isObj(a) && isObj(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    return keys.flatMap((k) => changedKeys(a[k], b[k], at ? `${at}.${k}` : k));
  }
  return JSON.stringify(a) === JSON.stringify(b) ? [] : [at || '(root)'];
}

/**
 * Sections whose drivers, files or identities are built once at start: a new value is read only by a new
 * process. `timezone` is here because the store keeps ledger days and tariff windows in the zone it was
 * opened with; applying it to the control core alone would split the device in two time zones.
 */
const RESTART_SECTIONS = ['deviceId', 'timezone', 'inverter', 'vehicleLink', 'gpio', 'storage', 'simulation', 'siteMeter'];

/** Uplink keys the running client cannot change in place (src/uplink/client.ts `reconfigure`). */
const UPLINK_RESTART_KEYS = ['uplink.prefix', 'uplink.embeddedPort'];

export interface ReloadCapabilities {
  /** An uplink client is running (uplink.url was not null at start). */
  uplinkRunning: boolean;
  /** The store can take new reward settings in place. */
  rewardLive: boolean;
}

function sectionOf(key: string): string {
  return key.split('.')[0];
}

/**
 * Split changed keys into those the running process applies and those needing a restart, before the uplink
 * client has had its say (it may refuse more: its `restartNeeded` is added by the caller).
 */
export function classifyChanges(changed: string[], prev: Config, caps: ReloadCapabilities): { live: string[]; restart: string[] } {
  const live: string[] = [];
  const restart: string[] = [];
  for (const k of changed) {
    const section = sectionOf(k);
    let needsRestart = RESTART_SECTIONS.includes(section);
    if (section === 'reward' && !caps.rewardLive) needsRestart = true;
    if (section === 'uplink') {
      if (k === 'uplink.url') needsRestart = !caps.uplinkRunning || prev.uplink.url === null;
      else if (UPLINK_RESTART_KEYS.includes(k)) needsRestart = caps.uplinkRunning;
    }
    (needsRestart ? restart : live).push(k);
  }
  return { live, restart };
}

/**
 * The config the running process keeps after a reload: `next` for everything applied live, the running
 * values for every key that needs a restart, so status and the next reload compare against what is really
 * in force.
 */
export function effectiveConfig(running: Config, next: Config, restartKeys: string[]): Config {
  const out = structuredClone(next) as unknown as Record<string, unknown>;
  const prev = running as unknown as Record<string, unknown>;
  for (const key of restartKeys) {
    const parts = key.split('.');
    let src: unknown = prev;
    let dst: Record<string, unknown> = out;
    for (let i = 0; i < parts.length - 1; i++) {
      src = (src as Record<string, unknown> | undefined)?.[parts[i]];
      if (typeof dst[parts[i]] !== 'object' || dst[parts[i]] === null) dst[parts[i]] = {};
      dst = dst[parts[i]] as Record<string, unknown>;
    }
    const last = parts[parts.length - 1];
    const v = (src as Record<string, unknown> | undefined)?.[last];
    if (v === undefined) delete dst[last];
    else dst[last] = structuredClone(v);
  }
  return out as unknown as Config;
}
