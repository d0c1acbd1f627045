/**
 * The runtime loop: the only place where ports, the control core, the store and the uplink meet.
 *
 * - The **measurement poll** (refresh of the inverter, the vehicle link and the site meter) runs on its
 *   own cadence, once per `control.tickS`, single-flight per port and bounded; a decision follows it.
 * - An **event** (a dispatch, a grid-sense edge, e-stop, a config reload, a port's fault appearing or
 *   clearing) is decided at once on the readings in hand, whose ages are in the snapshot: no poll sits on
 *   the path of a dispatch or an edge (issue 14, point 6).
 * - A **decision** is synchronous: snapshot → decide → issue commands → record. Commands go through
 *   bounded, coalescing channels (port-calls.ts), so no device can hold the loop up (point 7).
 * - Ports that fail to open leave the runtime up in `fault`, with the cause in status and state, and are
 *   opened again with back-off, 1 s doubling to 60 s (issue 10).
 * Nothing thrown below escapes it.
 */
import { KEEP_FINISHED_MS, MAX_RECORDS } from '../control/dispatch.ts';
import type { Clock, Ports } from '../../hal/ports.ts';
import type { Config, ControlSettings } from '../config/types.ts';
import { decide, initialMemory } from '../control/decide.ts';
import type { CoreEvent, DispatchCommand, Memory, Plan, Snapshot } from '../control/types.ts';
import { isoUtc } from '../contract.ts';
import { Actuator } from './actuation.ts';
import { gridUp, round1, siteFigures } from './outgoing.ts';
import { BoundedCaller, within } from './port-calls.ts';
import { Recorder } from './recording.ts';
import { loadIsland, recoverDispatches, settleOnStop, startupFindings } from './recovery.ts';
import { controlSettings } from './settings.ts';
import { SnapshotAssembler } from './snapshot.ts';
import type { RuntimeLog, RuntimeOptions, RuntimeStatus } from './types.ts';

/** Default bound on one port call, ms (`control.portCallTimeoutMs`). */
export const DEFAULT_PORT_CALL_TIMEOUT_MS = 1500;
/** Opening a port (connect and discover) may take this many call bounds. */
const OPEN_BOUND_FACTOR = 10;
/** Back-off between attempts to open a port: 1 s doubling to 60 s. */
const OPEN_RETRY_FIRST_MS = 1000;
const OPEN_RETRY_MAX_MS = 60_000;
/** Decisions run back to back for events arriving during one, at most this many before yielding. */
const MAX_DECISIONS_IN_A_ROW = 5;

type AnyPort = NonNullable<Ports['inverter' | 'vehicle' | 'gridSense' | 'relays' | 'estop' | 'siteMeter']>;

interface OpenState {
  open: boolean;
  /** Why the last attempt failed. */
  cause?: string;
  attempts: number;
  inFlight: boolean;
  /** The attempt running now (a stop during start-up waits a bound for it, to set the power to zero). */
  attempt?: Promise<void>;
  retryTimer?: unknown;
}

/** Ports on the board itself (GPIO), opened and acted on before the devices behind a bus or a broker. */
const LOCAL_PORTS: ReadonlySet<string> = new Set(['grid-sense', 'relays', 'estop']);

export class Runtime {
  private config: Config;
  private settings: ControlSettings;
  private memory: Memory;
  private readonly clock: Clock;
  private readonly ports: Ports;
  private inbox: DispatchCommand[] = [];
  private timerHandle: unknown;
  private nextTickAtMs = 0;
  private started = false;
  private stopped = false;
  private stopping?: Promise<void>;
  private unsubscribers: (() => void)[] = [];
  private readonly caller: BoundedCaller;
  private readonly assembler: SnapshotAssembler;
  private readonly actuator: Actuator;
  private readonly recorder: Recorder;
  private readonly openStates = new Map<string, OpenState>();
  private readonly refreshing = new Set<string>();
  private polling?: Promise<void>;
  private decisionQueued = false;
  private deciding = false;
  private again = false;
  private lastPlan?: Plan;
  private lastSnapshot?: Snapshot;
  private ticks = 0;
  private readonly log: RuntimeLog;

