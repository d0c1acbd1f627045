/**
 * SunSpec inverter driver: the inverter port over Modbus TCP or RTU.
 *
 * Reads models 1 (identity), 701 (measurements), 702 (ratings) and, when present, 713 / 802 / 124
 * (storage); commands active power through 704 WSet (control-704.ts) with its reversion timeout as a
 * device-side watchdog, or through 124 InWRte/OutWRte when 704 is absent (control-124.ts). Reports, never
 * decides: every failure becomes `state().fault`, and no method rejects after `open()`.
 *
 * Scheduling (docs/sunspec.md, "Timing"): one refresh in flight at a time (a second call gets the running
 * one's promise); commands go through a coalescing queue (hal/inverter/command-queue.ts) drained by one
 * writer that does not wait for a poll, so a setpoint reaches the device after at most the request on the
 * wire plus its own write. Every public method resolves within `callBoundMs`.
 */
import type { Clock, InverterOperatingState, InverterPort, InverterRatings, InverterReading, InverterState, PortFault, Unsubscribe } from '../../ports.ts';
import { CommandQueue } from '../command-queue.ts';
import { boundedPowerW } from '../power-command.ts';
import { FaultSlots } from '../fault-slots.ts';
import { commandUnknown, commandWritten, DEFAULT_FOLLOWING, INITIAL_FOLLOWING, judgeFollowing, type FollowingSettings, type FollowingState } from '../command-following.ts';
import { bitNames, decodePoints, enumName, modelLayout, spanOf, type DecodedPoints, type ValueIssue } from './codec.ts';
import { Control124, TICK_POINTS_124 } from './control-124.ts';
import { Control704, TICK_POINTS_704 } from './control-704.ts';
import { discover, DiscoveryError, END_MODEL_ID, SUNS_MARKER, type DeviceMap } from './discovery.ts';
import { encodeWrite, GarbageError, num, UnrepresentableError, type ControlIo, type ModelAt, type PowerControl } from './model-io.ts';
import { planReads, type RegisterSpan } from './plan.ts';
import { describeLink, errText, ModbusError, ModbusTransport, type ModbusLink } from './transport.ts';
import type { ModbusChannel } from '../../modbus/bus.ts';
import { MAX_READ_REGISTERS } from './codec.ts';

export interface SunspecDriverOptions {
  link: ModbusLink;
  /**
   * The connection to use, when the device shares its bus with another (hal/modbus/bus.ts); default: a
   * connection of its own to `link`.
   */
  channel?: ModbusChannel;
  /** SunSpec base register; undefined/null = probe 40000, 0, 50000. */
  base?: number | null;
  timeoutMs: number;
  retries: number;
  /** Device-side fallback to 0 W after this long without a command refresh, s (704 WSetRvrtTms). */
  reversionS: number;
  /** One-way conversion efficiency for the ratings (SunSpec does not report it), 0-1. */
  efficiency: number;
  clock: Clock;
  log?: (msg: string) => void;
  /**
   * Read the scale factors the models mark static once (at open and after each reconnect) instead of with
   * every tick's values. Off by default; on a slow RS-485 line it roughly halves the bus time per tick.
   */
  cacheStaticScaleFactors?: boolean;
  /** Reconnect backoff, ms. */
  backoffMinMs?: number;
  backoffMaxMs?: number;
  /**
   * Longest a public method (refresh, setPowerW, setGridForming) keeps its caller waiting, ms of real time;
   * default 2 × timeoutMs × (retries + 1): the request on the wire plus the caller's own, each with its
   * retries. Past it the method resolves and the port reports a `timeout` fault naming what was pending.
   */
  callBoundMs?: number;
  /** Longest `open()` takes before it rejects, ms of real time; default 4 × callBoundMs. */
  openBoundMs?: number;
  /** Command-following check (hal/inverter/command-following.ts); `false` turns it off. */
  following?: Partial<FollowingSettings> | false;
}

/** Identity from model 1. */
export interface SunspecIdentity {
  manufacturer?: string;
  model?: string;
  options?: string;
  version?: string;
  serialNumber?: string;
}

