/**
 * The runtime loop: read ports → decide → actuate → record → report, every tick and at once on events
 * (dispatch, grid edge, e-stop, config change, driver fault). The only place where ports, the control
 * core, the store and the uplink meet. Nothing thrown below escapes it.
 */
import type { Clock, Ports } from '../hal/ports.ts';
import type { Config, ControlSettings } from './config/types.ts';
import { decide, initialMemory } from './control/decide.ts';
import { deliveredWh } from './control/dispatch.ts';
import type { StateSample } from './store/history.ts';
import type { CoreEvent, DispatchCommand, DispatchRecord, DispatchResponse, EnergyDelta, Memory, Plan, Snapshot, SocSource } from './control/types.ts';
import { isoUtc, type OutboundMessage, type QueuedMessage, type StatePayload } from './contract.ts';
import { initialMeterState, meterTick, type MeterState } from './control/metering.ts';
import { initialSocTracker, updateSocTracker, type SocTrackerState } from './control/soc-tracker.ts';

/** What the runtime needs from the store (src/store implements it). */
export interface RuntimeStore {
  recordDispatch(r: DispatchRecord, nowMs: number): void;
  /** Ledger row and the given outbox rows in one transaction; idempotent per dispatch id. */
  settleDispatch(r: DispatchRecord, msgs: OutboundMessage[], nowMs: number, opts?: { interrupted?: boolean }): QueuedMessage[];
  recordEvent(e: CoreEvent, nowMs: number): void;
  recordSample(sample: RuntimeSample): void;
  /** Run `fn` as one transaction that the other writes join (one commit per tick). */
  atomically?<T>(fn: () => T, durability?: 'durable' | 'relaxed'): T;
  /** Keep the meter state and the running energy of open dispatches, for settling after a crash. */
  saveMeterState?(cp: MeterCheckpointLike): void;
  loadMeterState?(): MeterCheckpointLike | undefined;
  /** Dispatches without a ledger row (the process died during them, or between status and settlement). */
  interruptedDispatches?(): { record: DispatchRecord; interrupted: boolean; started: boolean; fromCheckpoint: boolean }[];
}

export interface MeterCheckpointLike {
  atMs: number;
  meter: unknown;
  dispatches: { id: string; exportedWh: number; importedWh: number; carSideWh: number }[];
}

/** What the runtime needs from the uplink (src/uplink implements it). */
export interface RuntimeUplink {
  /** Stamp and send; QoS 1 messages go through the durable outbox first. */
  publish(msgs: OutboundMessage[]): void;
  /** Send whatever the outbox holds (after the store wrote rows itself). */
  drain?(): void;
}

/** One state-history sample (the store's shape). */
export type RuntimeSample = StateSample;

export interface RuntimeOptions {
  ports: Ports;
  config: Config;
  store?: RuntimeStore;
  uplink?: RuntimeUplink;
  log?: (level: 'info' | 'warn' | 'error', msg: string) => void;
  /** Called after every tick with the plan and the snapshot it came from. */
  onTick?: (plan: Plan, snapshot: Snapshot) => void;
  /** Called for every dispatch response, in order (before it is published). */
  onResponse?: (r: DispatchResponse) => void;
  onEvent?: (e: CoreEvent, atMs: number) => void;
  /** Called when a dispatch is settled (its ledger row committed). */
  onSettled?: (r: DispatchRecord) => void;
  /** Take the periodic tick from the clock (default true); simulations may drive `tick()` themselves. */
  timer?: boolean;
  version?: string;
}

export interface RuntimeStatus {
  mode: string;
  grid: 'up' | 'down';
  socPct: number | null;
  socSource: SocSource;
  socAgeS: number | null;
  powerW: number;
  setpointW: number;
  floors: Plan['floors'] | null;
  dispatchId: string | null;
  backup: Plan['backup'] | null;
  departureAt: string | null;
  departureAtRisk: boolean;
  reasons: string[];
  energy: { importedWh: number; exportedWh: number; carSideWh: number };
  ticks: number;
}

