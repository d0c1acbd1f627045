/**
 * A simulated hybrid inverter with a CAN battery port, on an in-memory CAN bus: the inverter side of the
 * BMS protocol (docs/can.md). It sends its keepalive (0x305, with its DC voltage and current when the profile
 * says the inverter reports them, as a Sunny Island does) and its id (0x307) every second, reads the
 * battery's frames, and moves power within the advertised limits only: by default as much as they allow
 * (an inverter in a battery-first mode), or what its own `demandAcW` asks within them (self-consumption).
 * Without a 0x351 for `bmsTimeoutMs` it stops, as real inverters do (Safiery: 3 s).
 */
import type { Clock } from '../ports.ts';
import type { CanChannel, CanFrame } from '../inverter/can/channel.ts';
import { decodeFrame, encodeFrame } from '../inverter/can/codec.ts';
import type { CanProfile } from '../inverter/can/profiles.ts';
import { BoundedLog } from './bounded-log.ts';
import type { SimCar } from './car.ts';
import type { SimInverter } from './inverter.ts';

export interface SimCanInverterOptions {
  profile: CanProfile;
  ratedW: number;
  efficiency: number;
  /** The DC bus voltage the stage holds, V. */
  busVoltageV: number;
  /** 0x305 / 0x307 period, ms (default 1000). */
  keepalivePeriodMs?: number;
  /** Stops moving power when no 0x351 came for this long, ms (default 3000). */
  bmsTimeoutMs?: number;
  /** What the inverter would like to move, AC W (positive into the battery); default: the whole limit. */
  demandAcW?: () => number;
  /** 0x307 bytes 4–6 (default `SIM`). */
  vendor?: string;
  /**
   * A power stage to drive instead of stepping the car itself (the simulated home's inverter, so its grid,
   * island, energy counters and safety monitor apply): its setpoint is kept at what the limits allow.
   */
  stage?: SimInverter;
}

export interface SimCanFaults {
  /** The inverter stops sending 0x305/0x307 (powered off, cable cut on its side). */
  silent?: boolean;
  /** Moves this AC power whatever the limits say (a misbehaving inverter), W. */
  ignoreLimitsAcW?: number;
  /** Sends this extra frame with every keepalive (garbage on the bus). */
  garbage?: CanFrame;
}

export interface ReceivedLimits {
  atMs: number;
  chargeCurrentLimitA: number;
  dischargeCurrentLimitA: number;
  chargeVoltageLimitV: number;
  dischargeVoltageLimitV: number;
}

export class SimCanInverter {
  readonly ratedW: number;
  readonly efficiency: number;
  faults: SimCanFaults = {};
  private ownAcW = 0;
  private ownDcW = 0;
  private ownStepAtMs: number;
  importedWh = 0;
  exportedWh = 0;
  /** Why it is not moving power, when it is not allowed to. */
  stopReason?: string;
  /** Every 0x351 the inverter took (bounded), oldest first. */
  readonly limitsLog = new BoundedLog<ReceivedLimits>(100_000);
  /** Frames from the battery it could not decode. */
  badFrames = 0;
  /** A 0x351 ever carried a 0 V charge voltage (a Victron would discharge on it). */
  zeroVoltageSeen = false;
  private limits?: ReceivedLimits;
  private enables?: { charge: boolean; discharge: boolean };
  private timer: unknown;
  private physicsTimer: unknown;
  private off?: () => void;

  constructor(
    private readonly o: SimCanInverterOptions,
    private readonly car: SimCar,
    private readonly channel: CanChannel,
    private readonly clock: Clock,
  ) {
    this.ratedW = o.ratedW;
    this.efficiency = o.efficiency;
    this.ownStepAtMs = clock.nowMs();
  }

  /** AC power now, W, positive into the car. */
  get acPowerW(): number {
    return this.o.stage ? this.o.stage.acPowerW : this.ownAcW;
  }

  /** DC power at the battery now, W (a DC meter on the stage reads this). */
  get dcPowerW(): number {
    const s = this.o.stage;
    if (!s) return this.ownDcW;
    return s.acPowerW >= 0 ? s.acPowerW * this.efficiency : s.acPowerW / this.efficiency;
  }

  /** When `dcPowerW` was last brought up to date. */
  get lastStepAtMs(): number {
    return this.o.stage ? this.clock.nowMs() : this.ownStepAtMs;
  }

  /** The latest limits received. */
  get lastLimits(): ReceivedLimits | undefined {
    return this.limits;
  }

  async start(): Promise<void> {
    await this.channel.open();
    this.off = this.channel.onFrame((f) => this.received(f));
    const period = this.o.keepalivePeriodMs ?? 1000;
    const beat = () => {
      this.applyToStage();
      this.sendKeepalive();
      this.timer = this.clock.setTimer(beat, period);
    };
    this.timer = this.clock.setTimer(beat, period);
  }

  async stop(): Promise<void> {
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timer = undefined;
    this.stopPhysics();
    this.off?.();
    await this.channel.close();
  }

  /** Send 0x305 (and 0x307) now. */
  sendKeepalive(): void {
    if (this.faults.silent) return;
    const p = this.o.profile;
    // Pylon and Victron send zeros; a Sunny Island its DC side, in the profile's sign (positive while the
    // battery charges when currentSign = +1)
    const values = p.keepaliveCarriesDc ? { dcVoltageV: this.o.busVoltageV, dcCurrentA: (p.currentSign * this.dcPowerW) / this.o.busVoltageV } : {};
    this.channel.send({ id: p.keepaliveId, data: encodeFrame(0x305, values, { ...p, dlc: { ...p.dlc, 0x305: 8 } }) });
    const id = new Uint8Array(8);
    const vendor = (this.o.vendor ?? 'SIM').slice(0, 3);
    for (let i = 0; i < vendor.length; i++) id[4 + i] = vendor.charCodeAt(i);
    this.channel.send({ id: p.inverterIdId, data: id });
    if (this.faults.garbage) this.channel.send(this.faults.garbage);
  }

