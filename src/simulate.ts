/**
 * `wallbox simulate`: the real control core and runtime, driven by a simulated home under the virtual
 * clock, as fast as the CPU allows. Scenario format: contract §3.1, additions in docs/simulation.md.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { Ajv } from 'ajv';
import { join } from 'node:path';
import { VirtualClock } from '../hal/sim/virtual-clock.ts';
import { SimSite } from '../hal/sim/site.ts';
import { Incarnation } from '../hal/sim/incarnation.ts';
import type { Clock, InverterPort, Ports } from '../hal/ports.ts';
import { startScenarioCan } from '../hal/sim/can-home.ts';
import type { OutageRecord, UnsafeClose } from '../hal/sim/safety-monitor.ts';
import { openStore, type LedgerRow, type Store } from './store/index.ts';
import { ConfigError, PROJECT_ROOT, loadConfig } from './config/load.ts';
import type { Config } from './config/types.ts';
import type { DispatchResponse, Plan, Snapshot } from './control/types.ts';
import { isoUtc } from './contract.ts';
import { Runtime } from './runtime.ts';
import { parseDispatchPayload } from './uplink/codec.ts';

export interface ScenarioEvent {
  at: number;
  dispatch?: Record<string, unknown>;
  cancel?: string;
  gridDown?: true;
  gridUp?: true;
  unplug?: true;
  plug?: boolean | { socPct?: number; capacityWh?: number };
  estop?: boolean;
  contactorStuck?: 'closed' | 'open' | null;
  linkFrozen?: boolean;
  inverterFrozen?: boolean;
  /** The runtime is killed (no cleanup) and built again from its store; the devices keep their state. */
  restart?: true;
  /** Every call to the inverter takes its full timeout and then fails (true), or it answers again (false). */
  inverterHangs?: boolean;
  /** The SunSpec 701 alarm bits the inverter reports from now on (`[]` clears them). */
  inverterAlarm?: string[];
  /** A config reload: these keys merged over the scenario's `config`, validated like a config file. */
  reload?: Record<string, unknown>;
  /**
   * The wall clock jumps by this many seconds (either sign) while the monotonic clock runs on: NTP stepping
   * the board's clock, a Pi without an RTC setting its date at boot.
   */
  clockStep?: number;
  /** Share of the clear sky reaching the panels from now on, 0..1 (a cloud: 0.2; clear again: 1). */
  pvFactor?: number;
}

export interface Scenario {
  description?: string;
  start?: string;
  timezone?: string;
  tickS?: number;
  vehicle?: { capacityWh?: number; socPct?: number; maxChargeW?: number; maxDischargeW?: number; connected?: boolean; bidirectional?: boolean; reportsSoc?: boolean; reportsCapacity?: boolean; minSocPct?: number; taperStartPct?: number };
  /** `can`: the runtime drives the simulated inverter over CAN (the keys of `inverter.can`, docs/can.md). */
  inverter?: { ratedW?: number; efficiency?: number; islandCapable?: boolean; formingExitDelayMs?: number; hangMs?: number; can?: Record<string, unknown> };
  config?: Record<string, unknown>;
  houseLoadW?: number | [number, number][];
  sheddableLoadsW?: number[];
  /** Rooftop PV: a clear-sky day of this peak; sunrise and sunset "HH:MM" in the scenario's zone. */
  pv?: { peakW: number; performanceRatio?: number; sunrise?: string; sunset?: string; exportLimitW?: number };
  contactorDelayMs?: number;
  durationS: number;
  events?: ScenarioEvent[];
  sampleS?: number;
  expect?: Record<string, unknown>;
}

export interface SimulationSample {
  t: number;
  socPct: number | null;
  powerW: number;
  setpointW: number;
  houseLoadW: number;
  /** PV production and grid power at the connection point (positive = import), W. */
  pvW: number;
  gridW: number;
  /** Load-shed tiers switched off (1-based). */
  shedTiers: number[];
  effectiveFloorPct: number;
  dischargeFloorPct: number;
  backupFloorPct: number;
  gridUp: boolean;
  mode: string;
}

