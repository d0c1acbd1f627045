/**
 * Types of the pure control core. `decide(snapshot, config, memory, nowMs)` maps these to a Plan.
 * Nothing here refers to a port, a file or a clock.
 */

export type Mode = 'idle' | 'charge' | 'discharge' | 'backup' | 'fault';

export type SocSource = 'vehicle' | 'inverter' | 'tracked' | 'none';

/** A validated dispatch request (contract §1.1); times as epoch ms. */
export interface DispatchRequest {
  id: string;
  powerW: number;
  /** Absent = start when received. */
  startMs?: number;
  durationS: number;
  expiresAtMs?: number;
}

/** What arrives from the aggregator, after validation: a new dispatch or a cancel. */
/** Where a response should also go (MQTT 5 response topic and correlation data of the request). */
export interface ReplyRoute {
  responseTopic: string;
  /** Correlation data, base64. */
  correlationData?: string;
}

export type DispatchCommand =
  | { kind: 'dispatch'; request: DispatchRequest; receivedMs: number; source: string; body: string; replyTo?: ReplyRoute }
  | { kind: 'cancel'; id: string; receivedMs: number; source: string; replyTo?: ReplyRoute };

export type DispatchStatus = 'accepted' | 'rejected' | 'active' | 'curtailed' | 'completed' | 'cancelled' | 'superseded' | 'expired';

export const TERMINAL_STATUSES: ReadonlySet<DispatchStatus> = new Set(['rejected', 'completed', 'cancelled', 'superseded', 'expired']);

/** Reason codes of contract §1.1, plus the device's own additions (docs/mqtt.md). */
export type ReasonCode =
  | 'invalid' | 'expired' | 'duplicate_conflict' | 'v2g_disabled' | 'no_vehicle' | 'floor' | 'backup_active' | 'fault'
  | 'unknown_id' | 'already_finished' | 'departure' | 'max_soc' | 'stale_data' | 'grid_limit' | 'vehicle_limit'
  | 'inverter_limit' | 'homeowner_limit' | 'soc_unknown' | 'not_bidirectional' | 'estop' | 'grid_down'
  /** The car never agreed to discharge and `vehicle.dischargeWithoutCarConsent` is off. */
  | 'no_consent'
  /** Storage cannot write: nothing runs that cannot be settled (invariant 6). */
  | 'storage'
  /** The inverter reports a grid trip (over-voltage, frequency, ...) while the grid is present: zero power, on the grid. */
  | 'grid_trip';

export interface DispatchResponse {
  id: string;
  status: DispatchStatus;
  reason?: ReasonCode | string;
  acceptedW?: number;
  deliveredWh?: number;
  /** Where the request came from (`device` or `group:<name>`), so a response can go back the same way. */
  source?: string;
  replyTo?: ReplyRoute;
}

/** One dispatch as the core tracks it. */
export interface DispatchRecord {
  id: string;
  request: DispatchRequest;
  /** Canonical request body, for the duplicate-id rule. */
  body: string;
  source: string;
  replyTo?: ReplyRoute;
  receivedMs: number;
  startMs: number;
  endMs: number;
  status: DispatchStatus;
  reason?: string;
  acceptedW?: number;
  /** When it started delivering (first tick `active`). */
  startedMs?: number;
  /** When it reached a terminal status. */
  endedMs?: number;
  /** AC-side energy out of the car during the dispatch, Wh (>= 0). */
  exportedWh: number;
  /** AC-side energy into the car during the dispatch, Wh (>= 0). */
  importedWh: number;
  /** Car-side energy, Wh, signed: positive = into the car. */
  carSideWh: number;
  /** Seconds the device was down while this dispatch's window was open (it resumed after a restart). */
  downtimeS?: number;
  /** Since when the power measured has been short of `acceptedW` by more than the tolerance (dispatch.ts). */
  shortSinceMs?: number;
}

