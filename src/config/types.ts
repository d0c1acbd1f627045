/** The merged configuration (config/default.json + local override). Keys: docs/configuration.md. */
export interface VehicleConfig {
  dischargeFloorPct: number;
  backupFloorPct: number;
  targetSocPct: number;
  /** Daily departure, local HH:MM in `timezone`, or null. */
  departureTime: string | null;
  v2gEnabled: boolean;
  maxDischargeW: number | null;
  maxChargeW: number | null;
  /** Usable capacity when the car does not report one, Wh. */
  capacityWh: number | null;
  /** `departure`: charge just in time for the departure target; `immediate`: charge to target at once. */
  chargeStrategy: 'departure' | 'immediate';
  /** Safety margin on the time needed to reach the target before departure, s. */
  departureMarginS: number;
  /** Which departure wins when both the car and the config give one. */
  departureSource: 'config' | 'car';
  /**
   * Capacity assumed for the departure floor while neither the car nor `capacityWh` gives one, Wh.
   * Large on purpose: more energy to reach the target means a higher floor (energy stays in the car).
   */
  assumedCapacityWhForDeparture: number;
  /** Discharge a car that never sent a discharge limit (up to the charger's export capability). */
  dischargeWithoutCarConsent: boolean;
}

export interface BackupConfig {
  enabled: boolean;
  targetHours: number;
  reconnectDelayS: number;
  contactorTimeoutS: number;
  loadRestoreStaggerS: number;
  shedDwellS: number;
  rejoinRampS: number;
  /** SunSpec 701 alarm symbols that mean the grid is gone (islanding without a sense line). */
  gridLossAlarms: string[];
  /** A listed alarm must hold this long, without a break, before it counts as a lost grid, s. */
  gridLossDebounceS: number;
}

export interface ControlConfig {
  tickS: number;
  socMaxAgeS: number;
  inverterMaxAgeS: number;
  /** A SoC figure is usable this long after the car last sent it (src/control/soc-tracker.ts), s. */
  socTrackMaxAgeS: number;
  /** A SoC figure is usable until this much energy moved since it, % of the capacity. */
  socTrackMaxThroughputPct: number;
  faultAfterS: number;
  faultClearS: number;
  faultOpensContactor: 'always' | 'when-grid-absent';
  /** Bound on one call to a port, ms: one that does not answer within it is a fault of that port. */
  portCallTimeoutMs: number;
}

export interface Config {
  deviceId: string;
  timezone: string | null;
  vehicle: VehicleConfig;
  backup: BackupConfig;
  site: {
    gridImportLimitW: number | null;
    gridExportLimitW: number | null;
    /** House load assumed for the import limit without a fresh site meter, W; the export limit then assumes none. */
    assumedHouseLoadW: number;
    /** A site meter reading older than this is no reading, s. */
    houseLoadMaxAgeS: number;
    /** Main fuse rating per phase, A; null/absent = no per-phase limit (docs/meter.md). */
    fuseA?: number | null;
    /** Phases of the grid connection (1 or 3; default 3): spreads the assumed house load when currents are not metered. */
    phases?: 1 | 3;
    /** Phases the charger is connected to (1-based, L1 = 1; default [1, 2, 3]). */
    chargerPhases?: number[];
    /** Nominal phase voltage for current/power conversions, V (default 230). */
    nominalVoltageV?: number;
    /** A clear-sky PV forecast for `flex` (src/control/pv-forecast.ts); null/absent = none. */
    pvForecast?: PvForecastConfig | null;
  };
  control: ControlConfig;
  inverter: { driver: 'sim' | 'sunspec' | 'can-bms'; timeoutMs: number; retries: number; reversionS: number; modbus?: Record<string, unknown>; can?: Record<string, unknown>; [k: string]: unknown };
  vehicleLink: { driver: 'sim' | 'everest'; url: string; evseId: string; forwardLimit: boolean; [k: string]: unknown };
  gpio: { driver: 'sim' | 'onoff' | 'none'; [k: string]: unknown };
  uplink: { url: string | null; prefix: string; groups: string[]; stateIntervalS: number; [k: string]: unknown };
  storage: { path: string; [k: string]: unknown };
  /** The local web page (src/ui, docs/web.md); absent in configs built before it existed. `allowedHosts`: names besides the board's own it answers to. */
  ui?: { listen: string | null; publicRead: boolean; maxStreams: number; allowedHosts?: string[] };
  reward: { ratePerKWh: number | null; currency: string; [k: string]: unknown };
  simulation: SimulationConfig;
  /** The site meter: grid power, phase currents, PV (docs/meter.md); null = none (the core assumes `site.assumedHouseLoadW`). */
  siteMeter?: SiteMeterConfig | null;
  /** Temporary homeowner overrides (quick actions), each with an end: src/homeowner/overrides.ts. */
  overrides?: OverridesConfig;
  /** Home Assistant MQTT discovery on a local broker: src/homeassistant, docs/homeassistant.md. */
  homeassistant?: HomeAssistantConfig;
  /** How the car charges on its own: the mode and solar surplus charging (docs/solar.md). */
  charge?: ChargeConfig;
}

/** `site.pvForecast`: the PV installation a clear-sky forecast is made for (src/control/pv-forecast.ts). */
export interface PvForecastConfig {
  /** Installed peak power, Wp (a "6 kWp" roof: 6000). */
  peakW: number;
  /** Latitude, degrees north (south negative). */
  latitudeDeg: number;
  /** Longitude, degrees east (west negative). */
  longitudeDeg: number;
  /** AC out at a high sun per Wp installed (inverter, heat, soiling losses); default 0.85. */
  performanceRatio?: number;
}