const GRID_ALARMS = new Set(['GRID_DISCONNECT', 'AC_UNDER_VOLT', 'UNDER_FREQ', 'OVER_FREQ', 'AC_OVER_VOLT']);

export class Runtime {
  private config: Config;
  private settings: ControlSettings;
  private memory: Memory;
  private readonly clock: Clock;
  private readonly ports: Ports;
  private inbox: DispatchCommand[] = [];
  private running?: Promise<void>;
  private again = false;
  private timerHandle: unknown;
  private nextTickAtMs = 0;
  private stopped = false;
  private unsubscribers: (() => void)[] = [];
  private meter: MeterState = initialMeterState();
  private socTracker: SocTrackerState = initialSocTracker();
  private pendingEnergy: EnergyDelta = { exportedWh: 0, importedWh: 0, carSideWh: 0 };
  private lastPlan?: Plan;
  private lastSnapshot?: Snapshot;
  private openFault?: string;
  private lastStateMs = -Infinity;
  private lastFlex?: string;
  private lastFlexMs = -Infinity;
  private lastForwardedLimitW?: number;
  private commandedSetpointW?: number;
  private commandedGridForming?: boolean;
  private ticks = 0;
  readonly totals = { importedWh: 0, exportedWh: 0, carSideWh: 0 };
  private readonly log: NonNullable<RuntimeOptions['log']>;

  constructor(private readonly opts: RuntimeOptions) {
    this.ports = opts.ports;
    this.clock = opts.ports.clock;
    this.config = opts.config;
    this.settings = controlSettings(opts.config);
    this.memory = initialMemory(this.clock.nowMs());
    this.log = opts.log ?? (() => {});
  }

  /** Open every port (a port that fails to open leaves the runtime in fault, running), then tick. */
  async start(): Promise<void> {
    const opened: string[] = [];
    for (const port of [this.ports.inverter, this.ports.vehicle, this.ports.gridSense, this.ports.relays, this.ports.estop, this.ports.siteMeter]) {
      if (!port) continue;
      try {
        await port.open();
        opened.push(port.kind);
      } catch (e) {
        this.openFault = `${port.kind} failed to open: ${(e as Error)?.message ?? String(e)}`;
        this.log('error', this.openFault);
      }
    }
    for (const port of [this.ports.inverter, this.ports.vehicle, this.ports.gridSense, this.ports.relays, this.ports.estop]) {
      if (port) this.unsubscribers.push(port.onChange(() => this.requestTick()));
    }
    this.nextTickAtMs = this.clock.nowMs();
    await this.recover();
    await this.tick();
    if (this.opts.timer !== false) this.armTimer();
  }