/** Energy moved since the previous decide() call, measured by the runtime (see metering.ts). */
export interface EnergyDelta {
  /** AC energy out of the car, Wh (>= 0). */
  exportedWh: number;
  /** AC energy into the car, Wh (>= 0). */
  importedWh: number;
  /** Car-side energy, signed Wh (positive = into the car). */
  carSideWh: number;
}

/** Everything the core sees at one instant. Times are epoch ms; ages are derived from `nowMs`. */
export interface Snapshot {
  /**
   * Calendar time of this snapshot (the clock's `wallMs()`), epoch ms. `decide()`'s `nowMs` is the monotonic
   * clock: ages, durations and timers use it; departure times, dispatch windows and ledger times use this.
   * Undefined = the two clocks agree (`nowMs` is also the calendar time). Read it with `calendarMs()`.
   */
  wallMs?: number;
  vehicle: {
    connected: boolean;
    socPct?: number;
    /** When the SoC was measured (or last tracked from a measurement). */
    socAtMs?: number;
    socSource: SocSource;
    capacityWh?: number;
    minSocPct?: number;
    maxSocPct?: number;
    targetSocPct?: number;
    departureAtMs?: number;
    maxChargeW?: number;
    maxDischargeW?: number;
    /** False when the session did not negotiate bidirectional transfer. Undefined = not reported. */
    bidirectional?: boolean;
    /**
     * The charger's export capability, W (EVerest hardware_capabilities): a fact about the charger, not
     * the car's consent. Used as the discharge limit only when `vehicle.dischargeWithoutCarConsent` allows
     * discharging a car that sent no limit of its own (`maxDischargeW` is the car's).
     */
    chargerExportCapabilityW?: number;
    /** When the link last heard anything. */
    atMs?: number;
    fault?: string;
  };
  inverter: {
    atMs?: number;
    powerW?: number;
    ratedW?: number;
    maxChargeW?: number;
    maxDischargeW?: number;
    efficiency?: number;
    gridForming?: boolean;
    /** 701 ConnSt. */
    connected?: boolean;
    /**
     * @deprecated Not read by the core any more: which alarms mean a lost grid is the core's decision
     * (`alarms` against `backup.gridLossAlarms`, src/control/grid-loss.ts).
     */
    gridAlarm?: boolean;
    /**
     * SunSpec 701 `Alrm` bits that are set, by symbol (`GRID_DISCONNECT`, `AC_UNDER_VOLT`, `AC_OVER_VOLT`,
     * `OVER_FREQUENCY`, ...), as of `atMs`. Undefined = the driver does not report alarms (not "none").
     */
    alarms?: string[];
    islandCapable?: boolean;
    fault?: string;
  };
  grid: {
    /** Grid sense line, undefined when there is none or it is unknown. */
    sensePresent?: boolean;
    fault?: string;
  };
  contactor: {
    /** A grid contactor is wired (relay port present). Without one the house cannot be islanded. */
    installed: boolean;
    /** Feedback contact; undefined = no feedback line. */
    feedbackClosed?: boolean;
    commandedClosed: boolean;
  };
  estopPressed: boolean;
  /** House consumption, W (excluding the charger); undefined = not metered. */
  houseLoadW?: number;
  /** When `houseLoadW` was measured (epoch ms); older than `site.houseLoadMaxAgeS` = not metered. */
  houseLoadAtMs?: number;
  /** The site meter's fault, if any: none of its readings (house, grid, phase currents) is then used. */
  houseLoadFault?: string;
  /**
   * Power at the grid connection point from the site meter, W, signed: positive = import from the grid,
   * negative = export to it. Includes the charger and PV. Undefined = no meter reads it.
   */
  gridPowerW?: number;
  /** When `gridPowerW` was measured (monotonic epoch ms); older than `site.houseLoadMaxAgeS` = not metered. */
  gridPowerAtMs?: number;
  /** PV production, W (>= 0, AC side); undefined = no PV meter or PV inverter configured. */
  pvPowerW?: number;
  /** When `pvPowerW` was measured (monotonic epoch ms). */
  pvPowerAtMs?: number;
  /** The PV reading's fault (it may come from another device than the grid meter): `pvPowerW` is then not used. */
  pvPowerFault?: string;
  /**
   * Current per phase at the grid connection point, A, magnitude (L1, L2, L3 for a three-phase meter; one
   * entry for single phase). Includes the charger. Undefined = the meter does not report currents.
   */
  phaseCurrentsA?: number[];
  /** When `phaseCurrentsA` was measured (monotonic epoch ms). */
  phaseCurrentsAtMs?: number;
  /** Whether the store can write; undefined = not known to have failed. */
  storage?: { writable: boolean; fault?: string };
  /** Number of load-shed tiers installed. */
  loadTierCount: number;
  /** Dispatch commands received since the last decide(). */
  commands: DispatchCommand[];
  /** Energy moved since the last decide(). */
  energy: EnergyDelta;
  /** Config problems or other runtime faults (e.g. a port that failed to open). */
  runtimeFault?: string;
}

