/**
 * Home Assistant MQTT device discovery (HA 2024.11+): one retained payload at
 * `<discoveryPrefix>/device/<id>/config` with the device (`dev`), the origin (`o`) and every entity in
 * `cmps`, each with its `platform`. Entities read one retained JSON state topic through value templates;
 * availability comes from a retained `online`/`offline` topic that is also the connection's last will.
 * Pure: topics and payloads from the config and the daemon's status, no I/O.
 */
import type { Config } from '../config/types.ts';
import { localParts, localToUtcMs } from '../control/time.ts';

export interface HaTopics {
  discovery: string;
  state: string;
  availability: string;
  /** Commands arrive on `<command>/<entity>`. */
  command: string;
  /** Home Assistant's own birth/will topic. */
  haStatus: string;
}

/** What the Departure time entity takes: a 24-hour time (the hour may have one digit), or nothing for none. */
export const DEPARTURE_TIME_PATTERN = '^(([01]?[0-9]|2[0-3]):[0-5][0-9])?$';

export function haTopics(config: Pick<Config, 'deviceId' | 'homeassistant'>): HaTopics {
  const ha = config.homeassistant!;
  const root = `${ha.baseTopic}/${config.deviceId}/ha`;
  return {
    discovery: `${ha.discoveryPrefix}/device/${config.deviceId}/config`,
    state: `${root}/state`,
    availability: `${root}/availability`,
    command: `${root}/set`,
    haStatus: `${ha.discoveryPrefix}/status`,
  };
}

/** Charge modes offered by the select when the config has `charge.mode` (src/control/surplus.ts). */
export const CHARGE_MODES = ['off', 'now', 'target', 'minpv', 'pv'] as const;

/** The V2G pause select: its options and the end each one asks for (src/homeowner/overrides.ts parseUntil). */
export const V2G_PAUSE_OPTIONS: Record<string, string | null> = {
  none: null,
  '1 h': '1h',
  '4 h': '4h',
  '8 h': '8h',
  '24 h': '24h',
  'until tomorrow': 'tomorrow',
  /** A pause set from the CLI or the page; choosing it changes nothing. */
  other: null,
};

type Component = Record<string, unknown>;