  /**
   * After a crash or power cut: settle what was running from the energy measured (the last checkpoint
   * plus what the inverter's counters moved since), marked interrupted; put back dispatches that had not
   * started yet, so they still run; answer the ones whose time passed meanwhile.
   */
  private async recover(): Promise<void> {
    const store = this.opts.store;
    if (!store?.interruptedDispatches) return;
    try {
      const now = this.clock.nowMs();
      const cp = store.loadMeterState?.();
      await this.refreshAll();
      const reading = this.ports.inverter.state().reading;
      let sinceCheckpoint: EnergyDelta = { exportedWh: 0, importedWh: 0, carSideWh: 0 };
      if (cp?.meter && reading) {
        const t = meterTick(cp.meter as MeterState, reading, this.meterSettings());
        sinceCheckpoint = t.delta;
        this.meter = t.state;
      }
      const restored: DispatchRecord[] = [];
      const msgs: OutboundMessage[] = [];
      for (const u of store.interruptedDispatches()) {
        let rec = u.record;
        if (u.interrupted && !u.started && rec.endMs > now) {
          restored.push(rec);
          continue;
        }
        if (u.interrupted && !u.started) {
          const expired: DispatchRecord = { ...rec, status: 'expired', reason: 'expired', endedMs: now };
          store.recordDispatch(expired, now);
          msgs.push(responseMessage({ id: rec.id, status: 'expired', reason: 'expired', replyTo: rec.replyTo }));
          continue;
        }
        if (u.interrupted) {
          const delta = u.fromCheckpoint && (rec.status === 'active' || rec.status === 'curtailed') ? sinceCheckpoint : { exportedWh: 0, importedWh: 0, carSideWh: 0 };
          rec = {
            ...rec, status: 'completed', reason: 'interrupted', endedMs: Math.min(now, rec.endMs),
            exportedWh: rec.exportedWh + delta.exportedWh, importedWh: rec.importedWh + delta.importedWh, carSideWh: rec.carSideWh + delta.carSideWh,
          };
        }
        const resp = { id: rec.id, status: rec.status, reason: rec.reason, deliveredWh: deliveredWh(rec), replyTo: rec.replyTo };
        store.settleDispatch(rec, [responseMessage(resp), ledgerMessage(rec, u.interrupted)], now, { interrupted: u.interrupted });
        this.opts.onSettled?.(rec);
        this.emit({ kind: 'dispatch', severity: 'warning', message: `dispatch ${rec.id} settled after a restart: ${round1(rec.exportedWh)} Wh exported, ${round1(rec.importedWh)} Wh imported${u.interrupted ? ' (interrupted)' : ''}` });
      }
      if (restored.length) this.memory = { ...this.memory, dispatches: [...this.memory.dispatches, ...restored] };
      if (msgs.length) this.opts.uplink?.publish(msgs);
      this.opts.uplink?.drain?.();
    } catch (e) {
      this.log('error', `recovery after restart failed: ${(e as Error)?.message ?? String(e)}`);
    }
  }

