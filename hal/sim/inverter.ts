/**
 * Simulated bidirectional inverter: rating, conversion efficiency, grid-following and grid-forming,
 * AC energy counters. It implements the inverter port in process; hal/sim/sunspec-server.ts serves the
 * same object as a SunSpec Modbus TCP device.
 */
import type { Clock, InverterOperatingState, InverterPort, InverterReading, InverterState, PortFault, Unsubscribe } from '../ports.ts';
import type { SimCar } from './car.ts';

export interface SimInverterOptions {
  ratedW: number;
  efficiency: number;
  maxChargeW?: number;
  maxDischargeW?: number;
  islandCapable?: boolean;
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
  gridForming = false;
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
  /** Every command in order, for tests that check actuation order. */
  readonly commands: { atMs: number; kind: 'setpoint' | 'gridForming'; value: number | boolean }[] = [];
  /** Called after every command is taken, for logs that order commands across devices. */
  onCommand?: (kind: 'setpoint' | 'gridForming', value: number | boolean) => void;
  private reading?: InverterReading;
  private listeners = new Set<() => void>();

  constructor(o: SimInverterOptions, private car: SimCar, private clock: Clock) {
    this.ratedW = o.ratedW;
    this.efficiency = o.efficiency;
    this.maxChargeW = o.maxChargeW ?? o.ratedW;
    this.maxDischargeW = o.maxDischargeW ?? o.ratedW;
    this.islandCapable = o.islandCapable ?? true;
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

  private trip(alarm: string): void {
    this.alarms.add(alarm);
    this.operatingState = 'fault';
    this.gridForming = false;
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
    await this.refresh();
  }

  async refresh(): Promise<void> {
    if (this.faults.frozen && this.reading) return;
    this.reading = {
      atMs: this.clock.nowMs(),
      acPowerW: this.acPowerW,
      importedWh: this.importedWh,
      exportedWh: this.exportedWh,
      connected: this.connected,
      gridForming: this.gridForming,
      state: this.operatingState,
      alarms: [...this.alarms].sort(),
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
      fault: this.faults.fault,
    };
  }

  async setPowerW(powerW: number): Promise<void> {
    this.commands.push({ atMs: this.clock.nowMs(), kind: 'setpoint', value: powerW });
    this.onCommand?.('setpoint', powerW);
    this.setpointW = Math.max(-this.maxDischargeW, Math.min(this.maxChargeW, powerW));
  }

  async setGridForming(on: boolean): Promise<void> {
    this.commands.push({ atMs: this.clock.nowMs(), kind: 'gridForming', value: on });
    this.onCommand?.('gridForming', on);
    if (on && !this.islandCapable) return;
    this.gridForming = on;
    if (!on && this.operatingState === 'running' && this.setpointW === 0) this.operatingState = 'standby';
  }

  async close(): Promise<void> {
    this.listeners.clear();
  }

  onChange(listener: () => void): Unsubscribe {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