/** The discovery payload: the device, the origin, availability and every entity. */
export function discoveryPayload(config: Config, version: string): Record<string, unknown> {
  const t = haTopics(config);
  const id = config.deviceId;
  const value = (field: string) => `{{ value_json.${field} }}`;
  const sensor = (name: string, field: string, extra: Component = {}): Component => ({ platform: 'sensor', name, state_topic: t.state, value_template: value(field), ...extra });
  const binary = (name: string, field: string, deviceClass: string): Component => ({
    platform: 'binary_sensor', name, state_topic: t.state, value_template: value(field), payload_on: 'ON', payload_off: 'OFF', device_class: deviceClass,
  });
  const number = (name: string, field: string, entity: string, min: number, max: number, unit: string, mode: 'slider' | 'box' = 'slider'): Component => ({
    platform: 'number', name, state_topic: t.state, value_template: value(field), command_topic: `${t.command}/${entity}`, min, max, step: 1, unit_of_measurement: unit, mode,
  });
  const button = (name: string, entity: string, icon: string): Component => ({ platform: 'button', name, command_topic: `${t.command}/${entity}`, payload_press: 'PRESS', icon });
  const currency = config.reward.currency;

  const cmps: Record<string, Component> = {
    power: sensor('Power', 'powerW', { device_class: 'power', state_class: 'measurement', unit_of_measurement: 'W' }),
    // the site meter's figures (unknown without a meter): grid positive = import, as state.site has it
    grid_power: sensor('Grid power', 'gridPowerW', { device_class: 'power', state_class: 'measurement', unit_of_measurement: 'W' }),
    pv_power: sensor('PV power', 'pvPowerW', { device_class: 'power', state_class: 'measurement', unit_of_measurement: 'W' }),
    soc: sensor('State of charge', 'socPct', { device_class: 'battery', state_class: 'measurement', unit_of_measurement: '%' }),
    effective_floor: sensor('Effective floor', 'effectiveFloorPct', { state_class: 'measurement', unit_of_measurement: '%', icon: 'mdi:battery-lock' }),
    energy_imported: sensor('Energy into the car', 'importedKWh', { device_class: 'energy', state_class: 'total_increasing', unit_of_measurement: 'kWh', suggested_display_precision: 2 }),
    energy_exported: sensor('Energy out of the car', 'exportedKWh', { device_class: 'energy', state_class: 'total_increasing', unit_of_measurement: 'kWh', suggested_display_precision: 2 }),
    backup_hours: sensor('Backup hours left', 'backupHoursLeft', { device_class: 'duration', state_class: 'measurement', unit_of_measurement: 'h', suggested_display_precision: 1 }),
    // a total that starts again each month: last_reset tells HA's statistics so (not a negative earning)
    month_earnings: sensor("This month's earnings", 'monthEarnings', { device_class: 'monetary', state_class: 'total', unit_of_measurement: currency, last_reset_value_template: value('monthStart') }),
    mode: sensor('Mode', 'mode', { device_class: 'enum', options: ['idle', 'charge', 'discharge', 'backup', 'fault'] }),
    quick_actions: sensor('Quick actions', 'quickActions', { icon: 'mdi:clock-fast' }),
    boost_until: sensor('Charge now until', 'boostUntil', { device_class: 'timestamp' }),
    v2g_pause_until: sensor('V2G paused until', 'v2gPauseUntil', { device_class: 'timestamp' }),
    reserve_until: sensor('Backup reserve until', 'reserveUntil', { device_class: 'timestamp' }),
    plugged: binary('Car plugged in', 'plugged', 'plug'),
    grid: binary('Grid', 'grid', 'power'),
    fault: binary('Fault', 'fault', 'problem'),
    discharge_floor: number('Discharge floor', 'dischargeFloorPct', 'discharge_floor', 0, 100, '%'),
    backup_floor: number('Backup floor', 'backupFloorPct', 'backup_floor', 0, 100, '%'),
    target_soc: number('Departure target', 'targetSocPct', 'target_soc', 0, 100, '%'),
    // a text entity (MQTT has no time entity): HH:MM or H:MM, empty for no fixed departure; HA checks the
    // pattern before sending, the wallbox checks again (src/homeowner/settings.ts)
    departure_time: {
      platform: 'text', name: 'Departure time', state_topic: t.state, value_template: value('departureTime'), command_topic: `${t.command}/departure_time`,
      min: 0, max: 5, pattern: DEPARTURE_TIME_PATTERN, icon: 'mdi:car-clock',
    },
    backup_hours_target: number('Backup target', 'backupTargetHours', 'backup_hours_target', 0, 168, 'h', 'box'),
    v2g: { platform: 'switch', name: 'V2G', state_topic: t.state, value_template: value('v2g'), command_topic: `${t.command}/v2g`, payload_on: 'ON', payload_off: 'OFF', state_on: 'ON', state_off: 'OFF', icon: 'mdi:transmission-tower-export' },
    v2g_pause: { platform: 'select', name: 'Pause V2G', state_topic: t.state, value_template: value('v2gPause'), command_topic: `${t.command}/v2g_pause`, options: Object.keys(V2G_PAUSE_OPTIONS), icon: 'mdi:pause-circle' },
    charge_now: button('Charge now', 'charge_now', 'mdi:lightning-bolt'),
    charge_now_stop: button('Stop charging now', 'charge_now_stop', 'mdi:lightning-bolt-outline'),
    reserve_tonight: button('Backup reserve tonight', 'reserve_tonight', 'mdi:home-battery'),
    reserve_stop: button('End backup reserve', 'reserve_stop', 'mdi:home-battery-outline'),
  };
  if (config.charge && typeof config.charge.mode === 'string')
    cmps.charge_mode = { platform: 'select', name: 'Charge mode', state_topic: t.state, value_template: value('chargeMode'), command_topic: `${t.command}/charge_mode`, options: [...CHARGE_MODES], icon: 'mdi:ev-station' };
  for (const [key, c] of Object.entries(cmps)) c.unique_id = `${id}_${key}`;

  const page = pageUrl(config);
  return {
    dev: { ids: [id], name: `Wallbox ${id}`, mf: 'wallbox runtime', mdl: 'bidirectional EV charger', sw: version, ...(page ? { cu: page } : {}) },
    o: { name: 'wallbox-runtime', sw: version },
    availability: [{ topic: t.availability, payload_available: 'online', payload_not_available: 'offline' }],
    qos: 1,
    cmps,
  };
}