  constructor(private readonly opts: RuntimeOptions) {
    this.ports = opts.ports;
    this.clock = opts.ports.clock;
    this.config = opts.config;
    this.settings = controlSettings(opts.config);
    this.memory = initialMemory(this.clock.nowMs());
    this.log = opts.log ?? (() => {});
    this.caller = new BoundedCaller(this.clock, () => this.portCallTimeoutMs(), (kind) => {
      const f = this.caller.fault(kind);
      this.log(f ? 'warn' : 'info', f ? `${kind}: ${f}` : `${kind}: answering again`);
      // a driver fault appearing or clearing is an event: decide at once
      this.requestDecision();
    });
    this.assembler = new SnapshotAssembler(this.ports);
    this.actuator = new Actuator(this.ports, this.caller, (kind) => this.isOpen(kind));
    this.recorder = new Recorder(opts, this.assembler, this.log);
  }

  /** Energy metered since start, Wh. */
  get totals(): { importedWh: number; exportedWh: number; carSideWh: number } {
    return this.assembler.totals;
  }

  private portCallTimeoutMs(): number {
    const v = this.config.control.portCallTimeoutMs;
    return typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : DEFAULT_PORT_CALL_TIMEOUT_MS;
  }

  /** True during the first decision of a start, taken on the board's own lines before the devices are open. */
  private actingBeforeRecovery = false;

  private allPorts(): AnyPort[] {
    const p = this.ports;
    return [p.inverter, p.vehicle, p.gridSense, p.relays, p.estop, p.siteMeter].filter((x): x is AnyPort => x !== undefined);
  }

  private isOpen(kind: string): boolean {
    return this.openStates.get(kind)?.open ?? false;
  }