export type IslandPhase = 'on-grid' | 'opening' | 'islanded' | 'dropped' | 'rejoining';

/**
 * What the store kept from the previous run, handed to `initialMemory(nowMs, restored)` at a start.
 * The core reconciles it with what the contactor and the inverter show before it acts on it.
 */
export interface RestoredState {
  island?: Memory['island'];
  /** When that state was saved (epoch ms). */
  savedAtMs?: number;
}

/** State the core carries from one call to the next. Start from `initialMemory()`. */
export interface Memory {
  mode: Mode;
  modeSinceMs: number;
  /** When inputs first went stale / a driver went into error, if they still are. */
  unhealthySinceMs?: number;
  /** When inputs were last seen healthy again after a fault (for `faultClearS`). */
  healthySinceMs?: number;
  faultReason?: string;
  island: {
    phase: IslandPhase;
    sinceMs: number;
    /** When the grid was lost (start of the outage). */
    outageStartMs?: number;
    /** Grid seen continuously present since (for the reconnect delay). */
    gridStableSinceMs?: number;
    /** When the house was last back on the grid (for the rejoin ramp). */
    rejoinedAtMs?: number;
  };
  /** Load-shed tiers: true = powered. */
  loadTiersOn: boolean[];
  /** Estimated load of each tier, W, learned when it was shed or restored. */
  tierLoadW: (number | undefined)[];
  lastShedChangeMs?: number;
  /** Smoothed house load, W. */
  houseLoadAvgW?: number;
  /** Load measured just before a tier was shed, to learn that tier's load on the next call. */
  pendingShed?: { tier: number; loadBeforeW: number };
  dispatches: DispatchRecord[];
  lastSetpointW: number;
  /** The dispatch delivering since the last call, whose energy the next call's delta belongs to. */
  activeDispatchId?: string;
  /** Since when the contactor feedback disagrees with its command. */
  contactorMismatchSinceMs?: number;
  /** When decide() last ran (for smoothing). */
  lastTickMs?: number;
  /**
   * The calendar minus the monotonic clock at the last decision, ms: a change of it by more than
   * `CLOCK_STEP_MIN_MS` is a step of the wall clock (an event; the running dispatch's window moves with it).
   */
  wallOffsetMs?: number;
  /** The store could not write at the last decision (its `storage` events are said on each change). */
  storageDown?: boolean;
  /** Charging toward the departure target has started and holds until the target is reached. */
  chargeLatched: boolean;
  /** True when the departure target cannot be reached any more (reported in state). */
  departureAtRisk: boolean;
  /** The snapshot fields last found unusable (non-finite, out of range), to report a change once. */
  inputIssues?: string;
  /** The dispatch whose command the inverter could not represent or did not follow: held at zero until it ends. */
  inverterRefusedId?: string;
  /** The homeowner's quick actions in force at the last decision (src/control/overrides.ts), to say a change once. */
  overridesKey?: string;
  /**
   * Present from a start until the core has seen a fresh inverter reading and the contactor's state
   * (start-up reconciliation, docs/architecture.md): zero power, no grid-forming, an open contactor stays open.
   */
  startup?: {
    sinceMs: number;
    restored?: Memory['island'];
    savedAtMs?: number;
    /** The store gave an island state that is not one (unknown phase, non-numeric time): ignored, and said. */
    unusable?: boolean;
  };
  /** Grid-loss policy state (src/control/grid-loss.ts). */
  gridLoss?: {
    /** Since when a listed grid-loss alarm has been reported without a break (debounce). */
    alarmSinceMs?: number;
    /** A grid trip with the grid present is going on (its event was sent). */
    trip?: boolean;
  };
  /** Whether the previous plan commanded grid-forming; undefined after a start (it may still be on). */
  lastGridForming?: boolean;
  /**
   * When the current run of plans without grid-forming began (the first plan after forming, or after a
   * start). The interlock trusts only an inverter reading taken after it (src/control/interlock.ts).
   */
  formingOffAtMs?: number;
  /** Solar surplus charging (src/control/surplus.ts); timers on the monotonic clock. Undefined = off. */
  surplus?: {
    /** Surplus charging is on. */
    on: boolean;
    /** Since when the start condition (off) or the stop condition (on) has held without a break. */
    pendingSinceMs?: number;
    /** When it last switched on or off (the guard counts from here). */
    switchedAtMs?: number;
    /** `charge.mode` at the last decision: a change drops the departure latch the old mode may have set. */
    mode?: 'off' | 'now' | 'target' | 'minpv' | 'pv';
  };
}

