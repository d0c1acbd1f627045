/**
 * A simulated home: grid connection with outages, grid contactor with a feedback contact that follows
 * after a mechanical delay, house load (essential + sheddable tiers), the car and the inverter.
 * It hands out the same ports the board's drivers implement, backed by simulated lines.
 */
import type { Clock, Ports, SiteMeterPort, SiteMeterState } from '../ports.ts';
import { LineEStop, LineGridSense, LineRelays } from '../gpio/lines.ts';
import { SimCar, SimVehicleLink, type SimCarOptions } from './car.ts';
import { DEFAULT_FORMING_EXIT_DELAY_MS, SimInverter, type SimInverterOptions } from './inverter.ts';
import { SimLine } from './lines.ts';
import { BoundedLog } from './bounded-log.ts';
import { SafetyMonitor } from './safety-monitor.ts';
import { zoneOffsetMs } from '../../src/control/time.ts';
import { pvForecastW } from '../../src/control/pv-forecast.ts';
import type { PvForecastConfig } from '../../src/config/types.ts';

export type LoadProfile = number | [atS: number, powerW: number][];

export interface SimSiteOptions {
  clock: Clock;
  vehicle: SimCarOptions;
  inverter: SimInverterOptions;
  /** Essential house load, W, or steps `[secondsAfterStart, W]`. Never shed. */
  houseLoadW: LoadProfile;
  /** PV production behind the grid meter, W, or steps `[secondsAfterStart, W]`; absent = no PV. */
  pvW?: LoadProfile;
  /** Phases the house load and PV spread over evenly, and the charger's phases (default 3 and [1, 2, 3]). */
  phases?: 1 | 3;
  chargerPhases?: number[];
  /** A load behind each load-shed relay tier, W (tier 1 first). */
  sheddableLoadsW?: number[];
  /** Time the contactor's auxiliary contact takes to follow the command, ms. */
  contactorDelayMs?: number;
  gridSenseDebounceMs?: number;
  /** Reconnect delay the safety monitor judges contactor closes against, s (default 300). */
  reconnectDelayS?: number;
  /** Rooftop PV on the house side of the grid meter (a clear-sky day; none when absent). */
  pv?: SimPvOptions;
}

/**
 * A clear-sky PV day: AC output `peakW × performanceRatio × sin(π·x)^1.5` between sunrise and sunset in
 * local time (x = fraction of the daylight passed), 0 at night. The sine is the sun's elevation over a
 * day; the power 1.5 the longer path through the air at a low sun. A grid-following PV inverter stops
 * when the grid is gone (anti-islanding, EN 50549 / VDE-AR-N 4105), so the model gives 0 then.
 */
export interface SimPvOptions {
  /** Installed peak power, Wp (a "6 kWp" system: 6000). */
  peakW: number;
  /** AC out at noon per Wp installed (inverter, heat, soiling losses); default 0.85. */
  performanceRatio?: number;
  /** Local times "HH:MM" in `timeZone`; default "06:00" and "21:00" (a June day in central Europe). */
  sunrise?: string;
  sunset?: string;
  /**
   * Where the roof is, degrees north and east: with both given the day follows the sun's real position on
   * the calendar date (src/control/pv-forecast.ts, the shape the forecast uses) and `sunrise`/`sunset` are
   * not used, so a simulation run in December has a December day.
   */
  latitudeDeg?: number;
  longitudeDeg?: number;
  /** IANA zone of sunrise/sunset; default UTC. */
  timeZone?: string;
  /**
   * The PV inverter's export limiter, W: it throttles the panels so the site never exports more than this
   * (a grid operator's feed-in limit, e.g. 70 % of the peak); undefined = none. What it throws away is
   * counted in `SiteEnergy.pvCurtailedWh`.
   */
  exportLimitW?: number;
}

/** Energy through the site's connection point and where the car's energy came from, Wh (from the devices' physics). */
export interface SiteEnergy {
  pvWh: number;
  /** PV the export limiter threw away (the panels could have given it). */
  pvCurtailedWh: number;
  /** PV used in the house (the house's load first, then the car). */
  pvToHouseWh: number;
  pvToCarWh: number;
  /** Energy into the car (AC) from the grid, and from the car into the house and the grid. */
  gridToCarWh: number;
  carToHouseWh: number;
  gridImportWh: number;
  gridExportWh: number;
}

