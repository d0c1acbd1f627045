/**
 * SunSpec inverter driver: the inverter port over Modbus TCP or RTU.
 *
 * Reads models 1 (identity), 701 (measurements), 702 (ratings) and, when present, 713 / 802 / 124
 * (storage); commands active power through 704 WSet with its reversion timeout as a device-side watchdog,
 * or through 124 InWRte/OutWRte when 704 is absent. Reports, never decides: every failure becomes
 * `state().fault`, and no method rejects after `open()`.
 */
import type { Clock, InverterOperatingState, InverterPort, InverterRatings, InverterReading, InverterState, PortFault, Unsubscribe } from '../../ports.ts';
import { bitNames, decodePoints, encodePoint, enumName, modelLayout, spanOf, type DecodedPoints, type ModelLayout, type ValueIssue } from './codec.ts';
import { discover, DiscoveryError, type DeviceMap, type DiscoveredModel } from './discovery.ts';
import { planReads, type RegisterSpan } from './plan.ts';
import { describeLink, errText, ModbusError, ModbusTransport, type ModbusLink } from './transport.ts';

export interface SunspecDriverOptions {
  link: ModbusLink;
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
}

/** Identity from model 1. */
export interface SunspecIdentity {
  manufacturer?: string;
  model?: string;
  options?: string;
  version?: string;
  serialNumber?: string;
}

/** The points each model contributes per tick; their scale factors come along in the same read. */
const TICK_POINTS: Record<number, readonly string[]> = {
  701: ['InvSt', 'ConnSt', 'Alrm', 'DERMode', 'W', 'LLV', 'LNV', 'Hz', 'TotWhInj', 'TotWhAbs'],
  704: ['WSetEna', 'WSetMod', 'WSet', 'WSetRvrt', 'WSetEnaRvrt', 'WSetRvrtTms', 'WSetRvrtRem'],
  713: ['WHRtg', 'WHAvail', 'SoC', 'SoH', 'Sta'],
  802: ['SoC', 'SoCMax', 'SoCMin', 'WChaRteMax', 'WDisChaRteMax', 'ChaSt', 'State'],
  124: ['WChaMax', 'StorCtl_Mod', 'ChaState', 'ChaSt', 'OutWRte', 'InWRte', 'InOutWRte_RvrtTms'],
};
/** Models the driver does without when they are absent or unusable. */
const OPTIONAL_MODELS = new Set([713, 802]);
/** Points read once at open (and after the device comes back). */
const STATIC_POINTS: Record<number, readonly string[]> = {
  1: ['Mn', 'Md', 'Opt', 'Vr', 'SN'],
  702: ['WMaxRtg', 'WChaRteMaxRtg', 'WDisChaRteMaxRtg', 'IntIslandCatRtg', 'IntIslandCat', 'WMax', 'VNomRtg'],
};

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
/** 124 StorCtl_Mod: bit 0 CHARGE and bit 1 DiSCHARGE limits in force. */
const STORCTL_BOTH = 0b11;

interface ModelAt extends DiscoveredModel {
  layout: ModelLayout;
}

class GarbageError extends Error {}

export class SunspecInverter implements InverterPort {
  readonly kind = 'inverter' as const;
  identity?: SunspecIdentity;
  deviceMap?: DeviceMap;
  private readonly transport: ModbusTransport;
  private readonly name: string;
  private ratings?: InverterRatings;
  /** The power stage's own ratings (702), before the battery's present limits (802) narrow them. */
  private stageRatings?: InverterRatings;
  private reading?: InverterReading;
  private fault?: PortFault;
  private listeners = new Set<() => void>();
  private models = new Map<number, ModelAt>();
  private plan: RegisterSpan[] = [];
  /** Static scale factors read once, when cacheStaticScaleFactors is on. */
  private sfRegs = new Map<number, number>();
  private opened = false;
  private closed = false;
  /** Last commanded power, W, positive into the car; re-applied after the device comes back. */
  private commandW = 0;
  private lastWriteAtMs = -Infinity;
  private writeOk = false;
  /** Control reversion and enable flags must be (re)written before the next command. */
  private needsSetup = true;
  private needsRediscovery = false;
  private ops: Promise<unknown> = Promise.resolve();
  /** transport.connects when the map was discovered and when control was set up. */
  private discoveredAtConnect = -1;
  private setupAtConnect = -1;
  private last704?: DecodedPoints;
  private last124?: DecodedPoints;
  private island?: { capable: boolean; writable: boolean };
  /** Last grid-forming command; re-applied with the power command after the device comes back. */
  private gridFormingCommand?: boolean;