export interface SimulationSummary {
  scenario?: string;
  start: string;
  durationS: number;
  exportedWh: number;
  importedWh: number;
  carSideWh: number;
  minSocPct: number;
  finalSocPct: number;
  floorBreaches: number;
  outageS: number;
  outageServedS: number;
  unservedWh: number;
  essentialUnservedWh: number;
  hoursCovered: number;
  /** PV produced, Wh (0 without PV). */
  pvWh: number;
  /** PV the export limiter threw away, Wh. */
  pvCurtailedWh: number;
  /** Where the car's energy came from (AC side), Wh: PV beyond the house's own load, and the grid. */
  carFromPvWh: number;
  carFromGridWh: number;
  /** Energy at the grid connection point, Wh. */
  gridImportWh: number;
  gridExportWh: number;
  /** Times the car started drawing power (its AC power going from none to charging), from the inverter's physics: what the guard keeps few. */
  chargeStarts: number;
  /** PV used on site (house and car) / PV produced, %; null without PV. */
  selfConsumptionPct: number | null;
  /** Reward for the energy delivered to dispatches at `reward.ratePerKWh`, in `reward.currency`; null without a rate. */
  reward: { amount: number; currency: string } | null;
  dispatches: { id: string; status: string; reason: string | null; deliveredWh: number | null }[];
  departures: { at: string; socPct: number; targetPct: number }[];
  modes: Record<string, number>;
  events: number;
  ticks: number;
  /** Physical counters (invariant 5), from the simulated devices, never from the plans. */
  unsafeContactorCloses: number;
  backfeedS: number;
  islandings: number;
  maxGridLossToContactorOpenMs: number | null;
  /** Seconds the grid was there and the house had neither it nor the car. */
  darkWithGridS: number;
  /** The physical state at the end: grid, the contactor's main contact, the inverter forming. */
  final: { gridUp: boolean; contactClosed: boolean; gridForming: boolean };
  restarts: number;
  wallMs: number;
}

export interface SimulationResult {
  summary: SimulationSummary;
  samples: SimulationSample[];
  responses: (DispatchResponse & { atS: number })[];
  eventLog: { atS: number; kind: string; severity: string; message: string }[];
  /** Every actuator command in order, for sequence checks. */
  site: SimSite;
  config: Config;
  /** What the safety monitor saw: why each unsafe close was unsafe, and each outage's contactor timing. */
  safety: { unsafeCloses: UnsafeClose[]; outages: OutageRecord[] };
  /** The scenario that ran. */
  scenario: Scenario;
  /** The ledger rows in the store at the end (after the clean stop settled what was running). */
  ledger: LedgerRow[];
}

let scenarioValidator: ReturnType<Ajv['compile']> | undefined;