/** A contactor that no longer follows its coil: welded closed, or unable to close. */
export type ContactorStuck = 'closed' | 'open';

export interface Actuation {
  atMs: number;
  what: 'setpoint' | 'gridForming' | 'contactor' | 'tier';
  value: number | boolean;
  tier?: number;
}

export interface SiteTotals {
  /** Seconds the grid was down. */
  outageS: number;
  /** Seconds of outage during which the essential house load was fully served. */
  outageServedS: number;
  /** House energy wanted during outages (essential and every tier) and not delivered, Wh. */
  unservedWh: number;
  /** Essential house energy not delivered during outages, Wh. */
  essentialUnservedWh: number;
  /** House energy served from the car during outages, Wh. */
  servedWh: number;
}

class SimSiteMeter implements SiteMeterPort {
  readonly kind = 'site-meter' as const;
  private s: SiteMeterState = {};
  constructor(private site: SimSite) {}
  async open(): Promise<void> {
    await this.refresh();
  }
  async refresh(): Promise<void> {
    const site = this.site;
    if (site.meterOffline) {
      // a meter that stopped answering: its figures are withdrawn, as the real drivers do
      const sinceMs = this.s.fault?.sinceMs ?? site.clock.nowMs();
      this.s = { fault: { code: 'timeout', message: 'simulated site meter: no answer', sinceMs } };
      return;
    }
    this.s = {
      houseLoadW: site.houseDemandW(),
      gridPowerW: site.gridPowerW(),
      pvPowerW: site.hasPv ? site.pvPowerW() : undefined,
      phaseCurrentsA: site.phaseCurrentsA(),
      importedWh: site.meterTotals.importedWh,
      exportedWh: site.meterTotals.exportedWh,
      atMs: site.clock.nowMs(),
    };
  }
  state(): SiteMeterState {
    return this.s;
  }
  async close(): Promise<void> {}
}

export class SimSite {
  readonly clock: Clock;
  readonly car: SimCar;
  readonly inverter: SimInverter;
  readonly link: SimVehicleLink;
  readonly lines: { gridSense: SimLine; contactor: SimLine; contactorFeedback: SimLine; loadTiers: SimLine[]; estop: SimLine };
  readonly sheddableLoadsW: number[];
  gridUp = true;
  /** What physically happened (invariant 5), from the devices' state. */
  readonly monitor: SafetyMonitor;
  private readonly actuationLog = new BoundedLog<Actuation>(4096);
  /** The main contact's position (the auxiliary feedback contact follows it). */
  private contact = true;
  private stuck?: ContactorStuck;
  readonly totals: SiteTotals = { outageS: 0, outageServedS: 0, unservedWh: 0, essentialUnservedWh: 0, servedWh: 0 };
  readonly energy: SiteEnergy = { pvWh: 0, pvCurtailedWh: 0, pvToHouseWh: 0, pvToCarWh: 0, gridToCarWh: 0, carToHouseWh: 0, gridImportWh: 0, gridExportWh: 0 };
  private readonly pv?: { peakW: number; ratio: number; riseMin: number; setMin: number; timeZone: string; exportLimitW?: number; located?: PvForecastConfig };
  private pvOffset?: { hour: number; offsetMs: number };
  /** Share of the clear sky that reaches the panels (clouds), 0..1; scenario event `pvFactor`. */
  pvFactor = 1;
  private readonly startMs: number;
  private profile: LoadProfile;
  private pvProfile?: LoadProfile;
  private readonly phases: 1 | 3;
  private readonly chargerPhases: number[];
  /** The grid meter's energy counters, Wh. */
  readonly meterTotals = { importedWh: 0, exportedWh: 0 };
  /** The site meter stops answering (its port then reports a `timeout` fault and no figures). */
  meterOffline = false;
  /** Nominal phase voltage the simulated meter converts power to current with, V. */
  static readonly VOLTAGE_V = 230;
  private readonly contactorDelayMs: number;
  private readonly gridSenseDebounceMs: number;
  private physicsTimer: unknown;
  private feedbackTimer: unknown;

