/**
 * Simulated bidirectional inverter: rating, conversion efficiency, grid-following and grid-forming,
 * AC energy counters. It implements the inverter port in process; hal/sim/sunspec-server.ts serves the
 * same object as a SunSpec Modbus TCP device.
 */
import type { Clock, InverterOperatingState, InverterPort, InverterReading, InverterState, PortFault, Unsubscribe } from '../ports.ts';
import type { SimCar } from './car.ts';
import { BoundedLog } from './bounded-log.ts';
import { boundedPowerW } from '../inverter/power-command.ts';

/**
 * Time a simulated home's inverter takes to leave grid-forming once told to, ms (SimSite's default;
 * a bare SimInverter, as the driver tests use it, leaves at once unless given a delay).
 */
export const DEFAULT_FORMING_EXIT_DELAY_MS = 200;
/** Default time a call takes when the inverter hangs (the driver's timeout × tries), ms. */
export const DEFAULT_HANG_MS = 2000;

export interface SimInverterOptions {
  ratedW: number;
  efficiency: number;
  maxChargeW?: number;
  maxDischargeW?: number;
  islandCapable?: boolean;
  /**
   * Time the power stage keeps forming after `setGridForming(false)`, ms: a real inverter ramps its
   * island down and hands over to grid-following over a few cycles to a few hundred ms, and only a
   * reading taken after that says it stopped. Default 0 here; the simulated home uses
   * {@link DEFAULT_FORMING_EXIT_DELAY_MS}.
   */
  formingExitDelayMs?: number;
  /** How long each call takes when the inverter hangs (`faults.hang`), ms, before it fails. */
  hangMs?: number;
  /** How many commands `commands` keeps (the most recent). */
  logCapacity?: number;
}

/** What the electrical surroundings look like during one step (set by the simulated site). */
export interface BusConditions {
  /** The AC bus is energized by the grid (grid up and contactor closed). */
  gridOnBus: boolean;
  /** Load the island asks for when grid-forming, W. */
  islandLoadW: number;
}

export interface SimInverterFaults {
  /** Readings stop updating (stale data). */
  frozen?: boolean;
  /** The port reports this fault. */
  fault?: PortFault;
  /**
   * The device stops answering: every call takes `hangMs` and then fails (a timeout fault, the command
   * not taken). Its power stage keeps doing what it was last told.
   */
  hang?: boolean;
  /** 701 Alrm bits the device reports on top of those its own physics sets (SunSpec symbols). */
  alarms?: string[];
}

export class SimInverter implements InverterPort {
  readonly kind = 'inverter' as const;
  readonly ratedW: number;
  readonly efficiency: number;
  readonly maxChargeW: number;
  readonly maxDischargeW: number;
  readonly islandCapable: boolean;
  /** Commanded active power, W, positive into the car. */
  setpointW = 0;
  /** The power stage is forming the grid now (lags `setGridForming(false)` by the exit delay). */
  gridForming = false;
  readonly formingExitDelayMs: number;
  readonly hangMs: number;
  /** AC power flowing now, W, positive into the car. */
  acPowerW = 0;
  /** Lifetime AC energy counters, Wh (SunSpec TotWhAbs / TotWhInj). */
  importedWh = 0;
  exportedWh = 0;
  operatingState: InverterOperatingState = 'standby';
  alarms = new Set<string>();
  connected = true;
  /** Island load that could not be served in the last step, W. */
  unservedW = 0;
  faults: SimInverterFaults = {};
  /** The most recent commands the device took, in order, for tests that check actuation order. */
  private readonly commandLog: BoundedLog<{ atMs: number; kind: 'setpoint' | 'gridForming'; value: number | boolean }>;
  /** Called after every command is taken, for logs that order commands across devices. */
  onCommand?: (kind: 'setpoint' | 'gridForming', value: number | boolean) => void;
  /** Called when the power stage starts or stops forming (for the site's safety monitor). */
  onFormingChange?: (forming: boolean) => void;
  private reading?: InverterReading;
  private listeners = new Set<() => void>();
  private exitTimer: unknown;
  /** A call that did not answer: reported until the device answers again. */
  private commFault?: PortFault;