  constructor(private readonly o: SunspecDriverOptions) {
    this.name = `SunSpec inverter ${describeLink(o.link)}`;
    this.transport = new ModbusTransport(o.link, {
      timeoutMs: o.timeoutMs,
      retries: o.retries,
      clock: o.clock,
      log: o.log,
      backoffMinMs: o.backoffMinMs,
      backoffMaxMs: o.backoffMaxMs,
    });
  }

  /** Requests put on the wire so far (retries included). */
  get requestCount(): number {
    return this.transport.requestCount;
  }

  /** Reads, writes and registers put on the wire so far (retries included). */
  get busStats(): Readonly<ModbusTransport['stats']> {
    return { ...this.transport.stats };
  }

  /** The reads one refresh makes. */
  get readPlan(): readonly RegisterSpan[] {
    return this.plan;
  }

  /** Which control path commands power: 704 WSet, or 124 InWRte/OutWRte. */
  get controlModel(): 704 | 124 | undefined {
    return this.models.has(704) ? 704 : this.models.has(124) ? 124 : undefined;
  }

  // --- InverterPort ------------------------------------------------------------------------------

  async open(): Promise<void> {
    this.closed = false;
    try {
      await this.transport.connect();
      await this.discoverAndReadStatic();
      await this.setupControl();
      await this.readTick();
      this.opened = true;
    } catch (e) {
      await this.transport.close().catch(() => undefined);
      throw new Error(`${this.name}: ${errText(e)}`);
    }
  }

  refresh(): Promise<void> {
    return this.serial(async () => {
      if (!this.opened || this.closed) return;
      try {
        // a reconnect in the middle of a tick may have found a restarted device: a second pass sets it up again
        for (let pass = 0; pass < 2; pass++) {
          await this.catchUp();
          await this.readTick();
          if (this.commandDue()) await this.writeCommand();
          this.noteReconnect();
          if (!this.needsRediscovery && !this.needsSetup) break;
        }
        if (!this.needsRediscovery && !this.needsSetup) this.clearFault();
      } catch (e) {
        this.onError(e);
      }
    });
  }

  state(): InverterState {
    return { ratings: this.ratings, reading: this.reading, fault: this.fault };
  }

  setPowerW(powerW: number): Promise<void> {
    return this.serial(async () => {
      if (!Number.isFinite(powerW)) {
        this.o.log?.(`${this.name}: ignoring non-finite power command ${powerW}`);
        return;
      }
      const r = this.ratings;
      const clamped = r ? Math.max(-r.maxDischargeW, Math.min(r.maxChargeW, powerW)) : powerW;
      const changed = clamped !== this.commandW;
      this.commandW = clamped;
      if (!this.opened || this.closed) return;
      if (!changed && !this.commandDue()) return;
      try {
        this.noteReconnect();
        const setUp = this.needsSetup;
        await this.catchUp();
        if (!setUp) await this.writeCommand();
        this.noteReconnect();
        await this.catchUp();
      } catch (e) {
        this.onError(e);
      }
    });
  }

