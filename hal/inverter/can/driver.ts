/**
 * CAN BMS inverter driver: the inverter port for a hybrid inverter that takes its battery over CAN, with
 * this runtime playing that battery for the car behind a DC bidirectional stage (docs/can.md).
 *
 * The inverter decides moment to moment; the runtime's setpoint, the discharge floor and every limit reach
 * it as the advertised current limits (bms-values.ts). Every `periodMs` the profile's whole frame set goes
 * out; a changed command goes out at once and restarts the period, so no gap between two 0x351 is ever
 * longer than the period. The inverter's keepalive (0x305) is watched: missing for `keepaliveTimeoutMs`
 * is fault `keepalive_lost`, and the power then counts as unknown (the reading is not renewed, so it goes
 * stale for the core).
 *
 * Measurement back: the inverter's DC side from 0x305 where the profile says it carries it (Sunny Island),
 * else the car facts (vehicle link counters, or a DC meter); the reading's `atMs` is the measurement's own
 * time, so a stale source makes a stale reading, and `measurement` tells which source it was.
 *
 * Reports, never decides; nothing rejects after `open()`; every frame that cannot be decoded is counted and
 * ignored.
 */
import type { Clock, InverterPort, InverterRatings, InverterReading, InverterState, Unsubscribe } from '../../ports.ts';
import { CommandQueue } from '../command-queue.ts';
import { boundedPowerW } from '../power-command.ts';
import { commandWritten, DEFAULT_FOLLOWING, INITIAL_FOLLOWING, judgeFollowing, type FollowingSettings, type FollowingState } from '../command-following.ts';
import { FaultSlots } from '../fault-slots.ts';
import { bmsValues, limitsFor, type BmsLimits, type PackConfig } from './bms-values.ts';
import type { CarFactsSource } from './car-facts.ts';
import type { CanChannel, CanChannelError, CanFrame } from './channel.ts';
import { decodeFrame, encodeFrame, FRAME_LAYOUTS, type AlarmItem, type IssueCode } from './codec.ts';
import type { CanProfile } from './profiles.ts';

export interface CanBmsOptions {
  /** Makes the channel; called at open, and again to reopen after the interface stopped. */
  channel: () => CanChannel;
  profile: CanProfile;
  pack: PackConfig;
  /** The inverter's AC rating, W (CAN does not tell it). */
  ratedW: number;
  /** One-way AC↔DC efficiency, 0–1: converts the AC setpoint into DC current limits and DC power back. */
  efficiency: number;
  /** The inverter forms an island on its own (EPS/backup output); setGridForming(true) then opens the discharge limit. */
  islandCapable?: boolean;
  /** No 0x305 for this long is fault `keepalive_lost`, ms. */
  keepaliveTimeoutMs: number;
  /** The car's SoC is advertised while younger than this, ms; older = unknown (limits 0, warning). */
  socMaxAgeMs: number;
  /** The car's SoC and DC power from outside the bus (car-facts.ts). */
  car: CarFactsSource;
  clock: Clock;
  log?: (msg: string) => void;
  /** Command following (hal/inverter/command-following.ts); `false` turns it off. */
  following?: Partial<FollowingSettings> | false;
  /**
   * `limits` (default): the inverter may draw less than the limit (it decides), so only power beyond the
   * advertised limit, or the wrong way, is `not_following`. `setpoint`: an inverter set to use the whole
   * limit (battery-first modes) is also judged for drawing less.
   */
  followMode?: 'limits' | 'setpoint';
  /** 0x35C force-charge request I while charging is commanded (UNCONFIRMED per inverter). */
  forceChargeRequest?: boolean;
  /** Wait between attempts to reopen a stopped interface, ms. */
  reopenMs?: number;
}

/** Where the reading's power came from. */
export interface MeasurementInfo {
  source: string;
  atMs: number;
  dcPowerW: number;
}

type Commands = { power: number; gridForming: boolean };
type Slot = 'bus' | 'keepalive' | 'measurement' | 'following';