  private meterSettings(): { efficiency: number; maxPowerW: number } {
    const r = this.ports.inverter.state().ratings;
    return { efficiency: r?.efficiency ?? 0.9, maxPowerW: Math.max(r?.ratedW ?? 0, r?.maxChargeW ?? 0, r?.maxDischargeW ?? 0, 1) };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timerHandle !== undefined) this.clock.clearTimer(this.timerHandle);
    for (const u of this.unsubscribers) u();
    await this.settled();
    // leave the power stage at zero on the way out; the device's own watchdog covers a crash
    await safely(() => this.ports.inverter.setPowerW(0));
    for (const port of [this.ports.inverter, this.ports.vehicle, this.ports.gridSense, this.ports.relays, this.ports.estop, this.ports.siteMeter])
      if (port) await safely(() => port.close());
  }

  private armTimer(): void {
    if (this.stopped) return;
    const periodMs = this.settings.control.tickS * 1000;
    const now = this.clock.nowMs();
    this.nextTickAtMs += periodMs;
    // after a stall, skip missed ticks rather than run a burst of them
    if (this.nextTickAtMs <= now) this.nextTickAtMs = now + periodMs;
    this.timerHandle = this.clock.setTimer(() => {
      this.requestTick();
      this.armTimer();
    }, this.nextTickAtMs - now);
  }

  /** A dispatch or cancel from the aggregator: decided on at once. */
  submit(cmd: DispatchCommand): void {
    this.inbox.push(cmd);
    this.requestTick();
  }

  /** Replace the config (reload); the next tick uses it. */
  applyConfig(config: Config): void {
    this.config = config;
    this.settings = controlSettings(config);
    this.emit({ kind: 'config', severity: 'info', message: 'configuration reloaded' });
    this.requestTick();
  }

  /** Report an event that did not come from the core (config refused, driver warnings). */
  emit(e: CoreEvent): void {
    const now = this.clock.nowMs();
    this.opts.onEvent?.(e, now);
    safelySync(() => this.opts.store?.recordEvent(e, now), this.log);
    safelySync(() => this.opts.uplink?.publish([{ topic: 'event', payload: { ...e }, qos: 1, retain: false, class: 'event' }]), this.log);
  }

  requestTick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.loop().finally(() => {
      this.running = undefined;
    });
  }

  /** Resolves once no tick is running or queued. */
  async settled(): Promise<void> {
    for (let guard = 0; guard < 1000 && this.running; guard++) await this.running;
  }

  /** Run one tick now (waits for a running one first). */
  async tick(): Promise<void> {
    await this.settled();
    this.requestTick();
    await this.settled();
  }

  private async loop(): Promise<void> {
    // bounded: events arriving during a tick cause at most a few extra ticks
    for (let i = 0; i < 5; i++) {
      this.again = false;
      try {
        await this.tickOnce();
      } catch (e) {
        this.log('error', `tick failed: ${(e as Error)?.stack ?? String(e)}`);
      }
      if (!this.again || this.stopped) break;
    }
  }

  private async refreshAll(): Promise<void> {
    const timeoutMs = Math.max(200, this.settings.control.tickS * 1000);
    const siteMeter = this.ports.siteMeter;
    const all = Promise.all([this.ports.inverter.refresh(), this.ports.vehicle.refresh(), siteMeter ? siteMeter.refresh() : undefined]);
    // one guard for the whole read: a driver that never answers must not stall the loop
    await withTimeout(all as unknown as Promise<void>, timeoutMs, this.clock);
  }

  private async tickOnce(): Promise<void> {
    await this.refreshAll();
    const now = this.clock.nowMs();
    const snapshot = this.snapshot(now);
    const plan = decide(snapshot, this.settings, this.memory, now);
    this.memory = plan.memory;
    this.ticks++;
    await this.actuate(plan);
    this.record(plan, snapshot, now);
    this.lastPlan = plan;
    this.lastSnapshot = snapshot;
    this.opts.onTick?.(plan, snapshot);
  }

  private snapshot(now: number): Snapshot {
    const inv = this.ports.inverter.state();
    const veh = this.ports.vehicle.state();
    const grid = this.ports.gridSense?.state();
    const relays = this.ports.relays?.state();
    const meter = this.ports.siteMeter?.state();
    let delta: EnergyDelta = { exportedWh: 0, importedWh: 0, carSideWh: 0 };
    if (inv.reading) {
      const m = meterTick(this.meter, inv.reading, this.meterSettings());
      this.meter = m.state;
      delta = m.delta;
    }
    this.totals.importedWh += delta.importedWh;
    this.totals.exportedWh += delta.exportedWh;
    this.totals.carSideWh += delta.carSideWh;
    const energy = {
      importedWh: this.pendingEnergy.importedWh + delta.importedWh,
      exportedWh: this.pendingEnergy.exportedWh + delta.exportedWh,
      carSideWh: this.pendingEnergy.carSideWh + delta.carSideWh,
    };
    this.pendingEnergy = { exportedWh: 0, importedWh: 0, carSideWh: 0 };

    // SoC: the car's own figure, else the inverter's storage SoC, else tracked from metered energy
    let socPct: number | undefined;
    let socAtMs: number | undefined;
    let socSource: SocSource = 'none';
    if (!veh.connected) this.socTracker = initialSocTracker();
    else {
      const invSoc = veh.socPct === undefined ? inv.reading?.storageSocPct : undefined;
      const t = updateSocTracker(this.socTracker, {
        atMs: now, reportedSocPct: veh.socPct, reportedAtMs: veh.socAtMs, carSideWh: delta.carSideWh,
        capacityWh: veh.capacityWh ?? this.config.vehicle.capacityWh ?? undefined, knownSocPct: invSoc,
      });
      this.socTracker = t.state;
      socPct = t.socPct;
      socAtMs = t.socAtMs;
      socSource = invSoc !== undefined ? 'inverter' : t.socSource;
    }
    const reading = inv.reading;
    const commands = this.inbox;
    this.inbox = [];
    const inverterFault = inv.fault ? `${inv.fault.code}: ${inv.fault.message}` : reading?.state === 'fault' ? `inverter reports FAULT${reading.alarms.length ? ` (${reading.alarms.join(', ')})` : ''}` : undefined;
    return {
      vehicle: {
        connected: veh.connected,
        socPct,
        socAtMs,
        socSource,
        capacityWh: veh.capacityWh,
        minSocPct: veh.minSocPct,
        maxSocPct: veh.maxSocPct,
        targetSocPct: veh.targetSocPct,
        departureAtMs: veh.departureAtMs,
        maxChargeW: veh.maxChargeW,
        maxDischargeW: veh.maxDischargeW,
        bidirectional: veh.bidirectional,
        atMs: veh.atMs,
        fault: veh.fault ? `${veh.fault.code}: ${veh.fault.message}` : undefined,
      },
      inverter: {
        atMs: reading?.atMs,
        powerW: reading?.acPowerW,
        ratedW: inv.ratings?.ratedW,
        maxChargeW: inv.ratings?.maxChargeW,
        maxDischargeW: inv.ratings?.maxDischargeW,
        efficiency: inv.ratings?.efficiency,
        gridForming: reading?.gridForming,
        connected: reading?.connected,
        gridAlarm: reading && !reading.gridForming ? reading.alarms.some((a) => GRID_ALARMS.has(a)) : undefined,
        islandCapable: inv.ratings?.islandCapable,
        fault: inverterFault,
      },
      grid: { sensePresent: grid?.present, fault: grid?.fault ? `${grid.fault.code}: ${grid.fault.message}` : undefined },
      contactor: {
        installed: relays !== undefined,
        feedbackClosed: relays?.contactorFeedbackClosed,
        commandedClosed: relays?.contactorCommandClosed ?? true,
      },
      estopPressed: this.ports.estop?.state().pressed ?? false,
      houseLoadW: meter?.houseLoadW,
      loadTierCount: relays?.loadTiersOn.length ?? 0,
      commands,
      energy,
      runtimeFault: this.openFault ?? (relays?.fault ? `relays: ${relays.fault.message}` : undefined),
    };
  }

  /**
   * Apply a plan in the order invariant 5 demands: leaving the grid, power to zero before the contactor
   * opens and grid-forming only after; rejoining, grid-forming off before the contactor closes.
   */
  private async actuate(plan: Plan): Promise<void> {
    const relays = this.ports.relays;
    const contactorNow = relays?.state().contactorCommandClosed ?? true;
    const setpoint = this.setpointChange(plan);
    const forming = this.gridFormingChange(plan);
    const contactor = relays !== undefined && contactorNow !== plan.contactorClosed;
    // most ticks change nothing: no awaits at all then
    if (setpoint || forming || contactor) {
      if (contactor && !plan.contactorClosed) {
        if (setpoint) await this.applySetpoint(plan);
        await safely(() => relays!.setContactor(false));
        if (forming) await this.applyGridForming(plan);
      } else if (contactor && plan.contactorClosed) {
        if (forming) await this.applyGridForming(plan);
        if (setpoint) await this.applySetpoint(plan);
        await safely(() => relays!.setContactor(true));
      } else if (plan.gridForming) {
        if (setpoint) await this.applySetpoint(plan);
        if (forming) await this.applyGridForming(plan);
      } else {
        if (forming) await this.applyGridForming(plan);
        if (setpoint) await this.applySetpoint(plan);
      }
    }
    if (relays) {
      const tiers = relays.state().loadTiersOn;
      for (let i = 0; i < plan.loadTiersOn.length && i < tiers.length; i++)
        if (tiers[i] !== plan.loadTiersOn[i]) await safely(() => relays.setLoadTier(i, plan.loadTiersOn[i]));
    }
    if (this.config.vehicleLink.forwardLimit && plan.setpointW !== this.lastForwardedLimitW) {
      this.lastForwardedLimitW = plan.setpointW;
      await safely(() => this.ports.vehicle.setPowerLimitW(plan.setpointW));
    }
  }

  /** Unchanged setpoints are not re-sent: the driver keeps the device watchdog fed itself (port contract). */
  private setpointChange(plan: Plan): boolean {
    return plan.setpointW !== this.commandedSetpointW || this.ports.inverter.state().fault !== undefined;
  }

  private gridFormingChange(plan: Plan): boolean {
    return this.commandedGridForming !== plan.gridForming || this.ports.inverter.state().reading?.gridForming !== plan.gridForming;
  }

  private async applySetpoint(plan: Plan): Promise<void> {
    await safely(() => this.ports.inverter.setPowerW(plan.setpointW));
    this.commandedSetpointW = plan.setpointW;
  }

  private async applyGridForming(plan: Plan): Promise<void> {
    await safely(() => this.ports.inverter.setGridForming(plan.gridForming));
    this.commandedGridForming = plan.gridForming;
  }

  private record(plan: Plan, s: Snapshot, now: number): void {
    const store = this.opts.store;
    // status changes, settlements and their outbox rows in one commit; quiet ticks open no transaction.
    // A settlement (ledger) must survive a power cut; a status change or event need only survive a
    // killed process, which keeps the fsync off the path of an `accepted` answer.
    if (store?.atomically && (plan.responses.length || plan.events.length || plan.finished.length)) {
      try {
        store.atomically(() => this.recordInner(plan, s, now), plan.finished.length ? 'durable' : 'relaxed');
      } catch (e) {
        this.log('error', `record failed: ${(e as Error)?.message ?? String(e)}`);
      }
      return;
    }
    this.recordInner(plan, s, now);
  }

  private recordInner(plan: Plan, s: Snapshot, now: number): void {
    const store = this.opts.store;
    const uplink = this.opts.uplink;
    const msgs: OutboundMessage[] = [];

    for (const e of plan.events) {
      this.opts.onEvent?.(e, now);
      safelySync(() => store?.recordEvent(e, now), this.log);
      msgs.push({ topic: 'event', payload: { ...e }, qos: 1, retain: false, class: 'event' });
    }

    for (const resp of plan.responses) {
      const rec = plan.finished.find((r) => r.id === resp.id) ?? plan.memory.dispatches.find((r) => r.id === resp.id);
      if (rec) safelySync(() => store?.recordDispatch(rec, now), this.log);
      this.opts.onResponse?.(resp);
      const msg = responseMessage(resp);
      const settles = rec !== undefined && plan.finished.includes(rec) && (resp.status === 'completed' || resp.status === 'cancelled' || resp.status === 'superseded');
      if (settles) {
        // the ledger row is committed before the final response and the ledger message are queued
        const ledgerMsg = ledgerMessage(rec);
        if (store) {
          safelySync(() => store.settleDispatch(rec, [msg, ledgerMsg], now), this.log);
          this.opts.onSettled?.(rec);
          safelySync(() => uplink?.drain?.(), this.log);
        } else {
          this.opts.onSettled?.(rec);
          msgs.push(msg, ledgerMsg);
        }
        continue;
      }
      msgs.push(msg);
    }

    if (uplink) this.report(plan, s, now, msgs);
    if (msgs.length) safelySync(() => uplink?.publish(msgs), this.log);

    if (store?.saveMeterState) {
      const open = plan.memory.dispatches.filter((r) => r.status === 'active' || r.status === 'curtailed' || r.status === 'accepted');
      safelySync(() => store.saveMeterState!({ atMs: now, meter: this.meter, dispatches: open.map((r) => ({ id: r.id, exportedWh: r.exportedWh, importedWh: r.importedWh, carSideWh: r.carSideWh })) }), this.log);
    }
    if (store)
      safelySync(
        () =>
          store.recordSample({
            atMs: now, mode: plan.mode, socPct: s.vehicle.socPct ?? null, powerW: s.inverter.powerW ?? 0, setpointW: plan.setpointW,
            houseLoadW: s.houseLoadW ?? null, gridUp: gridUp(plan, s), importedWh: this.totals.importedWh, exportedWh: this.totals.exportedWh,
          }),
        this.log,
      );
  }

  /** `state` on its interval and on a mode change; retained `flex` when it moved noticeably. */
  private report(plan: Plan, s: Snapshot, now: number, msgs: OutboundMessage[]): void {
    const modeChanged = this.lastPlan?.mode !== plan.mode;
    if (modeChanged || now - this.lastStateMs >= this.config.uplink.stateIntervalS * 1000) {
      this.lastStateMs = now;
      msgs.push({ topic: 'state', payload: statePayload(plan, s, this.totals, now) as unknown as Record<string, unknown>, qos: 0, retain: false, class: 'state' });
    }
    const f = plan.flex;
    const flexKey = `${round100(f.maxDischargeW)}|${round100(f.maxChargeW)}|${round100(f.dischargeableWh)}|${round100(f.chargeableWh)}|${f.untilMs}`;
    if (flexKey !== this.lastFlex && now - this.lastFlexMs >= Math.min(this.config.uplink.stateIntervalS, 10) * 1000) {
      this.lastFlex = flexKey;
      this.lastFlexMs = now;
      msgs.push({ topic: 'flex', payload: flexPayload(plan) as unknown as Record<string, unknown>, qos: 1, retain: true, class: 'flex' });
    }
  }

  memorySnapshot(): Memory {
    return this.memory;
  }

  lastPlanned(): Plan | undefined {
    return this.lastPlan;
  }

  status(): RuntimeStatus {
    const p = this.lastPlan;
    const s = this.lastSnapshot;
    const now = this.clock.nowMs();
    return {
      mode: p?.mode ?? 'idle',
      grid: p && s && !gridUp(p, s) ? 'down' : 'up',
      socPct: s?.vehicle.socPct ?? null,
      socSource: s?.vehicle.socSource ?? 'none',
      socAgeS: s?.vehicle.socAtMs !== undefined ? Math.max(0, Math.round((now - s.vehicle.socAtMs) / 1000)) : null,
      powerW: Math.round(s?.inverter.powerW ?? 0),
      setpointW: p?.setpointW ?? 0,
      floors: p?.floors ?? null,
      dispatchId: p?.activeDispatchId ?? null,
      backup: p?.backup ?? null,
      departureAt: p?.departureAtMs !== undefined ? isoUtc(p.departureAtMs) : null,
      departureAtRisk: p?.departureAtRisk ?? false,
      reasons: p?.reasons ?? [],
      energy: { importedWh: round1(this.totals.importedWh), exportedWh: round1(this.totals.exportedWh), carSideWh: round1(this.totals.carSideWh) },
      ticks: this.ticks,
    };
  }
}