export interface Floors {
  dischargeFloorPct: number;
  backupFloorPct: number;
  /** The lowest SoC from which the departure target is still reachable, %, or undefined. */
  departureFloorPct?: number;
  /** The floor a homeowner override in force sets (boost target, backup reserve), %, or undefined. */
  overrideFloorPct?: number;
  effectiveFloorPct: number;
}

export interface PowerLimits {
  /** Largest charge power allowed now, W (>= 0). */
  maxChargeW: number;
  /** Largest discharge power allowed now, W, positive magnitude. */
  maxDischargeW: number;
  /** Which limit bounds each direction. */
  chargeLimitedBy: string;
  dischargeLimitedBy: string;
}

export interface CoreEvent {
  kind: string;
  severity: 'info' | 'warning' | 'alarm';
  message: string;
}

export interface BackupStatus {
  active: boolean;
  phase: IslandPhase;
  /** Hours the car can still carry the house above the backup floor, at the smoothed load. */
  hoursLeft?: number;
  /** Hours still wanted to reach `backup.targetHours` from the outage start. */
  hoursWanted?: number;
  shedTiers: number[];
  outageStartMs?: number;
}

export interface Plan {
  mode: Mode;
  /** Power setpoint, W, positive into the car. */
  setpointW: number;
  gridForming: boolean;
  contactorClosed: boolean;
  loadTiersOn: boolean[];
  floors: Floors;
  limits: PowerLimits;
  activeDispatchId?: string;
  backup: BackupStatus;
  /** Why the plan is what it is, most important first (`floor`, `stale_data`, ...). */
  reasons: string[];
  responses: DispatchResponse[];
  events: CoreEvent[];
  /** Dispatches that reached a terminal status in this call (for settlement). */
  finished: DispatchRecord[];
  /** What the aggregator may ask for now (contract §1 `flex`). */
  flex: {
    maxDischargeW: number; maxChargeW: number; dischargeableWh: number;
    /** Room the aggregator may fill from the grid, AC Wh: the battery's room less `pvForecastWh`. */
    chargeableWh: number; untilMs?: number;
    /** PV the forecast (`site.pvForecast`) expects the car to take before `untilMs` (or within 24 h), AC Wh; 0 without one. */
    pvForecastWh: number;
  };
  departureAtMs?: number;
  departureAtRisk: boolean;
  memory: Memory;
}