export class CanBmsInverter implements InverterPort {
  readonly kind = 'inverter' as const;
  readonly name: string;
  private channel?: CanChannel;
  private detach: (() => void)[] = [];
  private opened = false;
  private closed = false;
  private readonly ratings: InverterRatings;
  private reading?: InverterReading;
  private listeners = new Set<() => void>();
  private readonly faults: FaultSlots<Slot>;
  private readonly queue = new CommandQueue<Commands>();
  private pumping = false;
  private readonly followingSettings?: FollowingSettings;
  private following: FollowingState = INITIAL_FOLLOWING;
  /** The latest accepted command (clamped), W; 0 until the runtime commands anything, so a restart starts closed. */
  private commandW = 0;
  private gridFormingCmd = false;
  /** The limits in the last frame set that went out. */
  private sentLimits?: BmsLimits;
  private sentCommandW = 0;
  private sentGridForming = false;
  private lastSocPct?: number;
  private openedAtMs = 0;
  private keepaliveAtMs?: number;
  private dc?: { voltageV: number; currentA: number; atMs: number };
  private cycleTimer: unknown;
  private nextCycleAtMs = 0;
  private reopenTimer: unknown;
  private warningsFromFaults = new Set<AlarmItem>();
  private loggedForeign = false;
  private saidNoIsland = false;
  /** The inverter's 0x307 vendor bytes (`VIC` for Victron), when it sent them. */
  inverterVendor?: string;
  /** Where the last reading's power came from. */
  measurement?: MeasurementInfo;
  readonly stats = { framesSent: 0, cyclesSent: 0, sendFailures: 0, framesReceived: 0, keepalives: 0, ignored: {} as Partial<Record<IssueCode | 'foreign_bms', number>> };

  constructor(private readonly o: CanBmsOptions) {
    this.name = `CAN BMS (${o.profile.name})`;
    const v = o.pack.voltageV;
    this.ratings = {
      ratedW: o.ratedW,
      // AC power whose DC share fits the pack's current limits: charging, AC × efficiency reaches the car
      maxChargeW: Math.min(o.ratedW, Math.floor((o.pack.maxChargeA * v) / o.efficiency)),
      maxDischargeW: Math.min(o.ratedW, Math.floor(o.pack.maxDischargeA * v * o.efficiency)),
      efficiency: o.efficiency,
      islandCapable: o.islandCapable === true,
    };
    this.followingSettings = o.following === false ? undefined : { ...DEFAULT_FOLLOWING, ...o.following };
    this.faults = new FaultSlots<Slot>(['bus', 'keepalive', 'measurement', 'following'], () => o.clock.nowMs(), (after, before) => {
      if (after) this.o.log?.(after.message);
      else if (before) this.o.log?.(`${this.name}: recovered from ${before.code}`);
      this.emit();
    });
  }

  /** The limits the inverter was last told (undefined before the first frame set). */
  get advertisedLimits(): BmsLimits | undefined {
    return this.sentLimits && { ...this.sentLimits };
  }

  // --- InverterPort ------------------------------------------------------------------------------

  async open(): Promise<void> {
    if (this.opened && !this.closed) return;
    this.closed = false;
    try {
      await this.attach();
    } catch (e) {
      throw new Error(`${this.name}: ${(e as Error)?.message ?? String(e)}`);
    }
    this.opened = true;
    this.openedAtMs = this.o.clock.nowMs();
    this.o.log?.(`${this.name}: on ${this.channel?.name}, sending ${describeFrames(this.o.profile)} every ${this.o.profile.periodMs} ms; waiting for the inverter's 0x${this.o.profile.keepaliveId.toString(16)}`);
    this.keepaliveAtMs = undefined;
    this.dc = undefined;
    // the first frame set carries the narrowest limits there are until the runtime commands otherwise
    this.cycleNow();
    this.updateReading();
  }

  refresh(): Promise<void> {
    if (this.opened && !this.closed) {
      this.checkKeepalive();
      this.updateReading();
    }
    return Promise.resolve();
  }

  state(): InverterState {
    return { ratings: this.ratings, reading: this.reading, fault: this.faults.current() };
  }

  setPowerW(powerW: number): Promise<void> {
    const clamped = boundedPowerW(powerW, this.ratings, (m) => this.o.log?.(`${this.name}: ${m}`));
    if (clamped === undefined) return Promise.resolve();
    if (!this.opened || this.closed) {
      this.commandW = clamped;
      return Promise.resolve();
    }
    return this.enqueue('power', clamped);
  }