export function controlSettings(c: Config): ControlSettings {
  return {
    vehicle: c.vehicle,
    backup: c.backup,
    site: c.site,
    control: c.control,
    timezone: c.timezone ?? Intl.DateTimeFormat().resolvedOptions().timeZone ?? 'UTC',
  };
}

export function responseMessage(r: DispatchResponse): OutboundMessage {
  const payload: Record<string, unknown> = { id: r.id, status: r.status };
  if (r.reason !== undefined) payload.reason = r.reason;
  if (r.acceptedW !== undefined) payload.acceptedW = r.acceptedW;
  if (r.deliveredWh !== undefined) payload.deliveredWh = r.deliveredWh;
  return {
    topic: 'dispatch/response', payload, qos: 1, retain: false, class: 'response',
    responseTopic: r.replyTo?.responseTopic, correlationData: r.replyTo?.correlationData,
  };
}

export function ledgerMessage(r: DispatchRecord, interrupted = false): OutboundMessage {
  const payload: Record<string, unknown> = {
    id: r.id,
    start: isoUtc(r.startedMs ?? r.startMs),
    end: isoUtc(r.endedMs ?? r.endMs),
    exportedWh: round1(r.exportedWh),
    importedWh: round1(r.importedWh),
    carSideWh: round1(r.carSideWh),
    status: r.status,
  };
  if (interrupted) payload.interrupted = true;
  return { topic: 'ledger', payload, qos: 1, retain: false, class: 'ledger' };
}