/** The points each measurement model contributes per tick; their scale factors come along in the same read. */
const TICK_POINTS: Record<number, readonly string[]> = {
  701: ['InvSt', 'ConnSt', 'Alrm', 'DERMode', 'W', 'LLV', 'LNV', 'Hz', 'TotWhInj', 'TotWhAbs'],
  713: ['WHRtg', 'WHAvail', 'SoC', 'SoH', 'Sta'],
  802: ['SoC', 'SoCMax', 'SoCMin', 'WChaRteMax', 'WDisChaRteMax', 'ChaSt', 'State'],
};
const CONTROL_POINTS: Record<number, readonly string[]> = {
  704: TICK_POINTS_704,
  124: TICK_POINTS_124,
};
/** Models the driver does without when they are absent or unusable. */
const OPTIONAL_MODELS = new Set([713, 802]);
/** Points read once at open (and after the device comes back as another device). */
const STATIC_POINTS: Record<number, readonly string[]> = {
  1: ['Mn', 'Md', 'Opt', 'Vr', 'SN'],
  702: ['WMaxRtg', 'WChaRteMaxRtg', 'WDisChaRteMaxRtg', 'IntIslandCatRtg', 'IntIslandCat', 'WMax', 'VNomRtg'],
};
/** A tick read starts at a model's header when that adds at most this many registers. */
const HEADER_CHECK_MAX_EXTRA = 6;
/** Model 1 points that say which device this is: compared after every reconnect. */
const IDENTITY_POINTS = ['Mn', 'Md', 'SN'] as const;

const INV_STATES: Record<string, InverterOperatingState> = {
  OFF: 'off',
  SLEEPING: 'sleeping',
  STARTING: 'starting',
  RUNNING: 'running',
  THROTTLED: 'throttled',
  SHUTTING_DOWN: 'shutting-down',
  FAULT: 'fault',
  STANDBY: 'standby',
};

/** 702 IntIslandCatRtg / IntIslandCat bit numbers. */
const ISLAND_BIT_UNCATEGORIZED = 0;
const ISLAND_BIT_CAPABLE = 1;

type Commands = { power: number; gridForming: boolean };
/** Which fault a slot holds; the port shows the first one set, in this order (hal/inverter/fault-slots.ts). */
type FaultSlot = 'comm' | 'command' | 'following';

export class SunspecInverter implements InverterPort {
  readonly kind = 'inverter' as const;
  identity?: SunspecIdentity;
  deviceMap?: DeviceMap;
  private readonly transport: ModbusChannel;
  private readonly name: string;
  private readonly callBoundMs: number;
  private readonly openBoundMs: number;
  private readonly followingSettings?: FollowingSettings;
  private ratings?: InverterRatings;
  /** The power stage's own ratings (702), before the battery's present limits (802) narrow them. */
  private stageRatings?: InverterRatings;
  private reading?: InverterReading;
  private readonly faults: FaultSlots<FaultSlot>;
  private listeners = new Set<() => void>();
  private models = new Map<number, ModelAt>();
  private control?: PowerControl;
  private plan: RegisterSpan[] = [];
  /** Where the chain's end model sits, when a tick read covers it for free (the chain's length is checked with it). */
  private endCheckAt?: number;
  /** Models whose header (ID, L) the tick read covers and checks. */
  private headerChecks: ModelAt[] = [];
  /** Static scale factors read once, when cacheStaticScaleFactors is on. */
  private sfRegs = new Map<number, number>();
  private opened = false;
  private closed = false;
  /** Latest accepted power command, W, positive into the car; re-applied when the device comes back. */
  private commandW = 0;
  private lastWriteAtMs = -Infinity;
  private writeOk = false;
  /** Controls must be (re)armed before the next command: after discovery, or when a read shows them reset. */
  private needsSetup = true;
  private needsDiscovery = false;
  /** transport.connects when the device's identity was last confirmed. */
  private verifiedAtConnect = -1;
  private island?: { capable: boolean; writable: boolean };
  /** Last grid-forming command; re-applied with the controls when the device comes back reset. */
  private gridFormingCommand?: boolean;
  private gridFormingWritten = true;
  private following: FollowingState = INITIAL_FOLLOWING;
  private readonly queue = new CommandQueue<Commands>();
  private pumping?: Promise<void>;
  private refreshWork?: Promise<void>;
  private refreshCall?: Promise<void>;
  private readying?: Promise<void>;
  /** Failures seen so far: a refresh clears the comm fault only when none happened while it ran. */
  private errors = 0;
  /** What the driver is doing on the wire, for the message of a call that overran its bound. */
  private stage = 'idle';

  constructor(private readonly o: SunspecDriverOptions) {
    this.name = `SunSpec inverter ${describeLink(o.link)}`;
    this.faults = new FaultSlots<FaultSlot>(['comm', 'command', 'following'], () => o.clock.nowMs(), (after, before) => {
      if (after) o.log?.(after.message);
      else if (before) o.log?.(`${this.name}: recovered from ${before.code}`);
      this.emit();
    });
    this.transport = o.channel ?? new ModbusTransport(o.link, {
      timeoutMs: o.timeoutMs,
      retries: o.retries,
      clock: o.clock,
      log: o.log,
      backoffMinMs: o.backoffMinMs,
      backoffMaxMs: o.backoffMaxMs,
    });
    this.callBoundMs = o.callBoundMs ?? 2 * o.timeoutMs * (o.retries + 1);
    this.openBoundMs = o.openBoundMs ?? 4 * this.callBoundMs;
    this.followingSettings = o.following === false ? undefined : { ...DEFAULT_FOLLOWING, ...o.following };
  }