/**
 * The local web page as Home Assistant's "Visit" link (`configuration_url`), when it is served on an
 * address other machines reach (not loopback, not the any-address).
 */
export function pageUrl(config: Pick<Config, 'ui'>): string | undefined {
  const listen = config.ui?.listen;
  if (!listen) return undefined;
  const host = listen.slice(0, listen.lastIndexOf(':'));
  if (/^(127\.|localhost$|\[::1\]$|0\.0\.0\.0$|\[::\]$)/.test(host)) return undefined;
  return `http://${listen}/`;
}

type Obj = Record<string, unknown>;

/** The start of the local month containing `wallMs`, ISO 8601 UTC (the earnings' last reset). */
export function monthStartIso(wallMs: number, zone: string): string {
  const p = localParts(wallMs, zone);
  return new Date(localToUtcMs(p.year, p.month, 1, 0, 0, zone)).toISOString();
}
const get = (s: unknown, path: string): unknown => path.split('.').reduce<unknown>((o, k) => (o && typeof o === 'object' ? (o as Obj)[k] : undefined), s);
const rounded = (v: unknown, digits: number): number | null => (typeof v === 'number' && Number.isFinite(v) ? Math.round(v * 10 ** digits) / 10 ** digits : null);
const onOff = (b: boolean) => (b ? 'ON' : 'OFF');

/**
 * The state every entity reads: from the daemon's status answer (src/daemon.ts) and the config in force.
 * `pauseLabel`: the select option that set the V2G pause in force, when this link set it.
 */
export function statePayload(status: Obj, config: Config, wallMs: number, pauseLabel?: string): Obj {
  const overrides = (Array.isArray(status.overrides) ? status.overrides : []) as { kind: string; until: string; label: string; untilLocal: string }[];
  const until = (kind: string) => overrides.find((o) => o.kind === kind)?.until ?? null;
  const month = get(status, 'totals.month.rewards');
  const reward = Array.isArray(month) ? (month as { amount: number; currency: string }[]).find((r) => r.currency === config.reward.currency) : undefined;
  const backupActive = get(status, 'backup.active') === true;
  const pause = until('pauseV2g');
  return {
    mode: status.mode ?? null,
    powerW: rounded(status.powerW, 0),
    gridPowerW: rounded(get(status, 'site.gridPowerW'), 0),
    pvPowerW: rounded(get(status, 'site.pvPowerW'), 0),
    socPct: rounded(status.socPct, 1),
    effectiveFloorPct: rounded(get(status, 'floors.effectiveFloorPct'), 1),
    importedKWh: rounded((get(status, 'energy.importedWh') as number) / 1000, 3),
    exportedKWh: rounded((get(status, 'energy.exportedWh') as number) / 1000, 3),
    backupHoursLeft: backupActive ? rounded(get(status, 'backup.hoursLeft'), 1) : null,
    monthEarnings: rounded(reward?.amount ?? 0, 2),
    monthStart: monthStartIso(wallMs, config.timezone ?? Intl.DateTimeFormat().resolvedOptions().timeZone ?? 'UTC'),
    quickActions: overrides.length ? overrides.map((o) => `${o.label} until ${o.untilLocal}`).join('; ') : 'none',
    boostUntil: until('boost'),
    v2gPauseUntil: pause,
    reserveUntil: until('backupReserve'),
    v2gPause: pause === null ? 'none' : pauseLabel ?? 'other',
    plugged: onOff(status.vehicleConnected === true),
    grid: onOff(status.grid !== 'down'),
    fault: onOff(status.mode === 'fault' || (Array.isArray(status.faults) && status.faults.length > 0)),
    dischargeFloorPct: config.vehicle.dischargeFloorPct,
    backupFloorPct: config.vehicle.backupFloorPct,
    targetSocPct: config.vehicle.targetSocPct,
    departureTime: config.vehicle.departureTime ?? '',
    backupTargetHours: config.backup.targetHours,
    v2g: onOff(config.vehicle.v2gEnabled),
    chargeMode: config.charge?.mode ?? null,
  };
}