export function statePayload(p: Plan, s: Snapshot, totals: { importedWh: number; exportedWh: number }, now: number): StatePayload {
  return {
    mode: p.mode,
    grid: gridUp(p, s) ? 'up' : 'down',
    vehicle: {
      connected: s.vehicle.connected,
      socPct: s.vehicle.socPct !== undefined ? round1(s.vehicle.socPct) : null,
      socAgeS: s.vehicle.socAtMs !== undefined ? Math.max(0, Math.round((now - s.vehicle.socAtMs) / 1000)) : null,
      socSource: s.vehicle.socSource,
    },
    powerW: Math.round(s.inverter.powerW ?? 0),
    setpointW: p.setpointW,
    floors: { dischargeFloorPct: p.floors.dischargeFloorPct, effectiveFloorPct: round1(p.floors.effectiveFloorPct), backupFloorPct: p.floors.backupFloorPct },
    dispatchId: p.activeDispatchId ?? null,
    energy: { importedWh: round1(totals.importedWh), exportedWh: round1(totals.exportedWh) },
    backup: { phase: p.backup.phase, hoursLeft: p.backup.hoursLeft !== undefined && Number.isFinite(p.backup.hoursLeft) ? round1(p.backup.hoursLeft) : null, shedTiers: p.backup.shedTiers },
    departure: { at: p.departureAtMs !== undefined ? isoUtc(p.departureAtMs) : null, atRisk: p.departureAtRisk },
    reasons: p.reasons,
  };
}