/** Parse and check a scenario; every problem is named by its path. */
export function parseScenario(input: unknown, source = '(scenario)'): Scenario {
  if (!scenarioValidator) {
    const ajv = new Ajv({ allErrors: true, strict: false, validateFormats: false });
    scenarioValidator = ajv.compile(JSON.parse(readFileSync(join(PROJECT_ROOT, 'config/scenario.schema.json'), 'utf8')));
  }
  if (!scenarioValidator(input)) {
    const problems = (scenarioValidator.errors ?? []).map((e) => {
      const at = e.instancePath.replace(/^\//, '').replace(/\//g, '.') || '(root)';
      if (e.keyword === 'additionalProperties') return `${at === '(root)' ? '' : at + '.'}${(e.params as { additionalProperty: string }).additionalProperty}: unknown key`;
      return `${at}: ${e.message}`;
    });
    throw new ConfigError([...new Set(problems)], source);
  }
  const sc = input as Scenario;
  const problems: string[] = [];
  if (sc.start !== undefined && Number.isNaN(Date.parse(sc.start))) problems.push(`start: "${sc.start}" is not an ISO 8601 date-time`);
  if (sc.timezone !== undefined) {
    try {
      new Intl.DateTimeFormat('en-US', { timeZone: sc.timezone });
    } catch {
      problems.push(`timezone: "${sc.timezone}" is not an IANA time zone`);
    }
  }
  (sc.events ?? []).forEach((e, i) => {
    if (e.at > sc.durationS) problems.push(`events.${i}.at: ${e.at} is after durationS (${sc.durationS})`);
    if (e.reload) {
      try {
        scenarioConfig(sc, e.reload);
      } catch (err) {
        const detail = err instanceof ConfigError ? err.problems.join('; ') : (err as Error).message;
        problems.push(`events.${i}.reload: ${detail}`);
      }
    }
    (e.inverterAlarm ?? []).forEach((name, j) => {
      if (!alarmSymbols().includes(name)) problems.push(`events.${i}.inverterAlarm.${j}: "${name}" is not a SunSpec 701 alarm (one of ${alarmSymbols().join(', ')})`);
    });
    if (e.dispatch) {
      // the same validation as a dispatch arriving over MQTT (times are checked against the scenario's clock when it runs)
      const r = parseDispatchPayload(Buffer.from(JSON.stringify(e.dispatch)), { nowMs: scenarioStartMs(sc) + e.at * 1000, source: 'scenario' });
      if (!r.ok) problems.push(`events.${i}.dispatch${r.field ? `.${r.field}` : ''}: ${r.message}`);
    }
  });
  if (problems.length) throw new ConfigError(problems, source);
  return sc;
}

let alarmNames: string[] | undefined;

/** The SunSpec 701 `Alrm` symbols, from the model definition the driver uses. */
export function alarmSymbols(): string[] {
  if (!alarmNames) {
    const model = JSON.parse(readFileSync(join(PROJECT_ROOT, 'hal/inverter/sunspec/models/model_701.json'), 'utf8')) as { group: ModelGroup };
    const find = (g: ModelGroup): string[] | undefined => {
      const p = g.points?.find((x) => x.name === 'Alrm');
      if (p?.symbols) return p.symbols.map((x) => x.name);
      for (const sub of g.groups ?? []) {
        const r = find(sub);
        if (r) return r;
      }
      return undefined;
    };
    alarmNames = find(model.group) ?? [];
  }
  return alarmNames;
}

interface ModelGroup {
  points?: { name: string; symbols?: { name: string }[] }[];
  groups?: ModelGroup[];
}

const processStartMs = Math.floor(Date.now() / 1000) * 1000;

/** Scenario time zero: its `start`, else when this process started (so checks and the run agree). */
export function scenarioStartMs(sc: Scenario): number {
  return sc.start ? Date.parse(sc.start) : processStartMs;
}

export function loadScenarioFile(path: string): Scenario {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError([`cannot read file: ${(e as Error).message}`], path);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ConfigError([`not valid JSON: ${(e as Error).message}`], path);
  }
  return parseScenario(json, path);
}

/**
 * The controlling process as the simulation sees it: the runtime of the current incarnation, its store,
 * and a way to kill it and build it again (a restart) while the simulated devices keep their state.
 */
export class SimulatedProcess {
  runtime!: Runtime;
  restarts = 0;
  /** The ledger as the store held it after the clean stop at the end. */
  ledger: LedgerRow[] = [];
  /** The config a process starting now reads. */
  config!: Config;
  private incarnation!: Incarnation;
  private starting?: Promise<void>;
  private readonly stores: Store[] = [];
  private readonly dir: string;
  private readonly storePath: string;
  /** Each process life's inverter port, when it is not the simulated inverter itself (the CAN driver). */
  inverterFor?: (clock: Clock) => InverterPort;