  constructor(o: SimSiteOptions) {
    this.clock = o.clock;
    this.startMs = o.clock.nowMs();
    this.car = new SimCar(o.vehicle);
    // a real power stage takes a while to stop forming; the home's inverter does too unless told otherwise
    this.inverter = new SimInverter({ ...o.inverter, formingExitDelayMs: o.inverter.formingExitDelayMs ?? DEFAULT_FORMING_EXIT_DELAY_MS }, this.car, o.clock);
    this.link = new SimVehicleLink(this.car, o.clock);
    this.profile = o.houseLoadW;
    if (o.pv && o.pv.peakW > 0) {
      const minutes = (hhmm: string) => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));
      this.pv = { peakW: o.pv.peakW, ratio: o.pv.performanceRatio ?? 0.85, riseMin: minutes(o.pv.sunrise ?? '06:00'), setMin: minutes(o.pv.sunset ?? '21:00'), timeZone: o.pv.timeZone ?? 'UTC', exportLimitW: o.pv.exportLimitW,
        located: o.pv.latitudeDeg !== undefined && o.pv.longitudeDeg !== undefined
          ? { peakW: o.pv.peakW, performanceRatio: o.pv.performanceRatio ?? 0.85, latitudeDeg: o.pv.latitudeDeg, longitudeDeg: o.pv.longitudeDeg }
          : undefined,
      };
    }
    this.pvProfile = o.pvW;
    this.phases = o.phases ?? 3;
    this.chargerPhases = o.chargerPhases ?? (this.phases === 1 ? [1] : [1, 2, 3]);
    this.sheddableLoadsW = o.sheddableLoadsW ?? [];
    this.contactorDelayMs = o.contactorDelayMs ?? 50;
    this.gridSenseDebounceMs = o.gridSenseDebounceMs ?? 20;
    this.lines = {
      gridSense: new SimLine('grid-sense', 1),
      contactor: new SimLine('contactor', 1),
      contactorFeedback: new SimLine('contactor-feedback', 1),
      loadTiers: this.sheddableLoadsW.map((_, i) => new SimLine(`load-tier-${i + 1}`, 1)),
      estop: new SimLine('estop', 0),
    };
    this.monitor = new SafetyMonitor(o.clock, { gridUp: true, contactClosed: true, gridForming: false, contactorCommandClosed: true }, { reconnectDelayS: o.reconnectDelayS, senseDebounceMs: this.gridSenseDebounceMs });
    this.inverter.onCommand = (what, value) => this.actuationLog.push({ atMs: this.clock.nowMs(), what, value });
    this.inverter.onFormingChange = () => this.observe();
    this.lines.loadTiers.forEach((line, tier) => line.watch((level) => this.actuationLog.push({ atMs: this.clock.nowMs(), what: 'tier', value: level === 1, tier })));
    this.lines.contactor.watch((level) => {
      this.actuationLog.push({ atMs: this.clock.nowMs(), what: 'contactor', value: level === 1 });
      this.monitor.contactorCommand(level === 1);
      this.moveContactAfterDelay();
    });
  }

  /** The most recent actuator commands (bounded), in the order they happened: setpoint/grid-forming, contactor, tiers. */
  get actuations(): Actuation[] {
    return this.actuationLog.toArray();
  }

  /** Actuator commands since the site was made. */
  get actuationCount(): number {
    return this.actuationLog.total;
  }

  /** The main contact follows the coil after the mechanical delay, unless it is stuck. */
  private moveContactAfterDelay(): void {
    if (this.feedbackTimer !== undefined) this.clock.clearTimer(this.feedbackTimer);
    this.feedbackTimer = this.clock.setTimer(() => {
      this.feedbackTimer = undefined;
      const want = this.lines.contactor.read() === 1;
      if (this.stuck === 'closed' && this.contact) return; // welded: does not open
      if (this.stuck === 'open' && !this.contact) return; // will not pull in
      this.setContact(want);
    }, this.contactorDelayMs);
  }

  private setContact(closed: boolean): void {
    if (closed === this.contact) return;
    this.contact = closed;
    // the auxiliary contact is mechanically tied to the main one: it shows where the contact really is
    this.lines.contactorFeedback.set(closed ? 1 : 0);
    this.observe();
  }

  /**
   * Make the contactor stick (`closed`: the contacts weld and stay closed once closed; `open`: it no
   * longer pulls in and stays open once open) or, with undefined, follow its coil again.
   */
  stickContactor(stuck: ContactorStuck | undefined): void {
    this.stuck = stuck;
    if (stuck === undefined) this.moveContactAfterDelay();
  }

  get contactorStuck(): ContactorStuck | undefined {
    return this.stuck;
  }

  private observe(): void {
    this.inverter.busChanged(this.gridUp && this.contact);
    this.monitor.observe({ gridUp: this.gridUp, contactClosed: this.contact, gridForming: this.inverter.gridForming });
  }

  /** The ports a runtime drives, all backed by this site; `clock` is the one the GPIO drivers time with. */
  ports(clock: Clock = this.clock): Ports {
    return {
      clock,
      inverter: this.inverter,
      vehicle: this.link,
      gridSense: new LineGridSense(this.lines.gridSense, clock, { activeLevel: 1, debounceMs: this.gridSenseDebounceMs }),
      relays: new LineRelays(
        { contactor: this.lines.contactor, contactorFeedback: this.lines.contactorFeedback, loadTiers: this.lines.loadTiers },
        clock,
        { closedLevel: 1, feedbackClosedLevel: 1, tierOnLevel: 1 },
      ),
      estop: new LineEStop(this.lines.estop, clock, { pressedLevel: 1 }),
      siteMeter: new SimSiteMeter(this),
    };
  }

  /** Essential load at this instant, W. */
  essentialLoadW(): number {
    return this.profileAt(this.profile);
  }

  private profileAt(profile: LoadProfile): number {
    if (typeof profile === 'number') return profile;
    const atS = (this.clock.nowMs() - this.startMs) / 1000;
    let w = 0;
    for (const [stepS, stepW] of profile) if (stepS <= atS) w = stepW;
    return w;
  }

  /** Replace the essential house load and/or the PV profile from now on (steps count from the site's start). */
  setLoads(o: { houseLoadW?: LoadProfile; pvW?: LoadProfile }): void {
    if (o.houseLoadW !== undefined) this.profile = o.houseLoadW;
    if (o.pvW !== undefined) this.pvProfile = o.pvW;
  }

  /** Whether the site has PV. */
  get hasPv(): boolean {
    return this.pvProfile !== undefined || this.pv !== undefined;
  }

  /** PV production now, W (>= 0); none while the house is cut off from the grid (anti-islanding). */
  pvPowerW(): number {
    if (!(this.gridUp && this.contact)) return 0;
    if (this.pv) {
      const sunW = this.clearSkyW(this.pv);
      // the limiter holds the export at its limit: the house and the car take the rest
      return this.pv.exportLimitW === undefined ? sunW : Math.min(sunW, Math.max(0, this.pv.exportLimitW + this.houseDemandW() + this.inverter.acPowerW));
    }
    if (this.pvProfile === undefined) return 0;
    return Math.max(0, this.profileAt(this.pvProfile));
  }

  /** The clear-sky day (`SimPvOptions`) at this local time, W. */
  private clearSkyW(pv: NonNullable<SimSite['pv']>): number {
    const wall = this.clock.wallMs();
    if (pv.located) return pvForecastW(wall, pv.located) * this.pvFactor;
    const hour = Math.floor(wall / 3_600_000);
    // the zone's offset changes at most on the hour: looked up once an hour, not once a tick
    if (this.pvOffset?.hour !== hour) this.pvOffset = { hour, offsetMs: zoneOffsetMs(wall, pv.timeZone) };
    const dayMin = ((((wall + this.pvOffset.offsetMs) / 60_000) % 1440) + 1440) % 1440;
    const x = (dayMin - pv.riseMin) / (pv.setMin - pv.riseMin);
    if (!(x > 0 && x < 1)) return 0;
    return pv.peakW * pv.ratio * Math.sin(Math.PI * x) ** 1.5 * this.pvFactor;
  }

  /**
   * Power at the grid connection point, W, positive = import: house + charger − PV. Zero while the grid is
   * down or the contactor is open (the meter sits on the grid side of the contactor).
   */
  gridPowerW(): number {
    if (!(this.gridUp && this.contact)) return 0;
    return this.houseDemandW() + this.inverter.acPowerW - this.pvPowerW();
  }

  /** Current per phase at the grid connection point, A (magnitudes): house and PV spread evenly, the charger on its phases. */
  phaseCurrentsA(): number[] {
    const out: number[] = [];
    for (let p = 1; p <= this.phases; p++) {
      if (!(this.gridUp && this.contact)) {
        out.push(0);
        continue;
      }
      const houseW = (this.houseDemandW() - this.pvPowerW()) / this.phases;
      const carW = this.chargerPhases.includes(p) ? this.inverter.acPowerW / this.chargerPhases.length : 0;
      out.push(Math.abs(houseW + carW) / SimSite.VOLTAGE_V);
    }
    return out;
  }

  /** What the house asks for now (essential + powered tiers), W. */
  houseDemandW(): number {
    let w = this.essentialLoadW();
    this.lines.loadTiers.forEach((line, i) => {
      if (line.read() === 1) w += this.sheddableLoadsW[i];
    });
    return w;
  }

  /** The contactor's real position (its main contact, whatever it was commanded to). */
  contactorClosed(): boolean {
    return this.contact;
  }

  setGrid(up: boolean): void {
    if (up === this.gridUp) return;
    this.gridUp = up;
    this.observe();
    this.lines.gridSense.set(up ? 1 : 0);
  }

  pressEStop(pressed: boolean): void {
    this.lines.estop.set(pressed ? 1 : 0);
  }

  /** Advance the electrical world by `dtS` seconds. */
  step(dtS: number): void {
    const gridOnBus = this.gridUp && this.contact;
    const demandW = this.houseDemandW();
    // a forming inverter behind a closed contactor on a dead grid tries to carry the whole street:
    // it backfeeds at its limit (the monitor counts the seconds)
    const islandLoadW = !this.contact ? demandW : !this.gridUp ? demandW + this.inverter.maxDischargeW : 0;
    this.inverter.step(dtS, { gridOnBus, islandLoadW });
    this.monitor.sampleSoc(this.car.socPct, this.inverter.acPowerW);
    if (gridOnBus) this.meterEnergy(dtS, demandW);
    const gridW = this.gridPowerW();
    if (gridW > 0) this.meterTotals.importedWh += (gridW * dtS) / 3600;
    else this.meterTotals.exportedWh += (-gridW * dtS) / 3600;
    if (!this.gridUp) {
      this.totals.outageS += dtS;
      const servedW = this.inverter.gridForming && !gridOnBus ? Math.max(0, -this.inverter.acPowerW) : 0;
      const essentialW = this.essentialLoadW();
      if (servedW >= essentialW - 1e-6 && essentialW >= 0 && (this.inverter.gridForming || essentialW === 0)) this.totals.outageServedS += dtS;
      this.totals.servedWh += (servedW * dtS) / 3600;
      const wantedW = essentialW + this.sheddableLoadsW.reduce((a, b) => a + b, 0);
      this.totals.unservedWh += (Math.max(0, wantedW - servedW) * dtS) / 3600;
      this.totals.essentialUnservedWh += (Math.max(0, essentialW - servedW) * dtS) / 3600;
    }
  }

  /**
   * Where the energy of one step went, on the grid: PV serves the house first, then the car, the rest is
   * exported; the grid makes up what the car takes beyond the PV; a discharging car serves the house first.
   */
  private meterEnergy(dtS: number, houseW: number): void {
    const h = dtS / 3600;
    const pvW = this.pvPowerW();
    if (this.pv) this.energy.pvCurtailedWh += Math.max(0, this.clearSkyW(this.pv) - pvW) * h;
    const carW = this.inverter.acPowerW;
    const pvHouseW = Math.min(pvW, houseW);
    const pvCarW = Math.min(pvW - pvHouseW, Math.max(0, carW));
    const e = this.energy;
    e.pvWh += pvW * h;
    e.pvToHouseWh += pvHouseW * h;
    e.pvToCarWh += pvCarW * h;
    e.gridToCarWh += (Math.max(0, carW) - pvCarW) * h;
    e.carToHouseWh += Math.min(Math.max(0, -carW), houseW - pvHouseW) * h;
    const gridW = houseW + carW - pvW;
    e.gridImportWh += Math.max(0, gridW) * h;
    e.gridExportWh += Math.max(0, -gridW) * h;
  }

  /** Step the physics on the clock every `periodMs` (for real-time runs). */
  startPhysics(periodMs: number): void {
    const run = () => {
      this.step(periodMs / 1000);
      this.physicsTimer = this.clock.setTimer(run, periodMs);
    };
    this.physicsTimer = this.clock.setTimer(run, periodMs);
  }

  stopPhysics(): void {
    if (this.physicsTimer !== undefined) this.clock.clearTimer(this.physicsTimer);
    this.physicsTimer = undefined;
    this.monitor.flush();
  }
}