  setGridForming(on: boolean): Promise<void> {
    return this.serial(async () => {
      if (!this.opened || this.closed) return;
      const m = this.models.get(702);
      if (!m || !this.island?.capable || !this.island.writable) {
        // the device cannot form an island (702 IntIslandCatRtg lacks INT_ISL_CAPABLE); the runtime reads ratings.islandCapable
        this.o.log?.(`${this.name}: grid-forming ${on ? 'on' : 'off'} not supported by this device`);
        return;
      }
      this.gridFormingCommand = on;
      try {
        await this.writeGridForming(m, on);
      } catch (e) {
        this.onError(e);
      }
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.ops.catch(() => undefined);
    this.opened = false;
    await this.transport.close().catch(() => undefined);
    this.listeners.clear();
  }

  onChange(listener: () => void): Unsubscribe {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The transport reconnected since discovery or setup: the device may have restarted (controls reset) or changed its map. */
  private noteReconnect(): void {
    const n = this.transport.connects;
    if (n !== this.discoveredAtConnect) this.needsRediscovery = true;
    if (n !== this.setupAtConnect) this.needsSetup = true;
  }

  private async catchUp(): Promise<void> {
    this.noteReconnect();
    if (this.needsRediscovery) await this.discoverAndReadStatic();
    if (this.needsSetup) await this.setupControl();
  }

  // --- discovery and static data ------------------------------------------------------------------

  private async discoverAndReadStatic(): Promise<void> {
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
    for (const [id, names] of Object.entries({ ...TICK_POINTS, ...STATIC_POINTS })) {
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
    this.models = models;
    this.deviceMap = map;
    const spans: RegisterSpan[] = [];
    const sfSpans: RegisterSpan[] = [];
    const cacheSf = this.o.cacheStaticScaleFactors === true;
    for (const [id, names] of Object.entries(TICK_POINTS)) {
      const m = models.get(Number(id));
      if (!m) continue;
      spans.push(this.spanFor(m, names, cacheSf ? 'non-static' : 'all'));
      if (cacheSf) {
        const sfNames = [...new Set(names.map((n) => m.layout.byName.get(n)!.def.sf).filter((x): x is string => !!x))];
        if (sfNames.length > 0) sfSpans.push(this.spanFor(m, sfNames));
      }
    }
    this.plan = planReads(spans);
    this.sfRegs = cacheSf ? await this.readBlocks(planReads(sfSpans)) : new Map();

    const statics = planReads([this.spanFor(models.get(1)!, STATIC_POINTS[1]), this.spanFor(models.get(702)!, STATIC_POINTS[702])]);
    const regs = await this.readBlocks(statics);
    const id1 = this.decode(models.get(1)!, STATIC_POINTS[1], regs);
    const d702 = this.decode(models.get(702)!, STATIC_POINTS[702], regs);
    this.throwOnIssues([...id1.issues, ...d702.issues]);
    this.identity = {
      manufacturer: str(id1.values.Mn),
      model: str(id1.values.Md),
      options: str(id1.values.Opt),
      version: str(id1.values.Vr),
      serialNumber: str(id1.values.SN),
    };
    const ratedW = num(d702.values.WMaxRtg);
    if (ratedW === undefined || ratedW <= 0) throw new GarbageError(`702 WMaxRtg (register ${models.get(702)!.address + 2}) is not implemented or not positive: ${String(d702.values.WMaxRtg)}`);
    const islandRtg = bitNames(models.get(702)!.layout.byName.get('IntIslandCatRtg')!, num(d702.raws.IntIslandCatRtg));
    this.island = { capable: islandRtg.includes('INT_ISL_CAPABLE'), writable: d702.raws.IntIslandCat !== undefined };
    this.stageRatings = {
      ratedW,
      maxChargeW: num(d702.values.WChaRteMaxRtg) ?? ratedW,
      maxDischargeW: num(d702.values.WDisChaRteMaxRtg) ?? ratedW,
      efficiency: this.o.efficiency,
      islandCapable: this.island.capable,
    };
    this.ratings = { ...this.stageRatings };
    this.needsRediscovery = false;
    this.discoveredAtConnect = this.transport.connects;
  }

  private spanFor(m: ModelAt, names: readonly string[], withScaleFactors: 'all' | 'non-static' = 'all'): RegisterSpan {
    const [first, end] = spanOf(m.layout, names, withScaleFactors);
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

  private decode(m: ModelAt, names: readonly string[], regs: Map<number, number>): DecodedPoints {
    const usable = names.filter((n) => {
      const lp = m.layout.byName.get(n)!;
      return lp.offset + lp.def.size <= 2 + m.length;
    });
    const d = decodePoints(m.layout, (off) => (off < 2 + m.length ? regs.get(m.address + off) : undefined), usable);
    for (const n of names) if (!usable.includes(n)) d.values[n] = undefined;
    return d;
  }

  private throwOnIssues(issues: ValueIssue[]): void {
    if (issues.length === 0) return;
    const text = issues
      .map((i) => `${i.model} ${i.point} (register ${this.models.get(i.model)!.address + i.offset}) = ${i.raw}: ${i.reason}`)
      .join('; ');
    throw new GarbageError(`garbage from device: ${text}`);
  }

  // --- per-tick reads -----------------------------------------------------------------------------

  private async readTick(): Promise<void> {
    const regs = await this.readBlocks(this.plan);
    for (const [a, v] of this.sfRegs) if (!regs.has(a)) regs.set(a, v);
    const get = (id: number): DecodedPoints | undefined => {
      const m = this.models.get(id);
      return m ? this.decode(m, TICK_POINTS[id], regs) : undefined;
    };
    const d701 = get(701)!;
    const d704 = get(704);
    const d713 = get(713);
    const d802 = get(802);
    const d124 = get(124);
    const issues = [d701, d704, d713, d802, d124].flatMap((d) => d?.issues ?? []);
    this.throwOnIssues(issues);
    const m701 = this.models.get(701)!;
    const wAddr = m701.address + m701.layout.byName.get('W')!.offset;
    const genW = num(d701.values.W);
    if (genW === undefined) throw new GarbageError(`701 W (register ${wAddr}) is not implemented or its W_SF is invalid`);
    const rated = this.ratings?.ratedW ?? 0;
    if (rated > 0 && Math.abs(genW) > 2 * rated) throw new GarbageError(`701 W (register ${wAddr}) = ${genW} W is beyond twice the ${rated} W rating`);
    const socPct = num(d713?.values.SoC) ?? num(d802?.values.SoC) ?? num(d124?.values.ChaState);
    if (socPct !== undefined && (socPct < 0 || socPct > 100)) throw new GarbageError(`storage SoC = ${socPct} % is outside 0..100`);
    this.narrowRatings(d802);
    this.last704 = d704;
    this.last124 = d124;

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
      setpointW: this.setpointInForce(d704, d124),
      storageSocPct: socPct,
    };
    const prev = this.reading;
    this.reading = reading;
    if (
      prev &&
      (prev.gridForming !== reading.gridForming || prev.alarms.join() !== reading.alarms.join() || (prev.state === 'fault') !== (reading.state === 'fault') || prev.connected !== reading.connected)
    ) {
      this.emit();
    }
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

  /** What the device reports as in force, W, positive into the car. */
  private setpointInForce(d704?: DecodedPoints, d124?: DecodedPoints): number | undefined {
    if (d704) {
      if (d704.raws.WSetEna !== 1) return undefined;
      const w = num(d704.values.WSet);
      // 704 WSet is negative for charging; the port's positive is into the car
      return w === undefined ? undefined : w === 0 ? 0 : -w;
    }
    if (d124) {
      const refW = num(d124.values.WChaMax);
      const inPct = num(d124.values.InWRte);
      const outPct = num(d124.values.OutWRte);
      if (refW === undefined || inPct === undefined || outPct === undefined) return undefined;
      if (inPct > 0) return (inPct / 100) * refW;
      if (outPct > 0) return -(outPct / 100) * refW;
      return 0;
    }
    return undefined;
  }

  // --- control -----------------------------------------------------------------------------------

  private commandDue(): boolean {
    return !this.writeOk || this.o.clock.nowMs() - this.lastWriteAtMs >= (this.o.reversionS * 1000) / 2;
  }

  /**
   * Arm the device-side watchdog, then enable the setpoint: 704 WSetRvrt = 0 W, WSetRvrtTms, WSetEnaRvrt,
   * then WSetMod = WATTS with WSet, then WSetEna. For 124: InOutWRte_RvrtTms and StorCtl_Mod.
   */
  private async setupControl(): Promise<void> {
    const rvrtS = Math.max(1, Math.ceil(this.o.reversionS));
    const m704 = this.models.get(704);
    if (m704) {
      await this.readSf704();
      await this.writePoints(m704, [['WSetRvrt', 0]]);
      await this.writePoints(m704, [['WSetRvrtTms', rvrtS]]);
      await this.writePoints(m704, [['WSetEnaRvrt', 1]]);
      await this.writePoints(m704, [['WSetMod', 1], ['WSet', this.toWSet(this.commandW)]]);
      await this.writePoints(m704, [['WSetEna', 1]]);
    } else {
      const m124 = this.models.get(124)!;
      await this.readSf124();
      await this.writePoints(m124, [['StorCtl_Mod', STORCTL_BOTH]]);
      await this.writeCommand124(m124);
    }
    const m702 = this.models.get(702);
    if (m702 && this.gridFormingCommand !== undefined && this.island?.capable && this.island.writable) await this.writeGridForming(m702, this.gridFormingCommand);
    this.lastWriteAtMs = this.o.clock.nowMs();
    this.writeOk = true;
    this.needsSetup = false;
    this.setupAtConnect = this.transport.connects;
  }

  private async readSf704(): Promise<void> {
    const m = this.models.get(704)!;
    const regs = await this.readBlocks([this.spanFor(m, TICK_POINTS[704])]);
    const d = this.decode(m, TICK_POINTS[704], regs);
    this.throwOnIssues(d.issues);
    this.last704 = d;
  }

  private async readSf124(): Promise<void> {
    const m = this.models.get(124)!;
    const regs = await this.readBlocks([this.spanFor(m, TICK_POINTS[124])]);
    const d = this.decode(m, TICK_POINTS[124], regs);
    this.throwOnIssues(d.issues);
    this.last124 = d;
  }

  /** 704 WSet for a port command: WSet is negative for charging (704 WSet note), the port's positive is charging. */
  private toWSet(powerW: number): number {
    return powerW === 0 ? 0 : -powerW;
  }

  private async writeCommand(): Promise<void> {
    this.writeOk = false;
    const m704 = this.models.get(704);
    if (m704) {
      // enable and mode ride along so a device that cleared them on reversion takes the command again
      await this.writePoints(m704, [['WSetEna', 1], ['WSetMod', 1], ['WSet', this.toWSet(this.commandW)]]);
    } else {
      await this.writeCommand124(this.models.get(124)!);
    }
    this.lastWriteAtMs = this.o.clock.nowMs();
    this.writeOk = true;
  }

  /** 124 InWRte / OutWRte as % of WChaMax (124 names WDisChaMax, which it lacks), with their reversion time. */
  private async writeCommand124(m: ModelAt): Promise<void> {
    const refW = num(this.last124?.values.WChaMax);
    if (refW === undefined || refW <= 0) throw new GarbageError(`124 WChaMax (register ${m.address + 2}) is not implemented or not positive; cannot express a power command`);
    const pct = Math.min(100, (Math.abs(this.commandW) / refW) * 100);
    const inPct = this.commandW > 0 ? pct : this.commandW < 0 ? -pct : 0;
    await this.writePoints(m, [
      ['OutWRte', -inPct || 0],
      ['InWRte', inPct || 0],
      ['InOutWRte_WinTms', 0],
      ['InOutWRte_RvrtTms', Math.max(1, Math.ceil(this.o.reversionS))],
    ]);
  }

  /** Write contiguous points of one model in a single FC 16, each scaled by its SF from the last read. */
  private async writePoints(m: ModelAt, pts: [string, number][]): Promise<void> {
    const lps = pts.map(([n]) => m.layout.byName.get(n)!);
    const first = lps[0].offset;
    const regs: number[] = [];
    let next = first;
    for (let i = 0; i < pts.length; i++) {
      const lp = lps[i];
      if (lp.offset !== next) throw new Error(`internal: points ${pts.map((p) => p[0]).join(', ')} of model ${m.id} are not contiguous`);
      let sf = 0;
      if (lp.def.sf) {
        const known = m.id === 704 ? this.last704 : m.id === 124 ? this.last124 : undefined;
        const raw = known?.raws[lp.def.sf];
        if (typeof raw !== 'number') throw new GarbageError(`${m.id} ${lp.def.sf} is not implemented; cannot scale ${lp.name}`);
        sf = raw;
      }
      try {
        regs.push(...encodePoint(lp, pts[i][1], sf));
      } catch (e) {
        throw new GarbageError(`${m.id} ${lp.name} = ${pts[i][1]} cannot be encoded: ${errText(e)}`);
      }
      next = lp.offset + lp.def.size;
    }
    await this.transport.writeHolding(m.address + first, regs);
  }

  /** 702 IntIslandCat: INT_ISL_CAPABLE enables intentional islanding, UNCATEGORIZED leaves it. */
  private async writeGridForming(m: ModelAt, on: boolean): Promise<void> {
    await this.writePoints(m, [['IntIslandCat', 1 << (on ? ISLAND_BIT_CAPABLE : ISLAND_BIT_UNCATEGORIZED)]]);
  }

  // --- faults ------------------------------------------------------------------------------------

  private onError(e: unknown): void {
    const now = this.o.clock.nowMs();
    let code: string;
    let message: string;
    this.noteReconnect();
    if (e instanceof ModbusError) {
      code = e.code;
      message = `${this.name}: ${this.annotate(e)}`;
      if (e.code !== 'exception') {
        // the device may have restarted (reset controls) or been replaced (another map): start over when it is back
        this.needsSetup = true;
        this.needsRediscovery = true;
      }
    } else if (e instanceof GarbageError) {
      code = 'garbage';
      message = `${this.name}: ${e.message}`;
    } else {
      code = e instanceof DiscoveryError ? 'discovery' : 'error';
      message = `${this.name}: ${errText(e)}`;
      this.needsRediscovery = true;
      this.needsSetup = true;
    }
    const changed = this.fault?.code !== code;
    if (changed || this.fault?.message !== message) {
      if (changed) this.o.log?.(message);
      this.fault = { code, message, sinceMs: this.fault?.sinceMs ?? now };
      if (changed) this.emit();
    }
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

  private clearFault(): void {
    if (!this.fault) return;
    this.o.log?.(`${this.name}: recovered from ${this.fault.code}`);
    this.fault = undefined;
    this.emit();
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

  private serial<T>(op: () => Promise<T>): Promise<T> {
    const run = this.ops.then(op, op);
    this.ops = run.catch(() => undefined);
    return run;
  }
}

function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}