  constructor(
    private readonly site: SimSite,
    private readonly build: (ports: Ports, store: Store, config: Config) => Runtime,
    private readonly timezone: string | null,
  ) {
    this.dir = mkdtempSync(join(tmpdir(), 'wallbox-sim-'));
    this.storePath = join(this.dir, 'wallbox.db');
  }

  /** Open the store and start the first runtime (returns once it has started). */
  async start(): Promise<void> {
    this.spawn();
    await this.starting;
  }

  private spawn(): void {
    this.incarnation = new Incarnation(this.site.clock);
    const store = openStore(this.storePath, { timezone: this.timezone, nowMs: () => this.site.clock.nowMs() });
    this.stores.push(store);
    const ports = this.site.ports(this.incarnation.clock);
    if (this.inverterFor) ports.inverter = this.inverterFor(this.incarnation.clock);
    this.runtime = this.build(this.incarnation.ports(ports), this.incarnation.store(store), this.config);
    const starting = this.runtime.start().finally(() => {
      if (this.starting === starting) this.starting = undefined;
    });
    this.starting = starting;
  }

  /** Kill the running process without any cleanup and start a new one on the same store file. */
  restart(): void {
    this.incarnation.kill();
    this.restarts++;
    this.spawn();
  }

  /** A config reload reaches the running process and every later one (a restarted process reads the file). */
  reload(config: Config): void {
    this.config = config;
    this.whenStarted((r) => r.applyConfig(config));
  }

  /** Run `fn` against the runtime once it has started (a process takes no input before it is up). */
  whenStarted(fn: (r: Runtime) => void): void {
    const r = this.runtime;
    if (this.starting) void this.starting.then(() => this.runtime === r && fn(r));
    else fn(r);
  }

  /**
   * Resolves once the current runtime has nothing to do that does not wait on the virtual clock. A start
   * still running after a turn of the event loop waits on the clock (a port opening with its bound or
   * back-off): awaiting it here would never return.
   */
  async settled(): Promise<void> {
    if (this.starting) {
      let started = false;
      void this.starting.then(() => (started = true));
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (!started) return;
    }
    await this.runtime.settled();
  }