/** `charge.mode`: what the wallbox charges the car for on its own (src/control/surplus.ts). */
export type ChargeMode = 'off' | 'now' | 'target' | 'minpv' | 'pv';

export interface ChargeConfig {
  mode: ChargeMode;
  /** The least AC power the charger can run at, W (IEC 61851-1: 6 A a phase, 1380 W on one phase). */
  minPowerW: number;
  /** Surplus that starts surplus charging, W; null = `minPowerW`. */
  startSurplusW: number | null;
  /** Grid import at the minimum power that stops surplus charging, W (evcc disable threshold 0). */
  stopImportW: number;
  /** The start condition must hold this long, s (evcc: 1 min). */
  enableDelayS: number;
  /** The stop condition must hold this long, s (evcc: 3 min). */
  disableDelayS: number;
  /** Least time between switching surplus charging on and off, s (evcc guard: 5 min). */
  guardS: number;
  /** Export kept at the grid connection while following the surplus, W (evcc residualPower). */
  residualPowerW: number;
  /** Surplus charging stops at this SoC, % (the car's own maximum still applies). */
  surplusMaxSocPct: number;
}

/**
 * Quick actions the homeowner takes from the CLI, the local page or Home Assistant. Each ends at `until`
 * (an instant, ISO 8601 with zone, on the calendar clock); an ended one is inert and removed at the next write.
 */
export interface OverridesConfig {
  /** Charge now, at the full allowed power, to `targetSocPct`; no discharge below it until it ends. */
  boost?: { targetSocPct: number; until: string; setAt?: string; by?: OverrideSource } | null;
  /** No V2G (as `vehicle.v2gEnabled: false`) until it ends. */
  pauseV2g?: { until: string; setAt?: string; by?: OverrideSource } | null;
  /** Keep the car at or charge it to `socPct` for a power cut (no discharge for the grid below it) until it ends. */
  backupReserve?: { socPct: number; until: string; setAt?: string; by?: OverrideSource } | null;
}

export interface HomeAssistantConfig {
  /** Home Assistant's broker (mqtt:// or mqtts://); null = no Home Assistant. */
  url: string | null;
  /** False with a url: remove the device from Home Assistant and keep the link down. */
  enabled: boolean;
  /** The installer allows `url` to be the aggregator's broker. */
  shareUplinkBroker: boolean;
  discoveryPrefix: string;
  baseTopic: string;
  username: string | null;
  passwordFile: string | null;
  stateIntervalS: number;
}

/** Which local surface set an override (never the aggregator's uplink). */
export type OverrideSource = 'cli' | 'ui' | 'homeassistant';

export interface SimulationConfig {
  vehicle: { capacityWh: number; socPct: number; maxChargeW: number; maxDischargeW: number };
  inverter: { ratedW: number; efficiency: number };
  houseLoadW: number;
  sheddableLoadsW: number[];
  /** Serve the simulated inverter as a SunSpec Modbus TCP device on 127.0.0.1:servePort. */
  serveInverter: boolean;
  servePort: number;
  /** Publish the simulated car as an EVerest bridge on vehicleLink.url. */
  serveBridge: boolean;
  /**
   * Serve the simulated grid meter (and PV inverter, with simulated PV) as SunSpec devices behind
   * 127.0.0.1:servePort, on the unit ids `siteMeter.modbus` and `siteMeter.pv.modbus` name, next to the
   * inverter (unit 1): one TCP gateway, as in front of an RS-485 bus.
   */
  serveMeter?: boolean;
  /** The served meter's SunSpec model: 201–204 (integer + SF) or 211–214 (float); default 203. */
  meterModel?: number;
  /** Rooftop PV on the simulated site (hal/sim/site.ts `SimPvOptions`; sunrise/sunset in `timezone`). */
  pv?: { peakW: number; performanceRatio?: number; sunrise?: string; sunset?: string; latitudeDeg?: number; longitudeDeg?: number; exportLimitW?: number } | null;
}

/** The `siteMeter` section (hal/meter/index.ts reads it; docs/meter.md). */
export interface SiteMeterConfig {
  driver: 'sunspec' | 'mqtt' | 'sim';
  /** sunspec: the link, shaped like `inverter.modbus`, plus `base` (SunSpec base register; absent/null = probe). */
  modbus?: Record<string, unknown>;
  /** The device counts export as positive W: flip it. */
  invertSign?: boolean;
  timeoutMs?: number;
  retries?: number;
  /** sunspec: a PV inverter (101–103) or PV meter, `{modbus: {...link, base}, invertSign}`. */
  pv?: { modbus?: Record<string, unknown>; invertSign?: boolean } | null;
  /** mqtt: broker URL, topic, JSON path (none = plain number), staleness limit, unit. */
  url?: string;
  topic?: string;
  path?: string | null;
  maxAgeS?: number;
  unit?: 'W' | 'kW';
  pvTopic?: string | null;
  pvPath?: string | null;
  /** mqtt: JSON paths to the phase currents (L1 first) in the grid topic's payload. */
  currentPaths?: string[] | null;
  username?: string | null;
  password?: string | null;
  [k: string]: unknown;
}

/** The part of the config the pure control core reads. */
export type ControlSettings = Pick<Config, 'vehicle' | 'backup' | 'site' | 'control' | 'timezone' | 'overrides' | 'charge'>;
