/**
 * Hardware ports: the small interfaces between the runtime and the devices it drives.
 *
 * Types only. Real drivers (`hal/inverter`, `hal/vehicle`, `hal/gpio`) and simulated ones (`hal/sim`)
 * implement them side by side; one contract suite per port (`test/contract/*.ts`) runs against both.
 *
 * Rules every port follows:
 * - Sign convention: positive W = power into the car (charging), negative W = out of the car.
 * - Times are epoch milliseconds taken from the injected {@link Clock}'s monotonic `nowMs()` (calendar
 *   times such as a departure come from `wallMs()`), never from `Date.now()` directly,
 *   so the same driver runs under the virtual clock in simulations.
 * - No method rejects or throws after `open()` has resolved. A failure (timeout, exception response,
 *   garbage value, vanished device) is recorded in the port's `fault` with its cause, and cleared by the
 *   driver itself when the device answers sanely again. Drivers never decide policy: they report and obey.
 * - `open()` may reject, with an error that names the device and the cause (a serial path that does not
 *   exist, a GPIO line that is busy, `can0` missing); the runtime reports it and stays in `fault`.
 */

/** A driver fault: what went wrong, in words an installer can act on. */
export interface PortFault {
  /** Stable machine code, e.g. `timeout`, `exception`, `garbage`, `disconnected`, `open_failed`. */
  code: string;
  /** Human-readable cause, naming the device and the register/topic/line involved. */
  message: string;
  /** When the fault was first seen (epoch ms). */
  sinceMs: number;
}

/** Unsubscribe function returned by `onChange`. */
export type Unsubscribe = () => void;

/**
 * Time source. The runtime, drivers and simulators take every timestamp and timer from it.
 * The system clock runs in real time; the virtual clock advances only when told to, and fires
 * due timers in time order as it does.
 */