  /** Requests put on the wire so far (retries included). */
  get requestCount(): number {
    return this.transport.requestCount;
  }

  /** Reads, writes and registers put on the wire so far (retries included). */
  get busStats(): Readonly<ModbusChannel['stats']> {
    return { ...this.transport.stats };
  }

  /** Successful connects so far. */
  get connectCount(): number {
    return this.transport.connects;
  }

  /** The reads one refresh makes. */
  get readPlan(): readonly RegisterSpan[] {
    return this.plan;
  }

  /** Which control path commands power: 704 WSet, or 124 InWRte/OutWRte. */
  get controlModel(): 704 | 124 | undefined {
    return this.control?.model;
  }

  /** Commands waiting to be written, next first (at most one per kind). */
  get pendingCommands(): string[] {
    return this.queue.kinds();
  }

  // --- InverterPort ------------------------------------------------------------------------------

  async open(): Promise<void> {
    this.closed = false;
    const work = (async () => {
      this.stage = 'connecting';
      await this.transport.connect();
      await this.discoverAndReadStatic();
      await this.setup();
      await this.readTick();
    })();
    work.catch(() => undefined);
    try {
      await withinMs(work, this.openBoundMs, () => new ModbusError('timeout', `open did not complete within ${this.openBoundMs} ms (still ${this.stage})`));
      this.opened = true;
    } catch (e) {
      await this.transport.close().catch(() => undefined);
      throw new Error(`${this.name}: ${errText(e)}`);
    }
  }

  /** Poll the device. While a poll runs, a second call returns the same promise: polls never queue up. */
  refresh(): Promise<void> {
    if (this.refreshCall) return this.refreshCall;
    const work = this.doRefresh().finally(() => {
      this.refreshWork = undefined;
      this.refreshCall = undefined;
    });
    this.refreshWork = work;
    this.refreshCall = this.bounded(work, 'refresh');
    return this.refreshCall;
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
    const why = this.control?.unrepresentable(clamped);
    if (why) {
      // written as something else it would be a silent lie; the device keeps its last command meanwhile
      this.setFault('command', 'unrepresentable', `${this.name}: ${why}`);
      return Promise.resolve();
    }
    const unchanged = clamped === this.commandW && this.queue.pending('power') === undefined && !this.commandDue();
    this.commandW = clamped;
    if (unchanged) {
      this.setFault('command', undefined);
      return Promise.resolve();
    }
    return this.bounded(this.enqueue('power', clamped), `setpoint ${clamped} W`);
  }

  setGridForming(on: boolean): Promise<void> {
    if (!this.opened || this.closed) return Promise.resolve();
    if (!this.models.get(702) || !this.island?.capable || !this.island.writable) {
      // the device cannot form an island (702 IntIslandCatRtg lacks INT_ISL_CAPABLE); the runtime reads ratings.islandCapable
      this.o.log?.(`${this.name}: grid-forming ${on ? 'on' : 'off'} not supported by this device`);
      return Promise.resolve();
    }
    this.gridFormingCommand = on;
    this.gridFormingWritten = false;
    return this.bounded(this.enqueue('gridForming', on), `grid-forming ${on ? 'on' : 'off'}`);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.queue.clear();
    const busy = [this.refreshWork, this.pumping, this.readying].filter((p): p is Promise<void> => p !== undefined);
    await withinMs(Promise.allSettled(busy), this.callBoundMs, () => new Error('close')).catch(() => undefined);
    this.opened = false;
    await this.transport.close().catch(() => undefined);
    this.listeners.clear();
  }

