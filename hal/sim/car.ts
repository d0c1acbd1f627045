/**
 * Simulated car battery, and the in-process vehicle link that reports it.
 * Deterministic: the battery only changes in `step()`, which the simulated site calls under the clock.
 */
import type { Clock, PortFault, Unsubscribe, VehicleLinkPort, VehicleState } from '../ports.ts';
import { BoundedLog } from './bounded-log.ts';

export interface SimCarOptions {
  capacityWh: number;
  socPct: number;
  /** Car-side (DC) charge limit, W. */
  maxChargeW: number;
  /** Car-side (DC) discharge limit, W. */
  maxDischargeW: number;
  /** Above this SoC the charge limit tapers linearly to 0 at 100 % (CC/CV behaviour). */
  taperStartPct?: number;
  /** Below this SoC the discharge limit tapers linearly to 0 at 0 %. */
  lowTaperPct?: number;
  connected?: boolean;
  bidirectional?: boolean;
  minSocPct?: number;
  targetSocPct?: number;
  departureAtMs?: number;
}

export class SimCar {
  capacityWh: number;
  socPct: number;
  maxChargeW: number;
  maxDischargeW: number;
  connected: boolean;
  bidirectional: boolean;
  minSocPct?: number;
  targetSocPct?: number;
  departureAtMs?: number;
  readonly taperStartPct: number;
  readonly lowTaperPct: number;
  /** Car-side energy counters, Wh. */
  chargedWh = 0;
  dischargedWh = 0;

  constructor(o: SimCarOptions) {
    this.capacityWh = o.capacityWh;
    this.socPct = o.socPct;
    this.maxChargeW = o.maxChargeW;
    this.maxDischargeW = o.maxDischargeW;
    this.connected = o.connected ?? true;
    this.bidirectional = o.bidirectional ?? true;
    this.minSocPct = o.minSocPct;
    this.targetSocPct = o.targetSocPct;
    this.departureAtMs = o.departureAtMs;
    this.taperStartPct = o.taperStartPct ?? 80;
    this.lowTaperPct = o.lowTaperPct ?? 5;
  }

  /** What the battery accepts now (DC, W), with the taper near full. */
  chargeLimitW(): number {
    if (!this.connected || this.socPct >= 100) return 0;
    const taper = this.socPct <= this.taperStartPct ? 1 : (100 - this.socPct) / (100 - this.taperStartPct);
    return this.maxChargeW * Math.max(0, Math.min(1, taper));
  }

  /** What the battery gives now (DC, W, positive magnitude), with the taper near empty. */
  dischargeLimitW(): number {
    if (!this.connected || !this.bidirectional || this.socPct <= 0) return 0;
    const taper = this.socPct >= this.lowTaperPct ? 1 : this.socPct / this.lowTaperPct;
    return this.maxDischargeW * Math.max(0, Math.min(1, taper));
  }

  /**
   * Move `dcPowerW` (positive into the battery) for `dtS` seconds, clamped to the limits and to what
   * is left in the battery. Returns the DC power actually moved.
   */
  step(dcPowerW: number, dtS: number): number {
    if (!this.connected || dtS <= 0) return 0;
    let p = dcPowerW >= 0 ? Math.min(dcPowerW, this.chargeLimitW()) : -Math.min(-dcPowerW, this.dischargeLimitW());
    const roomWh = ((100 - this.socPct) / 100) * this.capacityWh;
    const leftWh = (this.socPct / 100) * this.capacityWh;
    const wh = (p * dtS) / 3600;
    if (wh > roomWh) p = (roomWh * 3600) / dtS;
    if (-wh > leftWh) p = -(leftWh * 3600) / dtS;
    const moved = (p * dtS) / 3600;
    this.socPct = Math.min(100, Math.max(0, this.socPct + (moved / this.capacityWh) * 100));
    if (moved > 0) this.chargedWh += moved;
    else this.dischargedWh -= moved;
    return p;
  }
}

/** What the in-process link reports, for fault injection in tests. */
export interface SimLinkFaults {
  /** The car sends no SoC at all (AC ISO 15118-2 sessions). */
  noSoc?: boolean;
  /** The car sends no battery capacity (as AC ISO 15118-2 cars do): the runtime must assume one. */
  noCapacity?: boolean;
  /** The link stops updating (stale data). */
  frozen?: boolean;
  /** The link reports this fault. */
  fault?: PortFault;
}

/** Vehicle link straight to a SimCar, as if the bridge always answered at once. */
export class SimVehicleLink implements VehicleLinkPort {
  readonly kind = 'vehicle' as const;
  faults: SimLinkFaults = {};
  private readonly forwarded = new BoundedLog<number>(1024);
  private last?: VehicleState;
  private listeners = new Set<() => void>();
  private wasConnected: boolean;

  constructor(private car: SimCar, private clock: Clock) {
    this.wasConnected = car.connected;
  }

  /** The most recent power limits forwarded by the runtime (bounded), in order. */
  get forwardedLimitsW(): number[] {
    return this.forwarded.toArray();
  }

  async open(): Promise<void> {
    await this.refresh();
  }

  async refresh(): Promise<void> {
    if (this.faults.frozen && this.last) return;
    const now = this.clock.nowMs();
    const c = this.car;
    this.last = {
      atMs: now,
      connected: c.connected,
      socPct: c.connected && !this.faults.noSoc ? c.socPct : undefined,
      socAtMs: c.connected && !this.faults.noSoc ? now : undefined,
      capacityWh: c.connected && !this.faults.noCapacity ? c.capacityWh : undefined,
      minSocPct: c.connected ? c.minSocPct : undefined,
      targetSocPct: c.connected ? c.targetSocPct : undefined,
      maxChargeW: c.connected ? c.chargeLimitW() : undefined,
      maxDischargeW: c.connected ? c.dischargeLimitW() : undefined,
      bidirectional: c.connected ? c.bidirectional : undefined,
      departureAtMs: c.connected ? c.departureAtMs : undefined,
      chargedWh: c.chargedWh,
      dischargedWh: c.dischargedWh,
      fault: this.faults.fault,
    };
    if (c.connected !== this.wasConnected) {
      this.wasConnected = c.connected;
      for (const l of [...this.listeners]) l();
    }
  }

  state(): VehicleState {
    return this.last ?? { atMs: 0, connected: false };
  }

  async setPowerLimitW(powerW: number): Promise<void> {
    this.forwarded.push(powerW);
  }

  async close(): Promise<void> {
    this.listeners.clear();
  }

  onChange(listener: () => void): Unsubscribe {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