export interface Clock {
  /**
   * Monotonic time, in milliseconds on the epoch scale: it equals the wall clock when the clock is made and
   * then only moves forward at the rate of real time, never stepping when the wall clock is set (NTP catching
   * up, a Pi without an RTC at boot, a homeowner fixing the date). Every age, duration, timeout, debounce,
   * rate and port `atMs` stamp uses this reading.
   */
  nowMs(): number;
  /**
   * Calendar time, epoch milliseconds (`Date.now()` on the board): may step either way. Only calendar things
   * use it: departure times, dispatch `start`/`expiresAt`/`issuedAt`, ledger and event times, rewards by time
   * of day. The core sees it as `Snapshot.wallMs` and notices a step as a change of `wallMs − nowMs`.
   */
  wallMs(): number;
  /** Call `fn` once after `delayMs`; returns a handle for `clearTimer`. */
  setTimer(fn: () => void, delayMs: number): unknown;
  clearTimer(handle: unknown): void;
  /** Resolves after `delayMs` of this clock's time. */
  sleep(delayMs: number): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Inverter

/** Operating state of the power stage (SunSpec 701 InvSt, condensed). */
export type InverterOperatingState = 'off' | 'sleeping' | 'starting' | 'running' | 'throttled' | 'shutting-down' | 'fault' | 'standby' | 'unknown';

/** What the inverter can do; read once at open and refreshed when the device reports a change. */
export interface InverterRatings {
  /** Continuous AC power rating, W (SunSpec 702 WMaxRtg). */
  ratedW: number;
  /** Maximum charge power (into the car), W, positive magnitude (702 WChaRteMaxRtg). */
  maxChargeW: number;
  /** Maximum discharge power (out of the car), W, positive magnitude (702 WDisChaRteMaxRtg). */
  maxDischargeW: number;
  /** One-way AC↔DC conversion efficiency, 0–1, used to turn AC energy into car-side energy. */
  efficiency: number;
  /** Whether the inverter can form an island (702 IntIslandCatRtg INT_ISL_CAPABLE). */
  islandCapable: boolean;
}

/** One timestamped measurement of the inverter. Every optional field is `undefined` when not implemented. */
export interface InverterReading {
  /** When this reading was taken (epoch ms). Its age decides staleness (invariant 3). */
  atMs: number;
  /** AC active power, W; positive = charging the car (the negative of SunSpec 701 W). */
  acPowerW: number;
  /** Lifetime AC energy absorbed from the AC side into the car, Wh (701 TotWhAbs); wraps or resets. */
  importedWh?: number;
  /** Lifetime AC energy injected to the AC side from the car, Wh (701 TotWhInj); wraps or resets. */
  exportedWh?: number;
  /** 701 ConnSt: whether the inverter is connected to the AC bus. */
  connected?: boolean;
  /** 701 DERMode bit 1: the inverter is forming the grid (islanded). */
  gridForming: boolean;
  state: InverterOperatingState;
  /** 701 Alrm bits that are set, by SunSpec symbol (`GRID_DISCONNECT`, `AC_UNDER_VOLT`, ...). */
  alarms: string[];
  /** AC voltage, V (701 LNV or LLV). */
  acVoltageV?: number;
  /** AC frequency, Hz (701 Hz). */
  frequencyHz?: number;
  /** The power setpoint the device reports as in force, W, positive = charging. */
  setpointW?: number;
  /** Storage SoC reported by the inverter (713 SoC / 802 SoC / 124 ChaState), %, when it has one. */
  storageSocPct?: number;
  /**
   * Where `acPowerW` comes from when the device does not measure it itself (the CAN BMS driver: the
   * inverter's own DC frame, the vehicle link's counters, a DC meter), e.g. `inverter 0x305` or `car`.
   * Its age is `atMs` (the measurement's own time), so the stale rule applies to it. Undefined = the
   * inverter measured its AC power (SunSpec 701 W).
   */
  measurementSource?: string;
}

export interface InverterState {
  ratings?: InverterRatings;
  /** Latest good reading; kept (with its old timestamp) while the device is unreachable. */
  reading?: InverterReading;
  fault?: PortFault;
}

/**
 * The bidirectional inverter (power stage).
 *
 * - `refresh()` polls the device once (one tick's worth of reads). At most one poll is in flight: a call
 *   while one runs returns that poll's promise, so polls slower than the tick never queue up.
 * - `setPowerW(w)` commands the active power, positive into the car. Commands do not wait for a poll; the
 *   driver keeps at most one pending command per kind (the latest value wins) and writes pending kinds in
 *   the order they were last issued, so `setGridForming(false)` issued before `setPowerW(w)` reaches the
 *   device first. The driver refreshes the command before any device-side watchdog (e.g. SunSpec 704
 *   WSetRvrtTms) runs out, so if this process dies the device falls back to 0 W by itself. A command
 *   outside the ratings is clamped by the driver and the clamp is visible in the next reading's
 *   `setpointW`. A command the device cannot hold (its scale factor rounds it to 0 or beyond the
 *   register's range) is not written: fault `unrepresentable`, naming the point and scale factor, until a
 *   command it can hold is written.
 * - `setGridForming(on)` switches between grid-following and grid-forming (island). Callers must open and
 *   confirm the grid contactor first (invariant 5); the driver does not check it.
 * - Every method resolves within the driver's call bound (SunSpec: 2 × timeoutMs × (retries + 1)); one
 *   that overruns it resolves anyway and the port reports a `timeout` fault naming what was pending.
 * - Command following (hal/inverter/command-following.ts): once a new setpoint has had 5 s plus its ramp
 *   (20 % of the rating per second) to settle, measured AC power further than max(5 % of the rating,
 *   300 W) from it is fault `not_following` with the cause (wrong sign, nothing, far off; commanded vs
 *   measured). Not checked while grid-forming. It clears when the device follows again.
 * - On a communication fault the driver keeps the last command and re-applies it before clearing the fault.
 */
export interface InverterPort {
  readonly kind: 'inverter';
  /** Connect and discover; rejects with a clear error when the device cannot be found or understood. */
  open(): Promise<void>;
  refresh(): Promise<void>;
  state(): InverterState;
  setPowerW(powerW: number): Promise<void>;
  setGridForming(on: boolean): Promise<void>;
  close(): Promise<void>;
  /** Called when the port's state changes in a way the control loop should see at once (fault, alarm). */
  onChange(listener: () => void): Unsubscribe;
}

// ---------------------------------------------------------------------------------------------
// Vehicle link (ISO 15118 bridge)

/** Where a SoC figure came from. */
export type SocSource = 'vehicle' | 'inverter' | 'tracked' | 'none';

export interface VehicleState {
  /** When the link last heard from the car or the bridge (epoch ms). */
  atMs: number;
  /** Plugged in with a session the car takes part in. */
  connected: boolean;
  /** Present SoC, %, when the car sends one (many AC sessions send none). */
  socPct?: number;
  /**
   * When the car sent `socPct` (epoch ms). A driver never moves it on without a new figure from the car:
   * how long a figure may be used is decided in the core (src/control/soc-tracker.ts).
   */
  socAtMs?: number;
  /** Usable battery capacity, Wh, as the car reports it. */
  capacityWh?: number;
  /** The car's own minimum SoC, %: raises the effective floor. */
  minSocPct?: number;
  /** The car's own target SoC, %. */
  targetSocPct?: number;
  /** The car's maximum SoC, %: no charging above it. */
  maxSocPct?: number;
  /** The car's charge power limit at the car (DC side, before the inverter's losses), W, positive magnitude. */
  maxChargeW?: number;
  /** The car's discharge power limit at the car (DC side), W, positive magnitude; 0 or undefined = no discharge offered. */
  maxDischargeW?: number;
  /**
   * The discharge limit exactly as the CAR sent it, W, positive magnitude; undefined = the car sent none.
   * Never filled from the charger's side: a car that sent nothing has not agreed to be discharged.
   */
  carDischargeLimitW?: number;
  /**
   * What the charger can export, W (e.g. EVerest hardware_capabilities export current × voltage × phases).
   * A fact about the charger, not the car's consent; the core decides whether it may be used.
   */
  chargerExportCapabilityW?: number;
  /** Whether the session negotiated bidirectional power transfer (ISO 15118-20 BPT, CHAdeMO V2H). */
  bidirectional?: boolean;
  /** Departure time the car sent (epoch ms). */
  departureAtMs?: number;
  /** Car-side energy counters for the session, Wh (EVerest session_info charged/discharged_energy_wh). */
  chargedWh?: number;
  dischargedWh?: number;
  fault?: PortFault;
}

/**
 * The car, through an ISO 15118 bridge (or a simulated car).
 *
 * - State updates arrive as the bridge publishes them; `state()` returns the latest merge, every field
 *   optional as the standard allows. A field that arrives malformed is treated as missing (with a warning
 *   in `fault` only when nothing usable arrives at all).
 * - `setPowerLimitW(w)` forwards the runtime's power limit to the bridge so a stack that also controls the
 *   power stage agrees; drivers without such a channel resolve at once.
 */
export interface VehicleLinkPort {
  readonly kind: 'vehicle';
  open(): Promise<void>;
  /** Poll the car if the link is polled; event-driven links resolve at once. */
  refresh(): Promise<void>;
  state(): VehicleState;
  setPowerLimitW(powerW: number): Promise<void>;
  close(): Promise<void>;
  onChange(listener: () => void): Unsubscribe;
}

// ---------------------------------------------------------------------------------------------
// GPIO: grid sense, relays, e-stop

export interface GridSenseState {
  /** Grid voltage present on the grid side of the contactor, after debouncing; undefined = unknown. */
  present?: boolean;
  /** When `present` last changed (epoch ms). */
  changedAtMs?: number;
  fault?: PortFault;
}

/** Grid-sense input. `onChange` fires on every debounced edge, within milliseconds of it. */
export interface GridSensePort {
  readonly kind: 'grid-sense';
  open(): Promise<void>;
  state(): GridSenseState;
  close(): Promise<void>;
  onChange(listener: () => void): Unsubscribe;
}

export interface RelayState {
  /** What the grid contactor was last commanded to (true = closed, house on the grid). */
  contactorCommandClosed: boolean;
  /** The contactor's auxiliary feedback contact; undefined = no feedback line or unknown. */
  contactorFeedbackClosed?: boolean;
  /** When the feedback last changed (epoch ms). */
  feedbackChangedAtMs?: number;
  /** Load-shed relay tiers, index 0 = tier 1 (shed first); true = load powered. */
  loadTiersOn: boolean[];
  fault?: PortFault;
}

/**
 * The grid contactor (with its auxiliary feedback input) and the load-shed relays.
 * Commands resolve once the output line has been written; the contactor's real position is only
 * known from `contactorFeedbackClosed`, which may lag by the contactor's mechanical time.
 */
export interface RelayPort {
  readonly kind: 'relays';
  open(): Promise<void>;
  state(): RelayState;
  setContactor(closed: boolean): Promise<void>;
  /** Switch one load-shed tier (0-based index); true = load powered. */
  setLoadTier(index: number, on: boolean): Promise<void>;
  close(): Promise<void>;
  onChange(listener: () => void): Unsubscribe;
}

export interface EStopState {
  pressed: boolean;
  fault?: PortFault;
}

/** Emergency-stop input; `onChange` fires on every debounced edge. */
export interface EStopPort {
  readonly kind: 'estop';
  open(): Promise<void>;
  state(): EStopState;
  close(): Promise<void>;
  onChange(listener: () => void): Unsubscribe;
}

// ---------------------------------------------------------------------------------------------
// Site meter (grid connection, house, PV)

/**
 * One reading of the site meter. Every figure is optional: a meter reports what it measures, and a figure
 * it does not measure is absent (never 0). All figures of one reading share `atMs`.
 *
 * Signs and derivations:
 * - `gridPowerW`: power at the grid connection point, W, **positive = import** from the grid, negative =
 *   export. It includes the charger, the house and any PV behind the meter. Drivers whose device counts
 *   the other way round convert (SunSpec meters: `siteMeter.invertSign`, docs/meter.md).
 * - `houseLoadW`: the house's own consumption, W (>= 0), excluding the charger and before PV. Only a meter
 *   that measures the house feed itself (the simulated site) reports it. For a grid meter the core derives
 *   it from the same instant's figures: `house = grid − charger AC + PV`, where charger AC is the inverter's
 *   `acPowerW` (positive into the car) and PV is `pvPowerW` when fresh, else 0 (src/control/limits.ts).
 * - `pvPowerW`: PV production, W, AC side, positive = produced (an inverter in standby at night may read a
 *   few W negative). Only where a PV meter or PV inverter is configured.
 * - `phaseCurrentsA`: current per phase at the grid connection point, A, magnitudes, L1 first (one entry
 *   for a single-phase meter). Includes the charger.
 * - `importedWh` / `exportedWh`: the meter's lifetime energy counters at the grid connection point, Wh,
 *   monotonic except across a meter replacement or counter wrap.
 *
 * Rates: a driver's reading is as fresh as its last successful `refresh()` (Modbus: one poll per measurement
 * tick) or its last message (MQTT: whenever the publisher sends). A reading older than the driver's own
 * staleness limit is withdrawn: the figures are removed and `fault` says why, so stale numbers are never
 * reported as current. The core applies `site.houseLoadMaxAgeS` on top.
 */
export interface SiteMeterState {
  /** House consumption excluding the charger, W (>= 0), where the meter measures it directly. */
  houseLoadW?: number;
  /** Grid power, W, positive = import. */
  gridPowerW?: number;
  /** PV production, W (AC), positive = produced. */
  pvPowerW?: number;
  /** When `pvPowerW` was measured (monotonic ms), when it comes from another device or message than the rest. */
  pvAtMs?: number;
  /** The PV source's own fault (a PV inverter that stopped answering), when it is a separate device. */
  pvFault?: PortFault;
  /** Per-phase current at the grid connection point, A (magnitudes), L1 first. */
  phaseCurrentsA?: number[];
  /** Lifetime imported energy, Wh. */
  importedWh?: number;
  /** Lifetime exported energy, Wh. */
  exportedWh?: number;
  /** When the figures were measured (monotonic ms, the clock's `nowMs()` when the answer arrived). */
  atMs?: number;
  /** Why the meter's figures are missing or not to be trusted. */
  fault?: PortFault;
}

/**
 * The site meter: grid import/export (for the connection's import/export and fuse limits), house load
 * (backup planner), PV production (surplus charging). Read-only; `refresh()` polls devices that are polled
 * and is a no-op for pushed sources (MQTT). Every call is time-bounded and never rejects after `open()`.
 *
 * `open()` rejects only for a configuration that cannot work (a key that is wrong). A device or broker that
 * does not answer at start is a fault in `state()`, tried again by the driver: the runtime takes a port that
 * fails to open as a fault of the whole device, and a missing measurement must not stop the charger (the
 * core assumes the house load instead).
 */
export interface SiteMeterPort {
  readonly kind: 'site-meter';
  open(): Promise<void>;
  refresh(): Promise<void>;
  state(): SiteMeterState;
  close(): Promise<void>;
}

/** Every port the runtime drives. Absent optional ports mean the hardware is not installed. */
export interface Ports {
  clock: Clock;
  inverter: InverterPort;
  vehicle: VehicleLinkPort;
  gridSense?: GridSensePort;
  relays?: RelayPort;
  estop?: EStopPort;
  siteMeter?: SiteMeterPort;
}