  setGridForming(on: boolean): Promise<void> {
    if (!this.opened || this.closed) return Promise.resolve();
    if (!this.ratings.islandCapable) {
      // "off" is what every start and every rejoin asks for: said once, "on" every time (someone wants an island)
      if (on || !this.saidNoIsland) this.o.log?.(`${this.name}: grid-forming ${on ? 'on' : 'off'} not supported (inverter.can.islandCapable is false)`);
      this.saidNoIsland = true;
      return Promise.resolve();
    }
    return this.enqueue('gridForming', on);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.queue.clear();
    this.stopTimers();
    if (this.opened && this.channel) {
      // a clean stop leaves the inverter told "no current either way", not the last limits until its timeout
      this.commandW = 0;
      this.gridFormingCmd = false;
      this.sendFrameSet();
    }
    this.opened = false;
    await this.release();
    this.listeners.clear();
  }

  onChange(listener: () => void): Unsubscribe {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  // --- channel -----------------------------------------------------------------------------------

  private async attach(): Promise<void> {
    const ch = this.o.channel();
    await ch.open();
    this.channel = ch;
    this.detach = [ch.onFrame((f) => this.received(f)), ch.onError((e) => this.channelError(e))];
  }

  private async release(): Promise<void> {
    for (const d of this.detach) d();
    this.detach = [];
    const ch = this.channel;
    this.channel = undefined;
    await ch?.close().catch(() => undefined);
  }

  private channelError(e: CanChannelError): void {
    if (this.closed) return;
    if (e.code === 'send_failed') {
      this.stats.sendFailures++;
      this.faults.set('bus', 'send_failed', `${this.name}: ${e.message}`);
      return;
    }
    this.faults.set('bus', 'disconnected', `${this.name}: ${e.message}; reopening every ${(this.o.reopenMs ?? 2000) / 1000} s`);
    void this.release();
    this.scheduleReopen();
  }

  private scheduleReopen(): void {
    if (this.reopenTimer !== undefined || this.closed) return;
    this.reopenTimer = this.o.clock.setTimer(() => {
      this.reopenTimer = undefined;
      if (this.closed || this.channel) return;
      this.attach().then(
        () => {
          if (this.closed) return void this.release();
          this.faults.set('bus', undefined);
          this.cycleNow();
        },
        (err) => {
          this.faults.set('bus', 'disconnected', `${this.name}: ${(err as Error)?.message ?? String(err)}; retrying`);
          this.scheduleReopen();
        },
      );
    }, this.o.reopenMs ?? 2000);
  }

  private received(f: CanFrame): void {
    this.stats.framesReceived++;
    const d = decodeFrame(f, this.o.profile);
    if (!d.ok) {
      this.stats.ignored[d.code] = (this.stats.ignored[d.code] ?? 0) + 1;
      return;
    }
    if (d.from === 'bms') {
      // another battery on the bus: the inverter will mix both; nothing to take from it
      this.stats.ignored.foreign_bms = (this.stats.ignored.foreign_bms ?? 0) + 1;
      if (!this.loggedForeign) this.o.log?.(`${this.name}: another node sends BMS frames (0x${f.id.toString(16)}) on ${this.channel?.name}: two batteries on one inverter bus`);
      this.loggedForeign = true;
      return;
    }
    const atMs = f.atMs ?? this.o.clock.nowMs();
    if (f.id === this.o.profile.keepaliveId) {
      this.stats.keepalives++;
      this.keepaliveAtMs = atMs;
      const v = d.values.dcVoltageV;
      const i = d.values.dcCurrentA;
      if (this.o.profile.keepaliveCarriesDc && typeof v === 'number' && typeof i === 'number' && v > 0) this.dc = { voltageV: v, currentA: i, atMs };
      this.faults.set('keepalive', undefined);
    } else if (f.id === this.o.profile.inverterIdId) {
      this.inverterVendor = typeof d.values.vendor === 'string' ? d.values.vendor : undefined;
    }
  }

  // --- commands ----------------------------------------------------------------------------------

  private enqueue<K extends keyof Commands>(kind: K, value: Commands[K]): Promise<void> {
    const done = this.queue.push(kind, value);
    if (!this.pumping) {
      this.pumping = true;
      // the commands issued in one turn go out as one frame set, the latest value of each kind
      queueMicrotask(() => this.pump());
    }
    return done;
  }

  private pump(): void {
    this.pumping = false;
    const taken = [];
    for (let next = this.queue.take(); next; next = this.queue.take()) {
      taken.push(next);
      if (next.kind === 'power') this.commandW = next.value as number;
      else this.gridFormingCmd = next.value as boolean;
    }
    // a changed command goes out at once; the same one again (every tick repeats it) waits for its period
    const changed = this.commandW !== this.sentCommandW || this.gridFormingCmd !== this.sentGridForming;
    if (taken.length > 0 && changed && this.opened && !this.closed) this.cycleNow();
    for (const t of taken) t.settle();
  }

  // --- the frame cycle ---------------------------------------------------------------------------

  /** Send the frame set now and start the period from here. */
  private cycleNow(): void {
    if (this.cycleTimer !== undefined) this.o.clock.clearTimer(this.cycleTimer);
    this.cycleTimer = undefined;
    this.sendFrameSet();
    this.armCycle(this.o.clock.nowMs() + this.o.profile.periodMs);
  }

  private armCycle(atMs: number): void {
    if (this.closed) return;
    this.nextCycleAtMs = atMs;
    this.cycleTimer = this.o.clock.setTimer(() => this.onCycle(), Math.max(0, atMs - this.o.clock.nowMs()));
  }

  private onCycle(): void {
    this.cycleTimer = undefined;
    if (this.closed) return;
    this.checkKeepalive();
    this.sendFrameSet();
    const now = this.o.clock.nowMs();
    // an absolute schedule keeps the period without drift; after a stall longer than a period, start again from now
    let next = this.nextCycleAtMs + this.o.profile.periodMs;
    if (next <= now) next = now + this.o.profile.periodMs;
    this.armCycle(next);
  }

  private stopTimers(): void {
    if (this.cycleTimer !== undefined) this.o.clock.clearTimer(this.cycleTimer);
    if (this.reopenTimer !== undefined) this.o.clock.clearTimer(this.reopenTimer);
    this.cycleTimer = undefined;
    this.reopenTimer = undefined;
  }

  private socNow(): number | undefined {
    const f = this.o.car();
    const fresh = f.socPct !== undefined && f.socAtMs !== undefined && this.o.clock.nowMs() - f.socAtMs <= this.o.socMaxAgeMs;
    if (fresh) this.lastSocPct = f.socPct;
    return fresh ? f.socPct : undefined;
  }

  private sendFrameSet(): void {
    const ch = this.channel;
    if (!ch) return;
    const socPct = this.socNow();
    const warnings = new Set(this.warningsFromFaults);
    if (socPct === undefined) warnings.add('bmsInternal');
    if (this.faults.get('keepalive')) warnings.add('general');
    const m = this.measurement;
    const busV = this.dc && this.dc.voltageV > 0 ? this.dc.voltageV : undefined;
    const inputs = {
      commandW: this.commandW,
      gridForming: this.gridFormingCmd,
      efficiency: this.o.efficiency,
      socPct,
      lastSocPct: this.lastSocPct,
      busVoltageV: busV,
      currentIntoCarA: m ? m.dcPowerW / (busV ?? this.o.pack.voltageV) : undefined,
      alarms: new Set<AlarmItem>(),
      warnings,
      forceChargeRequest: this.o.forceChargeRequest === true,
    };
    const values = bmsValues(inputs, this.o.pack, this.o.profile);
    let ok = true;
    for (const id of this.o.profile.frames) {
      const sent = ch.send({ id, data: encodeFrame(id, values, this.o.profile) });
      if (sent) this.stats.framesSent++;
      else ok = false;
    }
    this.stats.cyclesSent++;
    if (!ok) return;
    this.sentLimits = limitsFor(inputs, this.o.pack);
    if (this.faults.get('bus')?.code === 'send_failed') this.faults.set('bus', undefined);
    if (this.sentCommandW !== this.commandW || this.following.commandW === undefined) {
      this.following = commandWritten(this.following, this.commandW, this.o.clock.nowMs(), this.ratings.ratedW, this.followingSettings ?? DEFAULT_FOLLOWING);
    }
    this.sentCommandW = this.commandW;
    this.sentGridForming = this.gridFormingCmd;
  }

  private checkKeepalive(): void {
    const since = this.keepaliveAtMs ?? this.openedAtMs;
    const ageMs = this.o.clock.nowMs() - since;
    if (ageMs > this.o.keepaliveTimeoutMs) {
      const what = this.keepaliveAtMs === undefined ? `no keepalive (0x${this.o.profile.keepaliveId.toString(16)}) from the inverter since the port opened` : `the inverter's keepalive (0x${this.o.profile.keepaliveId.toString(16)}) stopped`;
      this.faults.set('keepalive', 'keepalive_lost', `${this.name}: ${what} ${Math.round(ageMs / 1000)} s ago (limit ${this.o.keepaliveTimeoutMs / 1000} s, inverter.can.keepaliveTimeoutS); is the inverter on and set to a CAN battery?`);
    }
  }

  // --- the reading -------------------------------------------------------------------------------

  private measure(): MeasurementInfo | undefined {
    const dc = this.dc;
    if (this.o.profile.keepaliveCarriesDc && dc) {
      // the inverter's own DC side, in the profile's sign (positive while the battery charges when currentSign = +1)
      return { source: `inverter 0x${this.o.profile.keepaliveId.toString(16)}`, atMs: dc.atMs, dcPowerW: this.o.profile.currentSign * dc.voltageV * dc.currentA };
    }
    const f = this.o.car();
    if (f.dcPowerW !== undefined && f.powerAtMs !== undefined && Number.isFinite(f.dcPowerW)) return { source: f.powerSource ?? 'car', atMs: f.powerAtMs, dcPowerW: f.dcPowerW };
    return undefined;
  }

  private updateReading(): void {
    if (this.faults.get('keepalive')) return; // the power counts as unknown: the last reading ages out
    const m = this.measure();
    if (!m) {
      this.faults.set('measurement', 'no_measurement', `${this.name}: no DC power measurement: the inverter's frames carry none (profile ${this.o.profile.name}) and the car facts give no power (vehicle link energy counters or a DC meter)`);
      return;
    }
    this.faults.set('measurement', undefined);
    this.measurement = m;
    const eff = this.o.efficiency;
    // DC at the car → AC: charging, the AC side supplied DC / efficiency; discharging, it got DC × efficiency
    const acW = m.dcPowerW >= 0 ? m.dcPowerW / eff : m.dcPowerW * eff;
    const acPowerW = Math.abs(acW) < 0.5 ? 0 : Math.round(acW * 10) / 10;
    const forming = this.ratings.islandCapable && this.gridFormingCmd;
    this.reading = {
      atMs: Math.min(m.atMs, this.o.clock.nowMs()),
      acPowerW,
      gridForming: forming,
      state: acPowerW === 0 ? 'standby' : 'running',
      alarms: [],
      setpointW: this.sentCommandW,
      measurementSource: m.source,
      // whether the inverter is on its AC bus is not in any frame: left unknown
    };
    this.judge(this.reading);
  }

  private judge(r: InverterReading): void {
    const s = this.followingSettings;
    if (!s) return;
    const v = judgeFollowing(this.following, r, this.ratings.ratedW, s);
    const before = [...this.warningsFromFaults].join();
    this.warningsFromFaults.clear();
    if (v === undefined || v.following) {
      if (v !== undefined || this.following.commandW === undefined || r.gridForming) this.faults.set('following', undefined);
    } else {
      const beyond = v.cause === 'wrong_sign' || (v.cause === 'far_off' && Math.abs(v.measuredW) > Math.abs(v.commandW));
      if (beyond || this.o.followMode === 'setpoint') {
        this.faults.set('following', 'not_following', `${this.name}: ${v.message}${beyond ? ' (beyond the advertised current limits)' : ''}`);
        // the inverter draws more than the battery allows: say so in the frames too
        if (beyond) this.warningsFromFaults.add(v.measuredW < 0 ? 'highCurrent' : 'highChargeCurrent');
      } else {
        this.faults.set('following', undefined);
      }
    }
    if ([...this.warningsFromFaults].join() !== before && this.opened) this.cycleNow();
  }

  private emit(): void {
    for (const l of [...this.listeners]) {
      try {
        l();
      } catch (e) {
        this.o.log?.(`${this.name}: change listener threw: ${(e as Error)?.message ?? String(e)}`);
      }
    }
  }
}

/** The names of the frames a profile sends, for the start-up banner. */
export function describeFrames(p: CanProfile): string {
  return p.frames.map((id) => `0x${id.toString(16).toUpperCase()} ${FRAME_LAYOUTS[id]?.name ?? '?'}`).join(', ');
}

