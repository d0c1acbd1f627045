/**
 * The runtime loop: read ports → decide → actuate → record → report, every tick and at once on events
 * (dispatch, grid edge, e-stop, config change, driver fault). The only place where ports, the control
 * core, the store and the uplink meet. Nothing thrown below escapes it.
 */
import type { Clock, Ports } from '../../hal/ports.ts';
import type { Config, ControlSettings } from '../config/types.ts';
import { decide, initialMemory } from '../control/decide.ts';
import type { CoreEvent, DispatchCommand, Memory, Plan, Snapshot } from '../control/types.ts';
import { isoUtc } from '../contract.ts';
import { Actuator } from './actuation.ts';
import { gridUp, round1 } from './outgoing.ts';
import { safely, withTimeout } from './port-calls.ts';
import { Recorder } from './recording.ts';
import { recoverDispatches } from './recovery.ts';
import { controlSettings } from './settings.ts';
import { SnapshotAssembler } from './snapshot.ts';
import type { RuntimeLog, RuntimeOptions, RuntimeStatus } from './types.ts';

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
  private readonly assembler: SnapshotAssembler;
  private readonly actuator: Actuator;
  private readonly recorder: Recorder;
  private lastPlan?: Plan;
  private lastSnapshot?: Snapshot;
  private openFault?: string;
  private ticks = 0;
  private readonly log: RuntimeLog;

  constructor(private readonly opts: RuntimeOptions) {
    this.ports = opts.ports;
    this.clock = opts.ports.clock;
    this.config = opts.config;
    this.settings = controlSettings(opts.config);
    this.memory = initialMemory(this.clock.nowMs());
    this.log = opts.log ?? (() => {});
    this.assembler = new SnapshotAssembler(this.ports);
    this.actuator = new Actuator(this.ports);
    this.recorder = new Recorder(opts, this.assembler, this.log);
  }

  /** Energy metered since start, Wh. */
  get totals(): { importedWh: number; exportedWh: number; carSideWh: number } {
    return this.assembler.totals;
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

  private async recover(): Promise<void> {
    if (!this.opts.store?.interruptedDispatches) return;
    try {
      await this.refreshAll();
      const restored = recoverDispatches({
        opts: this.opts, nowMs: this.clock.nowMs(), reading: this.ports.inverter.state().reading, assembler: this.assembler,
        emit: (e) => this.emit(e),
      });
      if (restored.length) this.memory = { ...this.memory, dispatches: [...this.memory.dispatches, ...restored] };
    } catch (e) {
      this.log('error', `recovery after restart failed: ${(e as Error)?.message ?? String(e)}`);
    }
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
    this.recorder.emit(e, this.clock.nowMs());
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
    const commands = this.inbox;
    this.inbox = [];
    const snapshot = this.assembler.take(now, this.config, commands, this.openFault);
    const plan = decide(snapshot, this.settings, this.memory, now);
    this.memory = plan.memory;
    this.ticks++;
    await this.actuator.apply(plan, this.config);
    this.recorder.record(plan, snapshot, now, this.config);
    this.lastPlan = plan;
    this.lastSnapshot = snapshot;
    this.opts.onTick?.(plan, snapshot);
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
      energy: { importedWh: round1(totals.importedWh), exportedWh: round1(totals.exportedWh), carSideWh: round1(totals.carSideWh) },
      ticks: this.ticks,
    };
  }
}