  /** Stop the current runtime cleanly; drive the clock while it needs it (a port may wait on it). */
  async stop(clock: VirtualClock): Promise<void> {
    const stopping = this.settled().then(() => this.runtime.stop());
    await driveUntil(clock, stopping);
    try {
      this.ledger = this.stores[this.stores.length - 1]?.ledger() ?? [];
    } catch {
      // a store that cannot be read leaves the ledger empty; the summary's figures come from the devices
    }
    this.stores.forEach((st, i) => {
      try {
        // a killed process's store is dropped as a kill leaves it (what it had not written is lost)
        if (i < this.stores.length - 1) st.db.close();
        else st.close();
      } catch {
        // closing is best effort: the directory goes next
      }
    });
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function deepMerge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = isObject(v) && isObject(out[k]) ? deepMerge(out[k] as Record<string, unknown>, v) : v;
  return out;
}

/** The config a scenario runs with (its `config` over the defaults, simulated drivers), with a reload's keys on top. */
export function scenarioConfig(sc: Scenario, reload?: Record<string, unknown>): Config {
  const cfg = deepMerge(sc.config ?? {}, reload ?? {});
  return loadConfig(null, {
    ...cfg,
    timezone: sc.timezone ?? (cfg as { timezone?: string }).timezone ?? null,
    control: { ...((cfg.control as object) ?? {}), tickS: sc.tickS ?? 1 },
    inverter: { driver: 'sim' },
    vehicleLink: { driver: 'sim' },
    uplink: { url: null },
  });
}

/** Run a scenario to the end under the virtual clock. */
export async function runScenario(sc: Scenario, opts: { name?: string } = {}): Promise<SimulationResult> {
  const wallStart = performance.now();
  const startMs = scenarioStartMs(sc);
  const tickS = sc.tickS ?? 1;
  const config = scenarioConfig(sc);
  const clock = new VirtualClock(startMs);
  const v = sc.vehicle ?? {};
  const inverterCfg = config.inverter as { timeoutMs?: number; retries?: number };
  const site = new SimSite({
    clock,
    vehicle: {
      capacityWh: v.capacityWh ?? 40000, socPct: v.socPct ?? 80, maxChargeW: v.maxChargeW ?? 11000, maxDischargeW: v.maxDischargeW ?? 11000,
      connected: v.connected ?? true, bidirectional: v.bidirectional ?? true, minSocPct: v.minSocPct, taperStartPct: v.taperStartPct,
    },
    inverter: {
      ratedW: sc.inverter?.ratedW ?? 11000, efficiency: sc.inverter?.efficiency ?? 0.95, islandCapable: sc.inverter?.islandCapable,
      formingExitDelayMs: sc.inverter?.formingExitDelayMs,
      // a hanging device costs the driver its whole timeout on every try
      hangMs: sc.inverter?.hangMs ?? (inverterCfg.timeoutMs ?? 1000) * ((inverterCfg.retries ?? 1) + 1),
    },
    houseLoadW: sc.houseLoadW ?? 0,
    sheddableLoadsW: sc.sheddableLoadsW,
    pv: sc.pv ? { ...sc.pv, timeZone: config.timezone ?? 'UTC' } : undefined,
    contactorDelayMs: sc.contactorDelayMs ?? 50,
    reconnectDelayS: config.backup.reconnectDelayS,
  });
  if (v.reportsSoc === false) site.link.faults.noSoc = true;
  if (v.reportsCapacity === false) site.link.faults.noCapacity = true;

  const responses: SimulationResult['responses'] = [];
  const eventLog: SimulationResult['eventLog'] = [];
  const samples: SimulationSample[] = [];
  const modes: Record<string, number> = {};
  const dispatchFinal = new Map<string, DispatchResponse>();
  const departures: SimulationSummary['departures'] = [];
  let minSoc = site.car.socPct;
  let chargeStarts = 0;
  let wasCharging = false;
  let floorBreaches = 0;
  let ticks = 0;
  let lastDepartureMs: number | undefined;
  let lastTarget = config.vehicle.targetSocPct;
  const sampleEveryS = sc.sampleS ?? Math.max(tickS, Math.ceil(sc.durationS / 1500));
  let nextSampleMs = startMs;

  const onTick = (plan: Plan, s: Snapshot) => {
    const now = clock.nowMs();
    const soc = site.car.socPct;
    ticks++;
    // a start: the car's AC power from (about) nothing to charging, as the inverter delivers it
    const charging = site.inverter.acPowerW > 50;
    if (charging && !wasCharging) chargeStarts++;
    wasCharging = charging;
    minSoc = Math.min(minSoc, soc);
    modes[plan.mode] = (modes[plan.mode] ?? 0) + 1;
    // a breach: the car still giving energy while below the floor that applies (tolerance: one tick's energy)
    const floor = plan.mode === 'backup' ? plan.floors.backupFloorPct : plan.floors.effectiveFloorPct;
    const discharging = (s.inverter.powerW ?? 0) < -1;
    const tolPct = (((Math.abs(s.inverter.powerW ?? 0) * tickS) / 3600) / site.car.capacityWh) * 100 + 1e-6;
    if (discharging && soc < floor - tolPct && plan.mode !== 'charge') floorBreaches++;
    // a departure is calendar time: the car leaves when the (possibly stepped) wall clock shows it
    if (lastDepartureMs !== undefined && clock.wallMs() >= lastDepartureMs) {
      departures.push({ at: isoUtc(lastDepartureMs), socPct: Math.round(soc * 10) / 10, targetPct: lastTarget });
      lastDepartureMs = undefined;
    }
    if (plan.departureAtMs !== undefined && site.car.connected) {
      lastDepartureMs = plan.departureAtMs;
      lastTarget = config.vehicle.targetSocPct;
    }
    if (now >= nextSampleMs) {
      nextSampleMs = now + sampleEveryS * 1000;
      samples.push({
        t: (now - startMs) / 1000, socPct: site.car.connected ? Math.round(soc * 100) / 100 : null, powerW: Math.round(site.inverter.acPowerW),
        setpointW: plan.setpointW, houseLoadW: site.houseDemandW(), pvW: Math.round(site.pvPowerW()), gridW: Math.round(site.gridPowerW()), shedTiers: plan.backup.shedTiers, effectiveFloorPct: Math.round(plan.floors.effectiveFloorPct * 100) / 100,
        dischargeFloorPct: plan.floors.dischargeFloorPct, backupFloorPct: plan.floors.backupFloorPct, gridUp: site.gridUp, mode: plan.mode,
      });
    }
  };

  // before the process (and its temporary store) exists: a bad inverter.can is refused with nothing to clean up
  const can = sc.inverter?.can ? await startScenarioCan(site, clock, sc.inverter.can, { efficiency: sc.inverter.efficiency ?? 0.95, socMaxAgeS: config.control.socMaxAgeS, base: config.inverter.can ?? {} }) : undefined;
  const proc = new SimulatedProcess(
    site,
    (ports, store, cfg) =>
      new Runtime({
        ports,
        config: cfg,
        store,
        onTick,
        onResponse: (r) => {
          responses.push({ ...r, atS: (clock.nowMs() - startMs) / 1000 });
          dispatchFinal.set(r.id, r);
        },
        onEvent: (e, atMs) => eventLog.push({ atS: (atMs - startMs) / 1000, ...e }),
      }),
    config.timezone ?? null,
  );
  proc.config = config;
  proc.inverterFor = can?.driverFor;

  const events = [...(sc.events ?? [])].map((e, i) => ({ ...e, i })).sort((a, b) => a.at - b.at || a.i - b.i);
  for (const e of events) clock.setTimer(() => applyEvent(e, site, proc, clock, sc), e.at * 1000);
  site.startPhysics(tickS * 1000);
  await driveUntil(clock, proc.start());

  await runVirtual(clock, proc, startMs + sc.durationS * 1000);
  site.stopPhysics();
  const safety = { ...site.monitor.counters(), final: site.monitor.state() };
  await proc.stop(clock);
  await can?.stop();
  site.inverter.dispose();

  const t = site.totals;
  const summary: SimulationSummary = {
    scenario: opts.name,
    start: isoUtc(startMs),
    durationS: sc.durationS,
    exportedWh: round1(site.inverter.exportedWh),
    importedWh: round1(site.inverter.importedWh),
    carSideWh: round1(site.car.chargedWh - site.car.dischargedWh),
    minSocPct: round1(minSoc),
    finalSocPct: round1(site.car.socPct),
    floorBreaches,
    outageS: Math.round(t.outageS),
    outageServedS: Math.round(t.outageServedS),
    unservedWh: round1(t.unservedWh),
    essentialUnservedWh: round1(t.essentialUnservedWh),
    hoursCovered: round1(t.outageServedS / 3600),
    pvWh: round1(site.energy.pvWh),
    pvCurtailedWh: round1(site.energy.pvCurtailedWh),
    carFromPvWh: round1(site.energy.pvToCarWh),
    carFromGridWh: round1(site.energy.gridToCarWh),
    gridImportWh: round1(site.energy.gridImportWh),
    gridExportWh: round1(site.energy.gridExportWh),
    chargeStarts,
    selfConsumptionPct: site.energy.pvWh > 0 ? round1(((site.energy.pvToHouseWh + site.energy.pvToCarWh) / site.energy.pvWh) * 100) : null,
    reward: rewardFor(config, [...dispatchFinal.values()]),
    dispatches: [...dispatchFinal.values()].map((r) => ({ id: r.id, status: r.status, reason: r.reason ?? null, deliveredWh: r.deliveredWh ?? null })),
    departures,
    modes,
    events: eventLog.length,
    ticks,
    ...safety,
    restarts: proc.restarts,
    wallMs: Math.round(performance.now() - wallStart),
  };
  return { summary, samples, responses, eventLog, site, config, scenario: sc, safety: { unsafeCloses: site.monitor.unsafeCloses.toArray(), outages: site.monitor.outages.toArray() }, ledger: proc.ledger };
}

/** Something that can say when the runtime has nothing left to do (a Runtime, or a SimulatedProcess). */
export interface Settles {
  settled(): Promise<void>;
}

/**
 * Let the runtime finish whatever does not wait on the virtual clock. `Runtime.settled()` returns once no
 * port call started or ended during a turn of the event loop, not waiting for calls that wait on a virtual
 * timer (a hanging device, a call's bound). In the simulation nothing waits on real I/O, so what is still
 * pending after a few turns of the event loop waits on the virtual clock: the run moves the clock on
 * rather than wait on itself, whatever the runtime's `settled()` does with such calls.
 */
async function settle(target: Settles): Promise<void> {
  let done = false;
  void target.settled().then(() => {
    done = true;
  });
  for (let i = 0; i < 8 && !done; i++) await Promise.resolve();
  for (let turn = 0; turn < 3 && !done; turn++) await new Promise<void>((resolve) => setImmediate(resolve));
}

/**
 * Advance the virtual clock to `endMs` one due timer at a time, letting the runtime settle after each,
 * so debounce delays, contactor feedback, port timeouts and the tick interleave as they would in real time.
 */
export async function runVirtual(clock: VirtualClock, runtime: Settles, endMs: number): Promise<void> {
  await settle(runtime);
  // bounded: every pass fires at least one timer and the clock never goes back
  for (let guard = 0; guard < 50_000_000; guard++) {
    const due = clock.nextDueMs();
    if (due === undefined || due > endMs) break;
    clock.advanceTo(due);
    await settle(runtime);
  }
  clock.advanceTo(endMs);
  await settle(runtime);
}

/** Move the clock timer by timer until `p` settles (a start or stop that waits on a port's timeout). */
async function driveUntil(clock: VirtualClock, p: Promise<unknown>, maxAdvanceMs = 600_000): Promise<void> {
  let done = false;
  const watched = p.then(
    () => {
      done = true;
    },
    (e) => {
      done = true;
      throw e;
    },
  );
  const limitMs = clock.nowMs() + maxAdvanceMs;
  for (let guard = 0; guard < 1_000_000 && !done; guard++) {
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (done) break;
    const due = clock.nextDueMs();
    if (due === undefined || due > limitMs) break;
    clock.advanceTo(due);
  }
  await watched;
}

function applyEvent(e: ScenarioEvent, site: SimSite, proc: SimulatedProcess, clock: VirtualClock, sc: Scenario): void {
  if (e.clockStep !== undefined) clock.stepWall(e.clockStep * 1000);
  if (e.pvFactor !== undefined) site.pvFactor = e.pvFactor;
  // a command is stamped by the calendar, as the uplink stamps it
  const now = clock.wallMs();
  if (e.restart) {
    proc.restart();
    return;
  }
  if (e.reload) {
    const next = scenarioConfig(sc, e.reload);
    // closes are judged against the reconnect delay in force when they are commanded
    site.monitor.reconnectDelayS = next.backup.reconnectDelayS;
    proc.reload(next);
  }
  if (e.dispatch) {
    const r = parseDispatchPayload(Buffer.from(JSON.stringify(e.dispatch)), { nowMs: now, source: 'scenario' });
    if (r.ok) proc.whenStarted((rt) => rt.submit(r.command));
  }
  if (e.cancel) proc.whenStarted((rt) => rt.submit({ kind: 'cancel', id: e.cancel!, receivedMs: now, source: 'scenario' }));
  if (e.gridDown) site.setGrid(false);
  if (e.gridUp) site.setGrid(true);
  if (e.unplug) site.car.connected = false;
  if (e.plug) {
    site.car.connected = true;
    if (typeof e.plug === 'object') {
      if (e.plug.socPct !== undefined) site.car.socPct = e.plug.socPct;
      if (e.plug.capacityWh !== undefined) site.car.capacityWh = e.plug.capacityWh;
    }
  }
  if (e.estop !== undefined) site.pressEStop(e.estop);
  if (e.contactorStuck !== undefined) site.stickContactor(e.contactorStuck ?? undefined);
  if (e.linkFrozen !== undefined) site.link.faults.frozen = e.linkFrozen;
  if (e.inverterFrozen !== undefined) site.inverter.faults.frozen = e.inverterFrozen;
  if (e.inverterHangs !== undefined) site.inverter.faults.hang = e.inverterHangs;
  if (e.inverterAlarm !== undefined) site.inverter.faults.alarms = [...e.inverterAlarm];
  proc.whenStarted((rt) => rt.requestTick());
}

/** What the dispatches delivered is worth at the configured rate (kWh delivered × rate), or null without one. */
function rewardFor(config: Config, finals: DispatchResponse[]): SimulationSummary['reward'] {
  const rate = config.reward.ratePerKWh;
  if (rate === null || rate === undefined) return null;
  const wh = finals.reduce((a, r) => a + (r.deliveredWh ?? 0), 0);
  return { amount: Math.round((wh / 1000) * rate * 100) / 100, currency: config.reward.currency };
}

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}