export function flexPayload(p: Plan): { maxDischargeW: number; maxChargeW: number; dischargeableWh: number; chargeableWh: number; until: string | null } {
  return {
    maxDischargeW: p.flex.maxDischargeW,
    maxChargeW: p.flex.maxChargeW,
    dischargeableWh: p.flex.dischargeableWh,
    chargeableWh: p.flex.chargeableWh,
    until: p.flex.untilMs !== undefined ? isoUtc(p.flex.untilMs) : null,
  };
}

/** The grid as the sense line shows it; without one, as the inverter and the island phase imply. */
export function gridUp(p: Plan, s: Snapshot): boolean {
  if (s.grid.sensePresent !== undefined) return s.grid.sensePresent;
  return !s.inverter.gridAlarm && !p.backup.active;
}

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}

function round100(x: number): number {
  return Math.round(x / 100) * 100;
}

async function safely(fn: () => Promise<void> | void): Promise<void> {
  try {
    await fn();
  } catch {
    // ports report failures in their state; a throw here must not stop the loop
  }
}

function safelySync(fn: () => unknown, log: NonNullable<RuntimeOptions['log']>): void {
  try {
    fn();
  } catch (e) {
    log('error', `record/report failed: ${(e as Error)?.message ?? String(e)}`);
  }
}

function withTimeout(p: Promise<void>, ms: number, clock: Clock): Promise<void> {
  return new Promise((resolve) => {
    let done = false;
    const handle = clock.setTimer(() => {
      if (!done) {
        done = true;
        resolve();
      }
    }, ms);
    p.then(
      () => undefined,
      () => undefined,
    ).then(() => {
      if (!done) {
        done = true;
        clock.clearTimer(handle);
        resolve();
      }
    });
  });
}