  onChange(listener: () => void): Unsubscribe {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  // --- scheduling --------------------------------------------------------------------------------

  private async doRefresh(): Promise<void> {
    if (!this.opened || this.closed) return;
    const errorsBefore = this.errors;
    try {
      await this.ensureReady();
      try {
        await this.readTick();
      } catch (e) {
        // the map moved under us (no reconnect told us): walk it again now rather than a tick later
        if (!(e instanceof MapChangedError)) throw e;
        this.o.log?.(`${this.name}: ${e.message}; walking the model chain again`);
        await this.ensureReady();
        await this.readTick();
      }
      // a read showed the controls reset (the device restarted): arm them again and re-apply the commands
      if (this.needsSetup || this.needsDiscovery) await this.ensureReady();
      const writes: Promise<void>[] = [];
      if (this.gridFormingCommand !== undefined && !this.gridFormingWritten) writes.push(this.enqueue('gridForming', this.gridFormingCommand));
      if (this.commandDue()) writes.push(this.enqueue('power', this.commandW));
      await Promise.all(writes);
      if (this.errors === errorsBefore && !this.needsSetup && !this.needsDiscovery && this.writeOk) this.setFault('comm', undefined);
    } catch (e) {
      this.onError(e);
    }
  }

  private enqueue<K extends keyof Commands>(kind: K, value: Commands[K]): Promise<void> {
    const done = this.queue.push(kind, value);
    if (!this.pumping) {
      this.pumping = this.pump().finally(() => {
        this.pumping = undefined;
      });
    }
    return done;
  }

  /** The one writer: takes the next command (latest value of its kind) and writes it; never waits for a poll. */
  private async pump(): Promise<void> {
    for (let next = this.queue.take(); next; next = this.queue.take()) {
      try {
        if (this.closed || !this.opened) continue;
        await this.ensureReady();
        if (next.kind === 'power') await this.writePower(next.value as number);
        else await this.writeGridForming(next.value as boolean);
      } catch (e) {
        this.onError(e);
      } finally {
        next.settle();
      }
    }
  }

  /** Shared by every caller: confirm the device after a reconnect, rediscover or set up when needed. */
  private ensureReady(): Promise<void> {
    if (!this.readying) {
      this.readying = this.catchUp().finally(() => {
        this.readying = undefined;
      });
    }
    return this.readying;
  }

  private async catchUp(): Promise<void> {
    if (!this.needsDiscovery && this.transport.connects !== this.verifiedAtConnect) await this.verifyIdentity();
    if (this.needsDiscovery) await this.discoverAndReadStatic();
    if (this.needsSetup) await this.setup();
  }

  /**
   * A new connection may lead to another device, or to the same one with another map (a firmware update).
   * One read of the SunS marker and model 1 tells: same base, same model 1, same manufacturer, model and
   * serial number keep the map; anything else walks the chain again. The per-tick reads check the models'
   * headers and, where it fits, the end of the chain.
   */
  private async verifyIdentity(): Promise<void> {
    const map = this.deviceMap;
    const m1 = this.models.get(1);
    if (!map || !m1) {
      this.needsDiscovery = true;
      return;
    }
    this.stage = 'confirming the device identity';
    const count = Math.min(MAX_READ_REGISTERS, m1.address + 2 + m1.length - map.base);
    let regs: number[];
    try {
      regs = await this.transport.readHolding(map.base, count);
    } catch (e) {
      if (e instanceof ModbusError && e.code === 'exception') {
        this.o.log?.(`${this.name}: base ${map.base} no longer readable (${e.message}); walking the model chain again`);
        this.needsDiscovery = true;
        return;
      }
      throw e;
    }
    const at = (a: number): number | undefined => regs[a - map.base];
    let changed: string | undefined;
    if (at(map.base) !== SUNS_MARKER[0] || at(map.base + 1) !== SUNS_MARKER[1]) changed = `no SunS marker at ${map.base}`;
    else if (at(m1.address) !== 1 || at(m1.address + 1) !== m1.length) changed = `model 1 is no longer at ${m1.address} with L = ${m1.length}`;
    else {
      const d = decodePoints(m1.layout, (off) => (off < 2 + m1.length ? at(m1.address + off) : undefined), IDENTITY_POINTS);
      const was = { Mn: this.identity?.manufacturer, Md: this.identity?.model, SN: this.identity?.serialNumber };
      const diff = IDENTITY_POINTS.find((p) => str(d.values[p]) !== was[p]);
      if (diff) changed = `model 1 ${diff} is now ${JSON.stringify(d.values[diff])}, was ${JSON.stringify(was[diff])}`;
    }
    if (changed) {
      this.o.log?.(`${this.name}: another device or map (${changed}); walking the model chain again`);
      this.needsDiscovery = true;
      return;
    }
    this.verifiedAtConnect = this.transport.connects;
  }

  /** A call resolves within `callBoundMs` however the device behaves; an overrun is a `timeout` fault. */
  private bounded(p: Promise<void>, what: string): Promise<void> {
    return withinMs(p, this.callBoundMs, () => new Error('late')).catch(() => {
      this.errors++;
      this.setFault('comm', 'timeout', `${this.name}: ${what} not done within ${this.callBoundMs} ms (still ${this.stage})`);
    });
  }

  // --- discovery and static data ------------------------------------------------------------------

  private async discoverAndReadStatic(): Promise<void> {
    this.stage = 'walking the SunSpec model chain';
    const map = await discover((a, n) => this.transport.readHolding(a, n), { base: this.o.base });
    const models = new Map<number, ModelAt>();
    for (const m of map.models) {
      const layout = modelLayout(m.id);
      // first instance wins: a second 701 would be a second power stage, which this port does not model
      if (layout && !models.has(m.id)) models.set(m.id, { ...m, layout });
    }
    const missing = [1, 701, 702].filter((id) => !models.has(id));
    if (missing.length > 0) {
      throw new DiscoveryError(`required SunSpec model${missing.length > 1 ? 's' : ''} ${missing.join(', ')} missing (device has ${map.models.map((m) => m.id).join(', ') || 'none'} at base ${map.base})`);
    }
    if (!models.has(704) && !models.has(124)) {
      throw new DiscoveryError(`no power control model: neither 704 (DER AC Controls) nor 124 (Basic Storage Controls) found (device has ${map.models.map((m) => m.id).join(', ')})`);
    }
    for (const [id, names] of Object.entries({ ...TICK_POINTS, ...CONTROL_POINTS, ...STATIC_POINTS })) {
      const m = models.get(Number(id));
      if (!m) continue;
      const [, end] = spanOf(m.layout, names);
      // a short model (e.g. legacy model 1 of L = 65) is fine as long as the points we need fit in it
      if (id === '1' || end <= 2 + m.length) continue;
      const why = `SunSpec model ${id} at ${m.address} is too short: L = ${m.length}, the points used need ${end - 2}`;
      if (OPTIONAL_MODELS.has(m.id) || (m.id === 704 && models.has(124))) {
        this.o.log?.(`${this.name}: ${why}; not using it`);
        models.delete(m.id);
      } else {
        throw new DiscoveryError(why);
      }
    }
    const io: ControlIo = {
      read: (m, names) => this.readModel(m, names),
      write: (m, pts, sfFrom) => this.writePoints(m, pts, sfFrom),
      reversionS: Math.max(1, Math.ceil(this.o.reversionS)),
    };
    const control: PowerControl = models.has(704) ? new Control704(models.get(704)!, io) : new Control124(models.get(124)!, io);
    const spans: RegisterSpan[] = [];
    const sfSpans: RegisterSpan[] = [];
    const headerChecks: ModelAt[] = [];
    const cacheSf = this.o.cacheStaticScaleFactors === true;
    for (const [id, names] of Object.entries({ ...TICK_POINTS, [control.model]: control.tickPoints })) {
      const m = models.get(Number(id));
      if (!m) continue;
      // from the model's header on where that costs a few registers (701, 713): every tick confirms the model
      // still sits where discovery found it. 704's points start 22 registers in: too dear on RS-485.
      const withHeader = spanOf(m.layout, names)[0] <= HEADER_CHECK_MAX_EXTRA;
      if (withHeader) headerChecks.push(m);
      spans.push(this.spanFor(m, names, cacheSf ? 'non-static' : 'all', withHeader));
      if (cacheSf) {
        const sfNames = [...new Set(names.map((n) => m.layout.byName.get(n)!.def.sf).filter((x): x is string => !!x))];
        if (sfNames.length > 0) sfSpans.push(this.spanFor(m, sfNames));
      }
    }
    const plan = planReads(spans);
    // the end model's ID, when the last read can take it without another request: the chain's length
    const last = map.models[map.models.length - 1];
    const endAt = last ? last.address + 2 + last.length : map.base + 2;
    const tail = plan[plan.length - 1];
    let endCheckAt: number | undefined;
    if (tail && endAt >= tail.address + tail.count && endAt + 1 - tail.address <= MAX_READ_REGISTERS) {
      tail.count = endAt + 1 - tail.address;
      endCheckAt = endAt;
    }
    this.sfRegs = cacheSf ? await this.readBlocks(planReads(sfSpans)) : new Map();

    this.stage = 'reading identity and ratings';
    const statics = planReads([this.spanFor(models.get(1)!, STATIC_POINTS[1]), this.spanFor(models.get(702)!, STATIC_POINTS[702])]);
    const regs = await this.readBlocks(statics);
    const id1 = this.decode(models.get(1)!, STATIC_POINTS[1], regs);
    const d702 = this.decode(models.get(702)!, STATIC_POINTS[702], regs);
    this.throwOnIssues([...id1.issues, ...d702.issues], models);
    const ratedW = num(d702.values.WMaxRtg);
    if (ratedW === undefined || ratedW <= 0) throw new GarbageError(`702 WMaxRtg (register ${models.get(702)!.address + 2}) is not implemented or not positive: ${String(d702.values.WMaxRtg)}`);
    const islandRtg = bitNames(models.get(702)!.layout.byName.get('IntIslandCatRtg')!, num(d702.raws.IntIslandCatRtg));
    // all or nothing: a map is taken only once every part of it has been read
    this.models = models;
    this.deviceMap = map;
    this.control = control;
    this.plan = plan;
    this.endCheckAt = endCheckAt;
    this.headerChecks = headerChecks;
    this.identity = {
      manufacturer: str(id1.values.Mn),
      model: str(id1.values.Md),
      options: str(id1.values.Opt),
      version: str(id1.values.Vr),
      serialNumber: str(id1.values.SN),
    };
    this.island = { capable: islandRtg.includes('INT_ISL_CAPABLE'), writable: d702.raws.IntIslandCat !== undefined };
    this.stageRatings = {
      ratedW,
      maxChargeW: num(d702.values.WChaRteMaxRtg) ?? ratedW,
      maxDischargeW: num(d702.values.WDisChaRteMaxRtg) ?? ratedW,
      efficiency: this.o.efficiency,
      islandCapable: this.island.capable,
    };
    this.ratings = { ...this.stageRatings };
    this.needsDiscovery = false;
    this.needsSetup = true;
    this.verifiedAtConnect = this.transport.connects;
  }

  private spanFor(m: ModelAt, names: readonly string[], withScaleFactors: 'all' | 'non-static' = 'all', fromHeader = false): RegisterSpan {
    const [first0, end] = spanOf(m.layout, names, withScaleFactors);
    const first = fromHeader ? 0 : first0;
    const clippedEnd = Math.min(end, 2 + m.length);
    return { address: m.address + first, count: clippedEnd - first };
  }

  private async readBlocks(blocks: readonly RegisterSpan[]): Promise<Map<number, number>> {
    const regs = new Map<number, number>();
    for (const b of blocks) {
      const data = await this.transport.readHolding(b.address, b.count);
      if (data.length < b.count) throw new ModbusError('io', `short answer, ${data.length} of ${b.count} registers at ${b.address}`);
      for (let i = 0; i < b.count; i++) regs.set(b.address + i, data[i]);
    }
    return regs;
  }

  /** One read of the named points of a model with their scale factors; garbage throws. */
  private async readModel(m: ModelAt, names: readonly string[]): Promise<DecodedPoints> {
    const regs = await this.readBlocks([this.spanFor(m, names)]);
    const d = this.decode(m, names, regs);
    this.throwOnIssues(d.issues);
    return d;
  }

  private decode(m: ModelAt, names: readonly string[], regs: Map<number, number>): DecodedPoints {
    const usable = names.filter((n) => {
      const lp = m.layout.byName.get(n)!;
      return lp.offset + lp.def.size <= 2 + m.length;
    });
    const d = decodePoints(m.layout, (off) => (off < 2 + m.length ? regs.get(m.address + off) : undefined), usable);
    for (const n of names) if (!usable.includes(n)) d.values[n] = undefined;
    return d;
  }

  private throwOnIssues(issues: ValueIssue[], models = this.models): void {
    if (issues.length === 0) return;
    const text = issues
      .map((i) => `${i.model} ${i.point} (register ${(models.get(i.model)?.address ?? 0) + i.offset}) = ${i.raw}: ${i.reason}`)
      .join('; ');
    throw new GarbageError(`garbage from device: ${text}`);
  }

  // --- per-tick reads -----------------------------------------------------------------------------

  private async readTick(): Promise<void> {
    // one map for the whole tick, even if a rediscovery replaces it meanwhile
    const models = this.models;
    const control = this.control!;
    const plan = this.plan;
    const endCheckAt = this.endCheckAt;
    const headerChecks = this.headerChecks;
    this.stage = 'reading measurements';
    const regs = await this.readBlocks(plan);
    for (const [a, v] of this.sfRegs) if (!regs.has(a)) regs.set(a, v);
    for (const m of headerChecks) {
      const [hid, hl] = [regs.get(m.address), regs.get(m.address + 1)];
      if (hid !== m.id || hl !== m.length) {
        this.needsDiscovery = true;
        throw new MapChangedError(`the device's map changed: model ${m.id} is no longer at ${m.address} (found ID ${hid}, L ${hl})`);
      }
    }
    if (endCheckAt !== undefined && regs.get(endCheckAt) !== END_MODEL_ID) {
      this.needsDiscovery = true;
      throw new MapChangedError(`the device's map changed: the model chain no longer ends at ${endCheckAt} (found ${regs.get(endCheckAt)})`);
    }
    const get = (id: number, names: readonly string[]): DecodedPoints | undefined => {
      const m = models.get(id);
      return m ? this.decode(m, names, regs) : undefined;
    };
    const d701 = get(701, TICK_POINTS[701])!;
    const d713 = get(713, TICK_POINTS[713]);
    const d802 = get(802, TICK_POINTS[802]);
    const dCtl = get(control.model, control.tickPoints)!;
    const d124 = control.model === 124 ? dCtl : undefined;
    this.throwOnIssues([d701, d713, d802, dCtl].flatMap((d) => d?.issues ?? []), models);
    const m701 = models.get(701)!;
    const wAddr = m701.address + m701.layout.byName.get('W')!.offset;
    const genW = num(d701.values.W);
    if (genW === undefined) throw new GarbageError(`701 W (register ${wAddr}) is not implemented or its W_SF is invalid`);
    const rated = this.ratings?.ratedW ?? 0;
    if (rated > 0 && Math.abs(genW) > 2 * rated) throw new GarbageError(`701 W (register ${wAddr}) = ${genW} W is beyond twice the ${rated} W rating`);
    const socPct = num(d713?.values.SoC) ?? num(d802?.values.SoC) ?? num(d124?.values.ChaState);
    if (socPct !== undefined && (socPct < 0 || socPct > 100)) throw new GarbageError(`storage SoC = ${socPct} % is outside 0..100`);
    this.narrowRatings(d802);
    control.observe(dCtl);
    const lost = control.setupLost();
    if (lost && !this.needsSetup) {
      this.o.log?.(`${this.name}: ${lost} (the device restarted or reverted); arming its controls again`);
      this.needsSetup = true;
      this.writeOk = false;
      this.gridFormingWritten = this.gridFormingCommand === undefined;
      this.following = commandUnknown();
    }

    const l701 = m701.layout;
    const alarms = bitNames(l701.byName.get('Alrm')!, num(d701.raws.Alrm)).sort();
    const derMode = bitNames(l701.byName.get('DERMode')!, num(d701.raws.DERMode));
    const invSt = enumName(l701.byName.get('InvSt')!, num(d701.raws.InvSt));
    const connSt = num(d701.raws.ConnSt);
    const reading: InverterReading = {
      atMs: this.o.clock.nowMs(),
      // 701 W is positive when the DER generates (out of the car); the port's positive is into the car
      acPowerW: genW === 0 ? 0 : -genW,
      // 701 TotWhAbs: energy absorbed from the AC side, i.e. into the car
      importedWh: num(d701.values.TotWhAbs),
      exportedWh: num(d701.values.TotWhInj),
      connected: connSt === undefined ? undefined : connSt === 1,
      gridForming: derMode.includes('GRID_FORMING'),
      state: invSt ? INV_STATES[invSt] ?? 'unknown' : 'unknown',
      alarms,
      acVoltageV: num(d701.values.LNV) ?? num(d701.values.LLV),
      frequencyHz: num(d701.values.Hz),
      setpointW: control.setpointInForce(),
      storageSocPct: socPct,
    };
    const prev = this.reading;
    this.reading = reading;
    this.judgeFollowing(reading);
    if (
      prev &&
      (prev.gridForming !== reading.gridForming || prev.alarms.join() !== reading.alarms.join() || (prev.state === 'fault') !== (reading.state === 'fault') || prev.connected !== reading.connected)
    ) {
      this.emit();
    }
  }

  /** Command following (hal/inverter/command-following.ts): a fact about the device, reported as a fault. */
  private judgeFollowing(reading: InverterReading): void {
    const s = this.followingSettings;
    if (!s) return;
    const v = judgeFollowing(this.following, reading, this.ratings?.ratedW ?? 0, s);
    if (v === undefined) {
      // nothing to judge: no command known, or forming the grid (the island's load sets the power). While a
      // new setpoint settles and the power is not there yet, the last verdict stands.
      if (this.following.commandW === undefined || reading.gridForming) this.setFault('following', undefined);
      return;
    }
    if (v.following) this.setFault('following', undefined);
    else this.setFault('following', 'not_following', `${this.name}: ${v.message}`);
  }

  /** 802 WChaRteMax / WDisChaRteMax are the battery's present limits: the ratings are the smaller of those and 702's. */
  private narrowRatings(d802?: DecodedPoints): void {
    const stage = this.stageRatings;
    if (!stage) return;
    const cha = num(d802?.values.WChaRteMax);
    const dis = num(d802?.values.WDisChaRteMax);
    const maxChargeW = cha === undefined ? stage.maxChargeW : Math.max(0, Math.min(stage.maxChargeW, cha));
    const maxDischargeW = dis === undefined ? stage.maxDischargeW : Math.max(0, Math.min(stage.maxDischargeW, dis));
    if (this.ratings && this.ratings.maxChargeW === maxChargeW && this.ratings.maxDischargeW === maxDischargeW) return;
    const first = this.ratings === undefined;
    this.ratings = { ...stage, maxChargeW, maxDischargeW };
    if (!first) this.emit();
  }

  // --- control -----------------------------------------------------------------------------------

  private commandDue(): boolean {
    return !this.writeOk || this.o.clock.nowMs() - this.lastWriteAtMs >= (this.o.reversionS * 1000) / 2;
  }

  /** Arm the control path's watchdog and put the last command (and grid-forming command) in force. */
  private async setup(): Promise<void> {
    const control = this.control!;
    this.stage = `arming the ${control.model} controls`;
    this.writeOk = false;
    await control.setup(this.commandW);
    const m702 = this.models.get(702);
    if (m702 && this.gridFormingCommand !== undefined && this.island?.capable && this.island.writable) {
      this.gridFormingWritten = false;
      await this.writePoints(m702, [['IntIslandCat', islandCat(this.gridFormingCommand)]], undefined);
      this.gridFormingWritten = true;
    }
    const inForce = control.unrepresentable(this.commandW) ? 0 : this.commandW;
    this.noteWritten(inForce, commandUnknown());
    this.needsSetup = false;
  }

  private async writePower(w: number): Promise<void> {
    const control = this.control!;
    const why = control.unrepresentable(w);
    if (why) throw new UnrepresentableError(why);
    this.stage = `writing setpoint ${w} W`;
    this.writeOk = false;
    await control.write(w);
    this.noteWritten(w, this.following);
    this.setFault('command', undefined);
  }

  private noteWritten(w: number, from: FollowingState): void {
    const now = this.o.clock.nowMs();
    this.lastWriteAtMs = now;
    this.writeOk = true;
    this.following = commandWritten(from, w, now, this.ratings?.ratedW ?? 0, this.followingSettings ?? DEFAULT_FOLLOWING);
  }

  /** 702 IntIslandCat: INT_ISL_CAPABLE enables intentional islanding, UNCATEGORIZED leaves it. */
  private async writeGridForming(on: boolean): Promise<void> {
    const m = this.models.get(702);
    if (!m || !this.island?.capable || !this.island.writable) return;
    this.stage = `writing grid-forming ${on ? 'on' : 'off'}`;
    this.gridFormingWritten = false;
    await this.writePoints(m, [['IntIslandCat', islandCat(on)]], undefined);
    // a newer command may have arrived meanwhile; it is queued and flags itself unwritten
    this.gridFormingWritten = this.gridFormingCommand === on;
  }

  private async writePoints(m: ModelAt, pts: readonly (readonly [string, number])[], sfFrom: DecodedPoints | undefined): Promise<void> {
    const w = encodeWrite(m, pts, sfFrom);
    await this.transport.writeHolding(w.address, w.regs);
  }

  // --- faults ------------------------------------------------------------------------------------

  private onError(e: unknown): void {
    this.errors++;
    if (e instanceof UnrepresentableError) {
      this.setFault('command', 'unrepresentable', `${this.name}: ${e.message}`);
      return;
    }
    let code: string;
    let message: string;
    if (e instanceof ModbusError) {
      code = e.code;
      message = `${this.name}: ${this.annotate(e)}`;
    } else if (e instanceof GarbageError) {
      code = 'garbage';
      message = `${this.name}: ${e.message}`;
    } else {
      code = e instanceof DiscoveryError ? 'discovery' : 'error';
      message = `${this.name}: ${errText(e)}`;
      this.needsDiscovery = true;
    }
    this.setFault('comm', code, message);
  }

  /** Set (code given) or clear (code undefined) one fault slot; listeners hear of a change of the port's fault. */
  private setFault(slot: FaultSlot, code: string | undefined, message = ''): void {
    this.faults.set(slot, code, message);
  }

  /** Name the model and point behind a failed request's address. */
  private annotate(e: ModbusError): string {
    const r = e.request;
    if (!r) return e.message;
    for (const m of this.models.values()) {
      if (r.address >= m.address && r.address < m.address + 2 + m.length) {
        const off = r.address - m.address;
        const lp = m.layout.points.find((p) => p.offset === off);
        return `${e.message} (model ${m.id}${lp ? ` ${lp.name}` : ''}, offset ${off})`;
      }
    }
    return e.message;
  }

  private emit(): void {
    for (const l of [...this.listeners]) {
      try {
        l();
      } catch (e) {
        this.o.log?.(`${this.name}: change listener threw: ${errText(e)}`);
      }
    }
  }
}

/** A tick read found a model header or the chain's end elsewhere than discovery did. */
class MapChangedError extends DiscoveryError {}

function islandCat(on: boolean): number {
  return 1 << (on ? ISLAND_BIT_CAPABLE : ISLAND_BIT_UNCATEGORIZED);
}

/**
 * Settle like `p`, or reject with `late()` after `ms` of real time: I/O bounds run on real time, like the
 * transport's own guard, since a virtual clock does not move while a socket is silent.
 */
function withinMs<T>(p: Promise<T>, ms: number, late: () => Error): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    t = setTimeout(() => reject(late()), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(t));
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}