/** Human-readable summary lines. */
export function formatSummary(s: SimulationSummary): string {
  const lines = [
    `scenario     ${s.scenario ?? ''} from ${s.start}, ${(s.durationS / 3600).toFixed(1)} h simulated in ${s.wallMs} ms (${s.ticks} ticks)`,
    `energy       exported ${s.exportedWh} Wh, imported ${s.importedWh} Wh (AC side); car side ${s.carSideWh} Wh`,
    `SoC          min ${s.minSocPct} %, final ${s.finalSocPct} %, floor breaches ${s.floorBreaches}`,
    `outage       ${s.outageS} s, served ${s.outageServedS} s (${s.hoursCovered} h), unserved ${s.unservedWh} Wh (essential ${s.essentialUnservedWh} Wh)`,
    ...(s.pvWh > 0 || s.carFromGridWh > 0
      ? [`solar        PV ${s.pvWh} Wh${s.pvCurtailedWh > 0 ? ` (${s.pvCurtailedWh} Wh more curtailed at the export limit)` : ''}, self-consumed ${s.selfConsumptionPct ?? '-'} %; the car took ${s.carFromPvWh} Wh from PV and ${s.carFromGridWh} Wh from the grid; grid import ${s.gridImportWh} Wh, export ${s.gridExportWh} Wh`]
      : []),
    ...(s.reward ? [`reward       ${s.reward.amount} ${s.reward.currency} for the energy delivered to dispatches`] : []),
    `modes        ${Object.entries(s.modes).map(([m, n]) => `${m} ${n}`).join(', ')}`,
    `islanding    ${s.islandings} islandings, unsafe contactor closes ${s.unsafeContactorCloses}, backfeed ${s.backfeedS} s, grid loss to contactor open max ${s.maxGridLossToContactorOpenMs ?? '-'} ms, dark with the grid up ${s.darkWithGridS} s${s.restarts ? `, ${s.restarts} restarts` : ''}`,
  ];
  for (const d of s.dispatches) lines.push(`dispatch     ${d.id}: ${d.status}${d.reason ? ` (${d.reason})` : ''}${d.deliveredWh !== null ? `, delivered ${d.deliveredWh} Wh` : ''}`);
  for (const d of s.departures) lines.push(`departure    ${d.at}: SoC ${d.socPct} % (target ${d.targetPct} %)`);
  return lines.join('\n');
}