  constructor(o: SimInverterOptions, private car: SimCar, private clock: Clock) {
    this.ratedW = o.ratedW;
    this.efficiency = o.efficiency;
    this.maxChargeW = o.maxChargeW ?? o.ratedW;
    this.maxDischargeW = o.maxDischargeW ?? o.ratedW;
    this.islandCapable = o.islandCapable ?? true;
    this.formingExitDelayMs = o.formingExitDelayMs ?? 0;
    this.hangMs = o.hangMs ?? DEFAULT_HANG_MS;
    if (!(this.formingExitDelayMs >= 0) || !(this.hangMs >= 0)) throw new Error(`SimInverter: formingExitDelayMs and hangMs must be >= 0 (got ${o.formingExitDelayMs}, ${o.hangMs})`);
    this.commandLog = new BoundedLog(o.logCapacity ?? 4096);
  }

  /** The most recent commands taken (bounded), oldest first. */
  get commands(): { atMs: number; kind: 'setpoint' | 'gridForming'; value: number | boolean }[] {
    return this.commandLog.toArray();
  }

  /** Commands taken since the inverter was made (including those no longer held in `commands`). */
  get commandCount(): number {
    return this.commandLog.total;
  }

  /** The alarm bits the device reports: its own and the injected ones. */
  reportedAlarms(): string[] {
    return [...new Set([...this.alarms, ...(this.faults.alarms ?? [])])].sort();
  }

  private setForming(on: boolean): void {
    if (this.exitTimer !== undefined) {
      this.clock.clearTimer(this.exitTimer);
      this.exitTimer = undefined;
    }
    if (this.gridForming === on) return;
    this.gridForming = on;
    this.onFormingChange?.(on);
  }

  /** Advance the power stage by `dtS` seconds under the given bus conditions. */
  step(dtS: number, bus: BusConditions): void {
    this.unservedW = 0;
    if (this.gridForming) {
      this.connected = true;
      if (bus.gridOnBus) {
        // forming onto a grid-energized bus: the protection trips the inverter
        this.trip('GRID_FORMING_ON_ENERGIZED_BUS');
        return;
      }
      const wantAcW = Math.max(0, bus.islandLoadW);
      const canDcW = Math.min(this.car.dischargeLimitW(), this.maxDischargeW / this.efficiency);
      const canAcW = Math.min(canDcW * this.efficiency, this.maxDischargeW);
      const acW = Math.min(wantAcW, canAcW);
      this.unservedW = wantAcW - acW;
      const dc = this.car.step(-acW / this.efficiency, dtS);
      this.acPowerW = dc * this.efficiency;
      this.operatingState = this.acPowerW !== 0 ? 'running' : 'standby';
    } else if (!bus.gridOnBus) {
      // grid-following with no grid: cease to energize
      this.connected = false;
      this.alarms.add('GRID_DISCONNECT');
      this.acPowerW = 0;
      this.operatingState = 'standby';
      this.car.step(0, dtS);
    } else {
      this.connected = true;
      this.alarms.delete('GRID_DISCONNECT');
      const sp = Math.max(-this.maxDischargeW, Math.min(this.maxChargeW, this.setpointW));
      // charging: the car gets AC x efficiency; discharging: the AC side gets DC x efficiency
      const dcWanted = sp >= 0 ? sp * this.efficiency : sp / this.efficiency;
      const dc = this.car.step(dcWanted, dtS);
      this.acPowerW = dc >= 0 ? dc / this.efficiency : dc * this.efficiency;
      this.operatingState = this.acPowerW === 0 ? 'standby' : Math.abs(this.acPowerW) < Math.abs(sp) - 1 ? 'throttled' : 'running';
    }
    const wh = (this.acPowerW * dtS) / 3600;
    if (wh > 0) this.importedWh += wh;
    else this.exportedWh -= wh;
  }

  /**
   * The bus changed (grid or contactor): a grid-following stage sees the grid appear or vanish at once
   * (ConnSt, GRID_DISCONNECT) and ceases to energize without it; power flows again from the next step.
   */
  busChanged(gridOnBus: boolean): void {
    if (this.gridForming) return;
    if (gridOnBus) {
      this.connected = true;
      this.alarms.delete('GRID_DISCONNECT');
    } else {
      this.connected = false;
      this.alarms.add('GRID_DISCONNECT');
      this.acPowerW = 0;
      this.operatingState = 'standby';
    }
  }

