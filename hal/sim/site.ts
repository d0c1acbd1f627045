/**
 * A simulated home: grid connection with outages, grid contactor with a feedback contact that follows
 * after a mechanical delay, house load (essential + sheddable tiers), the car and the inverter.
 * It hands out the same ports the board's drivers implement, backed by simulated lines.
 */
import type { Clock, Ports, SiteMeterPort, SiteMeterState } from '../ports.ts';
import { LineEStop, LineGridSense, LineRelays } from '../gpio/lines.ts';
import { SimCar, SimVehicleLink, type SimCarOptions } from './car.ts';
import { SimInverter, type SimInverterOptions } from './inverter.ts';
import { SimLine } from './lines.ts';

export type LoadProfile = number | [atS: number, powerW: number][];

export interface SimSiteOptions {
  clock: Clock;
  vehicle: SimCarOptions;
  inverter: SimInverterOptions;
  /** Essential house load, W, or steps `[secondsAfterStart, W]`. Never shed. */
  houseLoadW: LoadProfile;
  /** A load behind each load-shed relay tier, W (tier 1 first). */
  sheddableLoadsW?: number[];
  /** Time the contactor's auxiliary contact takes to follow the command, ms. */
  contactorDelayMs?: number;
  gridSenseDebounceMs?: number;
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
    this.s = { houseLoadW: this.site.houseDemandW(), atMs: this.site.clock.nowMs() };
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
  /** When set, the contactor's feedback contact is stuck at this level (welded or broken contact). */
  feedbackStuck?: 0 | 1;
  /** Every actuator command in the order it happened: inverter setpoint/grid-forming, contactor, tiers. */
  readonly actuations: { atMs: number; what: 'setpoint' | 'gridForming' | 'contactor' | 'tier'; value: number | boolean; tier?: number }[] = [];
  readonly totals: SiteTotals = { outageS: 0, outageServedS: 0, unservedWh: 0, essentialUnservedWh: 0, servedWh: 0 };
  private readonly startMs: number;
  private readonly profile: LoadProfile;
  private readonly contactorDelayMs: number;
  private readonly gridSenseDebounceMs: number;
  private physicsTimer: unknown;
  private feedbackTimer: unknown;

  constructor(o: SimSiteOptions) {
    this.clock = o.clock;
    this.startMs = o.clock.nowMs();
    this.car = new SimCar(o.vehicle);
    this.inverter = new SimInverter(o.inverter, this.car, o.clock);
    this.link = new SimVehicleLink(this.car, o.clock);
    this.profile = o.houseLoadW;
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
    this.inverter.onCommand = (what, value) => this.actuations.push({ atMs: this.clock.nowMs(), what, value });
    this.lines.loadTiers.forEach((line, tier) => line.watch((level) => this.actuations.push({ atMs: this.clock.nowMs(), what: 'tier', value: level === 1, tier })));
    this.lines.contactor.watch((level) => {
      this.actuations.push({ atMs: this.clock.nowMs(), what: 'contactor', value: level === 1 });
      if (this.feedbackTimer !== undefined) this.clock.clearTimer(this.feedbackTimer);
      this.feedbackTimer = this.clock.setTimer(() => {
        this.feedbackTimer = undefined;
        this.lines.contactorFeedback.set(this.feedbackStuck ?? level);
      }, this.contactorDelayMs);
    });
  }

  /** The ports a runtime drives, all backed by this site. */
  ports(): Ports {
    return {
      clock: this.clock,
      inverter: this.inverter,
      vehicle: this.link,
      gridSense: new LineGridSense(this.lines.gridSense, this.clock, { activeLevel: 1, debounceMs: this.gridSenseDebounceMs }),
      relays: new LineRelays(
        { contactor: this.lines.contactor, contactorFeedback: this.lines.contactorFeedback, loadTiers: this.lines.loadTiers },
        this.clock,
        { closedLevel: 1, feedbackClosedLevel: 1, tierOnLevel: 1 },
      ),
      estop: new LineEStop(this.lines.estop, this.clock, { pressedLevel: 1 }),
      siteMeter: new SimSiteMeter(this),
    };
  }

  /** Essential load at this instant, W. */
  essentialLoadW(): number {
    if (typeof this.profile === 'number') return this.profile;
    const atS = (this.clock.nowMs() - this.startMs) / 1000;
    let w = 0;
    for (const [stepS, stepW] of this.profile) if (stepS <= atS) w = stepW;
    return w;
  }

  /** What the house asks for now (essential + powered tiers), W. */
  houseDemandW(): number {
    let w = this.essentialLoadW();
    this.lines.loadTiers.forEach((line, i) => {
      if (line.read() === 1) w += this.sheddableLoadsW[i];
    });
    return w;
  }

  /** The contactor's real position (its feedback contact, unless that is stuck). */
  contactorClosed(): boolean {
    return this.feedbackStuck !== undefined ? this.lines.contactor.read() === 1 && this.lines.contactorFeedback.read() === 1 : this.lines.contactorFeedback.read() === 1;
  }

  setGrid(up: boolean): void {
    this.gridUp = up;
    this.lines.gridSense.set(up ? 1 : 0);
  }

  pressEStop(pressed: boolean): void {
    this.lines.estop.set(pressed ? 1 : 0);
  }

  /** Advance the electrical world by `dtS` seconds. */
  step(dtS: number): void {
    const gridOnBus = this.gridUp && this.contactorClosed();
    const demandW = this.houseDemandW();
    this.inverter.step(dtS, { gridOnBus, islandLoadW: this.contactorClosed() ? 0 : demandW });
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
  }
}