  /**
   * Restore the island state, open every port (one that fails leaves the runtime in fault, running, and is
   * retried), settle what a crash left open, then the first poll and decision. Never rejects; bounded.
   */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    try {
      await this.startInner();
    } catch (e) {
      this.log('error', `start-up failed: ${(e as Error)?.stack ?? String(e)}`);
    }
  }

  private async startInner(): Promise<void> {
    const kept = loadIsland(this.opts.store);
    if (kept.problem) this.log('error', kept.problem);
    // the core reconciles the kept phase with the contactor and the inverter before it acts on it
    this.memory = initialMemory(this.clock.nowMs(), kept.island ? { island: kept.island, savedAtMs: kept.savedAtMs } : undefined);
    this.recorder.savedIslandJson = kept.json;

    for (const port of this.allPorts()) this.openStates.set(port.kind, { open: false, attempts: 0, inFlight: false });
    // the board's own lines first: a grid lost while the inverter is still being opened (or hangs) must
    // open the contactor at once (invariant 5: opening never waits on another device)
    const local = this.allPorts().filter((port) => LOCAL_PORTS.has(port.kind));
    const remote = this.allPorts().filter((port) => !LOCAL_PORTS.has(port.kind));
    const remoteOpen = Promise.all(remote.map((port) => this.openPort(port)));
    await Promise.all(local.map((port) => this.openPort(port)));
    if (this.stopped) return;
    for (const port of local)
      if ('onChange' in port) this.unsubscribers.push(port.onChange(() => this.requestDecision()));
    // the core is reconciling: zero power, no forming, an open contactor left open, a dead grid opened
    if (local.length) {
      // before recovery has read what the store kept: act, and say what happened, but write no
      // checkpoint or sample that recovery would then mistake for the last one before the restart
      this.actingBeforeRecovery = true;
      try {
        this.decideNow();
      } finally {
        this.actingBeforeRecovery = false;
      }
    }
    await remoteOpen;
    if (this.stopped) return;
    for (const port of remote)
      if ('onChange' in port) this.unsubscribers.push(port.onChange(() => this.requestDecision()));
    // storage that stops (or starts again) writing is an event too
    const store = this.opts.store;
    if (store?.onHealthChange) {
      try {
        this.unsubscribers.push(store.onHealthChange(() => this.requestDecision()));
      } catch (e) {
        this.log('error', `store health: ${(e as Error)?.message ?? String(e)}`);
      }
    }

    this.nextTickAtMs = this.clock.nowMs();
    await this.poll();
    if (this.stopped) return;
    // on a usual start (nothing unsafe, nothing lost) the core's one start-up event says it all, and the
    // homeowner's event list gets one line per start; the raw findings go to the log. Anything unsafe or a
    // lost island state is an event of its own (a warning).
    const findings = startupFindings({ ...kept, ports: this.ports, nowMs: this.clock.nowMs() });
    if (findings.severity === 'info') this.log('info', findings.message);
    else this.emit(findings);
    this.recover();
    this.decideNow();
    if (this.opts.timer !== false) this.armTimer();
  }

  /** One attempt to open a port, bounded; on failure the next one is scheduled with back-off. */
  private openPort(port: AnyPort): Promise<void> {
    const st = this.openStates.get(port.kind);
    if (!st || st.open || st.inFlight || this.stopped) return Promise.resolve();
    st.attempt = this.openAttempt(port, st);
    return st.attempt;
  }

  private async openAttempt(port: AnyPort, st: OpenState): Promise<void> {
    st.inFlight = true;
    st.attempts++;
    let error: unknown;
    const boundMs = this.portCallTimeoutMs() * OPEN_BOUND_FACTOR;
    const outcome = await this.caller.call(port.kind, 'open', async () => {
      try {
        await port.open();
      } catch (e) {
        error = e;
        throw e;
      }
    }, {
      track: false,
      boundMs,
      // an open that answers after its bound still counts: the port is open
      settle: (o, late) => {
        st.inFlight = false;
        if (late && o === 'answered' && !this.stopped) this.opened(port.kind, st);
      },
    });
    if (outcome === 'answered') {
      this.opened(port.kind, st);
      return;
    }
    const cause = outcome === 'timeout' ? `no answer within ${boundMs} ms` : ((error as Error)?.message ?? String(error));
    const first = st.cause === undefined;
    const changed = st.cause !== cause;
    st.cause = cause;
    const delayMs = Math.min(OPEN_RETRY_MAX_MS, OPEN_RETRY_FIRST_MS * 2 ** Math.min(16, st.attempts - 1));
    const msg = `${port.kind} failed to open: ${cause}`;
    this.log('error', `${msg} (attempt ${st.attempts}; next in ${delayMs / 1000} s)`);
    if (first || changed) this.emit({ kind: 'port', severity: 'alarm', message: `${msg}; retrying with back-off` });
    if (this.stopped) return;
    st.retryTimer = this.clock.setTimer(() => {
      st.retryTimer = undefined;
      if (this.stopped || st.open) return;
      if (st.inFlight) {
        // the last attempt is still running past its bound: wait for it, then try again
        st.retryTimer = this.clock.setTimer(() => void this.openPort(port), delayMs);
        return;
      }
      void this.openPort(port);
    }, delayMs);
    if (this.started && this.lastPlan) this.requestDecision();
  }

  private opened(kind: string, st: OpenState): void {
    if (st.open) return;
    st.open = true;
    if (st.retryTimer !== undefined) this.clock.clearTimer(st.retryTimer);
    st.retryTimer = undefined;
    const after = st.attempts;
    const wasFailing = st.cause !== undefined;
    st.cause = undefined;
    st.attempts = 0;
    // whatever was commanded before is unknown to a port just opened
    this.actuator.forget(kind);
    if (wasFailing) {
      this.log('info', `${kind} opened (attempt ${after})`);
      this.emit({ kind: 'port', severity: 'info', message: `${kind} opened after ${after} attempts` });
      this.requestDecision();
    }
  }

  /** Why ports are not open, for the core (a fault at once) and for status. */
  private openFaults(): string[] {
    const out: string[] = [];
    for (const [kind, st] of this.openStates) if (!st.open && st.cause !== undefined) out.push(`${kind} failed to open: ${st.cause}`);
    return out;
  }

  /** Settle what a crash left open (the poll before gave the inverter's counters). */
  private recover(): void {
    try {
      const restored = recoverDispatches({
        opts: this.opts, nowMs: this.clock.wallMs(), reading: this.ports.inverter.state().reading, assembler: this.assembler,
        emit: (e) => this.emit(e),
      });
      if (restored.length) this.memory = { ...this.memory, dispatches: [...this.memory.dispatches, ...restored] };
      // finished dispatches come back for the duplicate rule: a retained or re-sent id of one that ran
      // before the restart is answered `already_finished`, never run again
      const store = this.opts.store;
      if (store?.recentDispatches) {
        const known = new Set(this.memory.dispatches.map((r) => r.id));
        const finished = store
          .recentDispatches({ sinceMs: this.clock.wallMs() - KEEP_FINISHED_MS, limit: MAX_RECORDS / 2 })
          .filter((r) => !known.has(r.id))
          .reverse();
        if (finished.length) this.memory = { ...this.memory, dispatches: [...finished, ...this.memory.dispatches] };
      }
    } catch (e) {
      this.log('error', `recovery after restart failed: ${(e as Error)?.message ?? String(e)}`);
    }
  }

  /**
   * Power to zero first, then the contactor where the islanding rules want it (never closed by a stop;
   * opened, with grid-forming off, when the inverter is or may be forming), then the ports closed. Every
   * step is guarded and bounded by `control.portCallTimeoutMs`; never rejects, never hangs.
   */
  stop(): Promise<void> {
    this.stopping ??= this.stopInner().catch((e) => this.log('error', `stop: ${(e as Error)?.message ?? String(e)}`));
    return this.stopping;
  }

  private async stopInner(): Promise<void> {
    this.stopped = true;
    if (this.timerHandle !== undefined) this.clock.clearTimer(this.timerHandle);
    for (const st of this.openStates.values()) if (st.retryTimer !== undefined) this.clock.clearTimer(st.retryTimer);
    for (const u of this.unsubscribers.splice(0)) {
      try {
        u();
      } catch {
        // an unsubscribe that throws changes nothing about stopping
      }
    }
    this.actuator.halt();
    const boundMs = this.portCallTimeoutMs();
    // a stop during start-up: the ports being opened get one bound more, so the power can still go to zero
    const opening = [...this.openStates.values()].filter((st) => st.inFlight && st.attempt).map((st) => st.attempt!);
    if (opening.length) await within(this.clock, Promise.all(opening), boundMs);
    // each step waits at most one call bound more than its own calls (a command queued behind a hung one)
    const step = (p: Promise<unknown>) => within(this.clock, p, boundMs * 2);
    const zero: Promise<unknown>[] = [];
    // the device's own watchdog covers a crash; a stop leaves the power stage at zero itself
    if (this.isOpen('inverter')) zero.push(step(this.actuator.setpoint.send(0)));
    if (this.config.vehicleLink.forwardLimit && this.isOpen('vehicle')) zero.push(step(this.actuator.limit.send(0)));
    await Promise.all(zero);
    this.settleRunning();
    const reading = this.ports.inverter.state().reading;
    const mayForm = reading?.gridForming === true || this.actuator.forming.requested === true || (this.memory.lastGridForming !== false && this.memory.island.phase !== 'on-grid');
    if (mayForm) {
      // nobody will supervise an island after this: stop forming, and the contactor stays (or goes) open
      const open: Promise<unknown>[] = [];
      if (this.ports.relays && this.isOpen('relays')) open.push(step(this.actuator.contactor.send(false)));
      if (this.isOpen('inverter')) open.push(step(this.actuator.forming.send(false)));
      await Promise.all(open);
    }
    await Promise.all(this.allPorts().map((port) => this.caller.call(port.kind, 'close', () => port.close(), { track: false, boundMs })));
  }

  /**
   * A clean stop settles the running dispatch with reason `stopped` (recovery.ts), on the last poll's reading
   * (never more than was measured): the power is at zero now, so what it delivered ends here. Guarded: a store that fails leaves the
   * dispatch for the next start to settle.
   */
  private settleRunning(): void {
    if (!this.lastPlan) return;
    try {
      const settled = settleOnStop({
        opts: this.opts, nowMs: this.clock.wallMs(), memory: this.memory, reading: this.ports.inverter.state().reading, assembler: this.assembler,
        emit: (e) => this.emit(e),
      });
      if (settled.length) this.memory = { ...this.memory, dispatches: this.memory.dispatches.map((r) => settled.find((x) => x.id === r.id) ?? r), activeDispatchId: undefined };
    } catch (e) {
      this.log('error', `settling the running dispatch at stop failed: ${(e as Error)?.message ?? String(e)}`);
    }
  }

  private armTimer(): void {
    if (this.stopped) return;
    const periodMs = this.settings.control.tickS * 1000;
    const now = this.clock.nowMs();
    this.nextTickAtMs += periodMs;
    // after a stall, skip missed ticks rather than run a burst of them
    if (this.nextTickAtMs <= now) this.nextTickAtMs = now + periodMs;
    this.timerHandle = this.clock.setTimer(() => {
      this.onTimer();
      this.armTimer();
    }, this.nextTickAtMs - now);
  }

  private onTimer(): void {
    // a poll still running (a slow device, inside its bound): decide on the readings in hand, keep the cadence
    if (this.polling) this.requestDecision();
    else void this.pollThenDecide();
  }

  private pollThenDecide(): Promise<void> {
    return this.poll().then(() => this.decideNow());
  }

  /**
   * The measurement poll: one refresh per pollable port, skipping a port whose last refresh has not
   * answered yet (single-flight), each bounded. Resolves when every refresh started answered or timed out.
   */
  private poll(): Promise<void> {
    if (this.polling) return this.polling;
    const calls: Promise<unknown>[] = [];
    for (const port of [this.ports.inverter, this.ports.vehicle, this.ports.siteMeter]) {
      if (!port || !this.isOpen(port.kind) || this.refreshing.has(port.kind)) continue;
      this.refreshing.add(port.kind);
      calls.push(this.caller.call(port.kind, 'refresh', () => port.refresh(), { settle: () => this.refreshing.delete(port.kind) }));
    }
    const p = Promise.all(calls).then(() => {
      this.polling = undefined;
    });
    this.polling = p;
    return p;
  }

  /** A dispatch or cancel from the aggregator: decided on at once. */
  submit(cmd: DispatchCommand): void {
    this.inbox.push(cmd);
    this.requestDecision();
  }

  /** Replace the config (reload): decided on at once. */
  applyConfig(config: Config): void {
    this.config = config;
    this.settings = controlSettings(config);
    this.emit({ kind: 'config', severity: 'info', message: 'configuration reloaded' });
    this.requestDecision();
  }

  /** Report an event that did not come from the core (config refused, driver warnings). */
  emit(e: CoreEvent): void {
    this.recorder.emit(e, this.clock.wallMs());
  }

  /** Decide at once on the readings in hand (an event); the poll keeps its own cadence. */
  requestTick(): void {
    this.requestDecision();
  }

  private requestDecision(): void {
    if (this.stopped || !this.lastPlan) return;
    if (this.deciding) {
      this.again = true;
      return;
    }
    if (this.decisionQueued) return;
    this.decisionQueued = true;
    // a microtask: events raised together (a scenario step, several edges) are decided once, at once
    queueMicrotask(() => {
      if (this.decisionQueued) this.decideNow();
    });
  }

  private decideNow(): void {
    this.decisionQueued = false;
    if (this.stopped) return;
    if (this.deciding) {
      this.again = true;
      return;
    }
    this.deciding = true;
    try {
      for (let i = 0; i < MAX_DECISIONS_IN_A_ROW; i++) {
        this.again = false;
        try {
          this.decideOnce();
        } catch (e) {
          this.log('error', `decision failed: ${(e as Error)?.stack ?? String(e)}`);
        }
        if (!this.again || this.stopped) break;
      }
    } finally {
      this.deciding = false;
    }
    if (this.again) {
      // an event storm: yield to I/O, then decide again
      this.again = false;
      this.decisionQueued = true;
      setImmediate(() => {
        if (this.decisionQueued) this.decideNow();
      });
    }
  }

  private decideOnce(): void {
    const now = this.clock.nowMs();
    const commands = this.inbox;
    this.inbox = [];
    const openFaults = this.openFaults();
    const wallMs = this.clock.wallMs();
    const snapshot = this.assembler.take(now, this.config, commands, {
      wallMs,
      runtimeFault: openFaults.length ? openFaults.join('; ') : undefined,
      callFault: (kind) => this.caller.fault(kind),
      contactorCommandedClosed: this.actuator.contactorCommanded(),
      storage: this.storageHealth(),
    });
    const plan = decide(snapshot, this.settings, this.memory, now);
    this.memory = plan.memory;
    this.ticks++;
    // commands first: the store's writes are never on the path of a contactor or a setpoint
    this.actuator.apply(plan, this.config);
    if (this.actingBeforeRecovery) for (const e of plan.events) this.emit(e);
    else this.recorder.record(plan, snapshot, wallMs, this.config, now);
    this.lastPlan = plan;
    this.lastSnapshot = snapshot;
    this.opts.onTick?.(plan, snapshot);
  }

  /** The store's health for the core; a store that cannot even say is not writable. */
  private storageHealth(): { writable: boolean; fault?: string } | undefined {
    const store = this.opts.store;
    if (!store?.health) return undefined;
    try {
      const h = store.health();
      return { writable: h.writable === true, fault: h.fault };
    } catch (e) {
      return { writable: false, fault: `storage health unknown: ${(e as Error)?.message ?? String(e)}` };
    }
  }

  /**
   * Resolves once nothing more can happen without the clock moving: no decision queued or running, and
   * no port call started or ended during one turn of the event loop. Calls waiting on a timer (a device
   * that hangs, a bound not yet passed) do not hold it up, so a virtual-time run never waits on itself.
   */
  async settled(): Promise<void> {
    for (let guard = 0; guard < 10_000; guard++) {
      const before = this.caller.progress + this.ticks;
      await new Promise<void>((r) => setImmediate(r));
      if (!this.decisionQueued && !this.deciding && before === this.caller.progress + this.ticks) return;
    }
  }

  /** Poll, then decide (for callers that drive the runtime themselves). */
  async tick(): Promise<void> {
    if (this.stopped || !this.lastPlan) return;
    await this.pollThenDecide();
  }

  /** Dispatches that are accepted, active or curtailed, and dispatch commands not yet decided on (the uplink's flood bound). */
  liveDispatchCount(): number {
    const live = this.memory.dispatches.filter((r) => r.status === 'accepted' || r.status === 'active' || r.status === 'curtailed').length;
    return live + this.inbox.filter((c) => c.kind === 'dispatch').length;
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
    const totals = this.assembler.totals;
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
      fault: p?.mode === 'fault' ? (p.memory.faultReason ?? null) : null,
      portFaults: [...this.openFaults(), ...this.caller.allFaults(), ...(s?.storage?.writable === false ? [`storage: ${s.storage.fault ?? 'cannot write'}`] : [])],
      energy: { importedWh: round1(totals.importedWh), exportedWh: round1(totals.exportedWh), carSideWh: round1(totals.carSideWh) },
      site: s ? siteFigures(s, now) : null,
      ticks: this.ticks,
    };
  }
}