  private trip(alarm: string): void {
    this.alarms.add(alarm);
    this.operatingState = 'fault';
    this.setForming(false);
    this.acPowerW = 0;
    for (const l of [...this.listeners]) l();
  }

  /** Clear a tripped state, as an installer's reset would. */
  resetTrip(): void {
    this.alarms.delete('GRID_FORMING_ON_ENERGIZED_BUS');
    if (this.operatingState === 'fault') this.operatingState = 'standby';
  }

  // --- InverterPort ---------------------------------------------------------------------------

  async open(): Promise<void> {
    if (this.faults.hang) {
      await this.clock.sleep(this.hangMs);
      throw new Error(`simulated inverter: no answer within ${this.hangMs} ms`);
    }
    await this.refresh();
  }

  /**
   * When hanging: wait the full timeout and record the fault (the call is then not taken). A device that
   * answers again clears it. Synchronous when not hanging, so a call takes effect at once as before.
   */
  private answering(): boolean {
    if (this.faults.hang) return false;
    if (this.commFault) {
      this.commFault = undefined;
      this.notify();
    }
    return true;
  }

  private async timeOut(what: string): Promise<void> {
    await this.clock.sleep(this.hangMs);
    if (!this.commFault) {
      this.commFault = { code: 'timeout', message: `simulated inverter: ${what} not answered within ${this.hangMs} ms`, sinceMs: this.clock.nowMs() };
      this.notify();
    }
  }

  private notify(): void {
    for (const l of [...this.listeners]) l();
  }

  async refresh(): Promise<void> {
    if (!this.answering()) return this.timeOut('read');
    if (this.faults.frozen && this.reading) return;
    this.reading = {
      atMs: this.clock.nowMs(),
      acPowerW: this.acPowerW,
      importedWh: this.importedWh,
      exportedWh: this.exportedWh,
      connected: this.connected,
      gridForming: this.gridForming,
      state: this.operatingState,
      alarms: this.reportedAlarms(),
      setpointW: this.setpointW,
    };
  }

  state(): InverterState {
    return {
      ratings: {
        ratedW: this.ratedW,
        maxChargeW: this.maxChargeW,
        maxDischargeW: this.maxDischargeW,
        efficiency: this.efficiency,
        islandCapable: this.islandCapable,
      },
      reading: this.reading,
      fault: this.faults.fault ?? this.commFault,
    };
  }

  async setPowerW(powerW: number): Promise<void> {
    if (!this.answering()) return this.timeOut('setpoint write');
    this.commandLog.push({ atMs: this.clock.nowMs(), kind: 'setpoint', value: powerW });
    this.onCommand?.('setpoint', powerW);
    // the command log keeps what was asked (a test's evidence); the power stage takes only what the port may write
    const bounded = boundedPowerW(powerW, { maxChargeW: this.maxChargeW, maxDischargeW: this.maxDischargeW }, () => {});
    if (bounded !== undefined) this.setpointW = bounded;
  }

  async setGridForming(on: boolean): Promise<void> {
    if (!this.answering()) return this.timeOut('grid-forming write');
    this.commandLog.push({ atMs: this.clock.nowMs(), kind: 'gridForming', value: on });
    this.onCommand?.('gridForming', on);
    if (on && !this.islandCapable) return;
    if (on) {
      this.setForming(true);
      return;
    }
    if (!this.gridForming || this.exitTimer !== undefined) return;
    const stop = () => {
      this.exitTimer = undefined;
      this.setForming(false);
      if (this.operatingState === 'running' && this.setpointW === 0) this.operatingState = 'standby';
    };
    if (this.formingExitDelayMs === 0) stop();
    else this.exitTimer = this.clock.setTimer(stop, this.formingExitDelayMs);
  }

  async close(): Promise<void> {
    this.listeners.clear();
  }

  /** The power stage's own timers end (the simulation is over). */
  dispose(): void {
    if (this.exitTimer !== undefined) this.clock.clearTimer(this.exitTimer);
    this.exitTimer = undefined;
  }

  onChange(listener: () => void): Unsubscribe {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