  private received(f: CanFrame): void {
    const d = decodeFrame(f, this.o.profile);
    if (!d.ok) {
      this.badFrames++;
      return;
    }
    if (d.from !== 'bms') return;
    const at = f.atMs ?? this.clock.nowMs();
    if (f.id === 0x351) {
      const n = (k: string) => (typeof d.values[k] === 'number' ? (d.values[k] as number) : 0);
      this.limits = { atMs: at, chargeCurrentLimitA: n('chargeCurrentLimitA'), dischargeCurrentLimitA: n('dischargeCurrentLimitA'), chargeVoltageLimitV: n('chargeVoltageLimitV'), dischargeVoltageLimitV: n('dischargeVoltageLimitV') };
      if (this.limits.chargeVoltageLimitV === 0) this.zeroVoltageSeen = true;
      this.limitsLog.push(this.limits);
    } else if (f.id === 0x35c) {
      this.enables = { charge: d.values.chargeEnable === true, discharge: d.values.dischargeEnable === true };
    }
    this.applyToStage();
  }

  /** With a power stage: its setpoint is what the demand asks within the limits (0 when stopped). */
  private applyToStage(): void {
    const stage = this.o.stage;
    if (!stage) return;
    const eff = this.efficiency;
    const { chargeW, dischargeW } = this.allowedDcW();
    // DC limits at the battery → AC: charging needs DC / efficiency from the grid, discharging gives DC × efficiency
    const hiAc = Math.min(this.ratedW, chargeW / eff);
    const loAc = -Math.min(this.ratedW, dischargeW * eff);
    let ac = this.faults.ignoreLimitsAcW ?? (this.o.demandAcW ? Math.max(loAc, Math.min(hiAc, this.o.demandAcW())) : hiAc > 0 ? hiAc : loAc);
    if (Math.abs(ac) < 1e-9) ac = 0;
    stage.setpointW = ac;
  }

  /** The DC power the limits allow now, W: [−discharge, +charge] (both 0 when stopped). */
  allowedDcW(): { chargeW: number; dischargeW: number } {
    const l = this.limits;
    const timeout = this.o.bmsTimeoutMs ?? 3000;
    if (!l) {
      this.stopReason = 'no battery frames yet';
      return { chargeW: 0, dischargeW: 0 };
    }
    if (this.clock.nowMs() - l.atMs > timeout) {
      this.stopReason = `no 0x351 for more than ${timeout / 1000} s (battery communication error)`;
      return { chargeW: 0, dischargeW: 0 };
    }
    if (l.chargeVoltageLimitV === 0) {
      this.stopReason = '0 V charge voltage limit';
      return { chargeW: 0, dischargeW: 0 };
    }
    this.stopReason = undefined;
    const v = this.o.busVoltageV;
    const chargeW = this.enables && !this.enables.charge ? 0 : l.chargeCurrentLimitA * v;
    const dischargeW = this.enables && !this.enables.discharge ? 0 : l.dischargeCurrentLimitA * v;
    return { chargeW, dischargeW };
  }

  /** Move power for `dtS` seconds; `gridOnBus` false = no AC grid to exchange with (power 0). */
  step(dtS: number, gridOnBus = true): void {
    if (this.o.stage) throw new Error('SimCanInverter: with a power stage, the stage is stepped by its site');
    const eff = this.efficiency;
    let dcWanted: number;
    if (this.faults.ignoreLimitsAcW !== undefined) {
      const ac = this.faults.ignoreLimitsAcW;
      dcWanted = ac >= 0 ? ac * eff : ac / eff;
    } else {
      const { chargeW, dischargeW } = this.allowedDcW();
      const ratedDcCharge = this.ratedW * eff;
      const ratedDcDischarge = this.ratedW / eff;
      const lo = -Math.min(dischargeW, ratedDcDischarge);
      const hi = Math.min(chargeW, ratedDcCharge);
      if (this.o.demandAcW) {
        const ac = this.o.demandAcW();
        const dc = ac >= 0 ? ac * eff : ac / eff;
        dcWanted = Math.max(lo, Math.min(hi, dc));
      } else {
        dcWanted = hi > 0 ? hi : lo;
      }
    }
    if (!gridOnBus) dcWanted = 0;
    const dc = this.car.step(dcWanted, dtS) || 0; // no -0: "no power" has one spelling
    this.ownDcW = dc;
    this.ownStepAtMs = this.clock.nowMs();
    this.ownAcW = dc >= 0 ? dc / eff : dc * eff;
    const wh = (this.ownAcW * dtS) / 3600;
    if (wh > 0) this.importedWh += wh;
    else this.exportedWh -= wh;
  }

  /** Step on the clock every `periodMs` (real-time runs); `gridOnBus` is asked at every step. */
  startPhysics(periodMs: number, gridOnBus: () => boolean = () => true): void {
    const run = () => {
      this.step(periodMs / 1000, gridOnBus());
      this.physicsTimer = this.clock.setTimer(run, periodMs);
    };
    this.physicsTimer = this.clock.setTimer(run, periodMs);
  }

  stopPhysics(): void {
    if (this.physicsTimer !== undefined) this.clock.clearTimer(this.physicsTimer);
    this.physicsTimer = undefined;
  }
}
