/**
 * The site meter port over SunSpec Modbus (TCP or RTU): a grid meter (models 201–204, integer + SF, or
 * 211–214, float32) and, optionally, a PV source (a PV inverter's model 101–103, or a meter on the PV feed).
 *
 * Sign of `W`: the meter models do not state it, and devices differ. The driver assumes the meter counts
 * power flowing from the grid into the site as positive (import positive, as a consumption meter does) and
 * `invertSign` flips it for a device that counts the other way; the energy counters `TotWhImp`/`TotWhExp`
 * swap with it. A PV inverter's 101–103 `W` is its AC output, positive when producing.
 *
 * Every poll is one read per device (the points and their scale factors); a sentinel ("not implemented",
 * 0x8000, NaN) is a missing figure, never a number. A grid meter whose `W` is missing, a device that does
 * not answer or answers garbage: the figures are withdrawn and `fault` says why (docs/meter.md).
 */
import type { Clock, PortFault, SiteMeterPort, SiteMeterState } from '../../ports.ts';
import { describeLink, errText, ModbusError, type ModbusLink } from '../../inverter/sunspec/transport.ts';
import { DiscoveryError } from '../../inverter/sunspec/discovery.ts';
import { GarbageError } from '../../inverter/sunspec/model-io.ts';
import { ModbusBuses, type ModbusChannel } from '../../modbus/bus.ts';
import { MapMovedError, METER_MODELS, phasesOf, PV_INVERTER_MODELS, SunspecReader } from './reader.ts';

const PHASE_POINTS = ['AphA', 'AphB', 'AphC'] as const;

/** Points a grid meter poll reads. */
export function meterPoints(model: number): string[] {
  return ['W', ...PHASE_POINTS.slice(0, phasesOf(model)), 'TotWhExp', 'TotWhImp'];
}

export interface SunspecDeviceOptions {
  link: ModbusLink;
  /** A connection shared with other devices on the bus; default one of its own. */
  channel?: ModbusChannel;
  /** SunSpec base register; null = probe 40000, 0, 50000. */
  base: number | null;
  /** The device counts export as positive `W`: flip it (and swap the energy counters). */
  invertSign: boolean;
}

export interface SunspecMeterOptions extends SunspecDeviceOptions {
  timeoutMs: number;
  retries: number;
  clock: Clock;
  log?: (msg: string) => void;
  /** The PV source, when one is configured. */
  pv?: SunspecDeviceOptions;
  /** Longest a call keeps its caller waiting, ms of real time; default 2 × timeoutMs × (retries + 1). */
  callBoundMs?: number;
}

interface Device {
  name: string;
  channel: ModbusChannel;
  reader: SunspecReader;
  invertSign: boolean;
}

export class SunspecMeter implements SiteMeterPort {
  readonly kind = 'site-meter' as const;
  private s: SiteMeterState = {};
  private readonly grid: Device;
  private readonly pv?: Device;
  private readonly callBoundMs: number;
  private opened = false;
  private refreshCall?: Promise<void>;
  private gridFault?: PortFault;
  private pvFault?: PortFault;

  constructor(private readonly o: SunspecMeterOptions) {
    // without the runtime's buses, the grid meter and the PV source still share a line they are both on
    const buses = new ModbusBuses(o.clock, o.log);
    const own = (link: ModbusLink, name: string): ModbusChannel => buses.channel(link, { timeoutMs: o.timeoutMs, retries: o.retries }, name);
    const gridChannel = o.channel ?? own(o.link, 'siteMeter.modbus');
    this.grid = {
      name: `SunSpec grid meter ${describeLink(o.link)}`,
      channel: gridChannel,
      invertSign: o.invertSign,
      reader: new SunspecReader({ channel: gridChannel, base: o.base, models: METER_MODELS, points: meterPoints, what: 'grid meter' }),
    };
    if (o.pv) {
      const pvChannel = o.pv.channel ?? own(o.pv.link, 'siteMeter.pv.modbus');
      this.pv = {
        name: `SunSpec PV source ${describeLink(o.pv.link)}`,
        channel: pvChannel,
        invertSign: o.pv.invertSign,
        reader: new SunspecReader({ channel: pvChannel, base: o.pv.base, models: [...PV_INVERTER_MODELS, ...METER_MODELS], points: () => ['W'], what: 'PV inverter or PV meter' }),
      };
    }
    this.callBoundMs = o.callBoundMs ?? 2 * o.timeoutMs * (o.retries + 1);
  }

  /** The grid meter's model (after open). */
  get model(): number | undefined {
    return this.grid.reader.model?.id;
  }

  /** The PV source's model (after open), when one is configured. */
  get pvModel(): number | undefined {
    return this.pv?.reader.model?.id;
  }

  /** Registers one poll reads, grid meter and PV source together (for the bus-time figures). */
  get registersPerPoll(): number {
    return this.grid.reader.registersPerPoll + (this.pv?.reader.registersPerPoll ?? 0);
  }

  /** Requests put on the wire so far. */
  get requestCount(): number {
    return this.grid.channel.requestCount + (this.pv?.channel.requestCount ?? 0);
  }

  /**
   * Connect and discover the grid meter (and the PV source), bounded. A device that does not answer (yet),
   * or answers without a meter model, does not make `open()` reject: the meter is an optional measurement,
   * and the core runs on the assumed house load meanwhile. The failure is the port's fault, named, and every
   * `refresh()` tries again (connect with the transport's backoff, then discovery).
   */
  async open(): Promise<void> {
    const bound = 4 * this.callBoundMs;
    for (const d of [this.grid, ...(this.pv ? [this.pv] : [])]) {
      try {
        await withinMs(this.openDevice(d), bound, `open did not complete within ${bound} ms`);
      } catch (e) {
        const f = this.fault(d === this.grid ? this.gridFault : this.pvFault, codeOf(e), `${d.name}: ${errText(e)}`);
        if (d === this.grid) this.gridFault = f;
        else this.pvFault = f;
      }
    }
    this.opened = true;
    if (this.gridFault) this.publish(undefined, undefined);
    else await this.refresh();
  }

  /** Poll; single-flight (a second call while one runs gets the same promise); bounded by `callBoundMs`. */
  refresh(): Promise<void> {
    if (!this.opened) return Promise.resolve();
    this.refreshCall ??= withinMs(this.poll(), this.callBoundMs, 'late')
      .catch(() => {
        // the poll overran: whatever it was waiting for, the figures we hold are no longer current
        this.gridFault = this.fault(this.gridFault, 'timeout', `${this.grid.name}: poll not done within ${this.callBoundMs} ms`);
        this.publish(undefined, undefined);
      })
      .finally(() => {
        this.refreshCall = undefined;
      });
    return this.refreshCall;
  }

  state(): SiteMeterState {
    return this.s;
  }

  async close(): Promise<void> {
    this.opened = false;
    await this.refreshCall?.catch(() => undefined);
    await this.grid.channel.close().catch(() => undefined);
    if (this.pv) await this.pv.channel.close().catch(() => undefined);
  }

  // ---------------------------------------------------------------------------------------------

  private async openDevice(d: Device): Promise<void> {
    await d.channel.connect();
    await d.reader.discover();
  }

  private async poll(): Promise<void> {
    const grid = await this.pollGrid();
    const pv = this.pv ? await this.pollPv() : undefined;
    this.publish(grid, pv);
  }

  private async pollGrid(): Promise<Partial<SiteMeterState> | undefined> {
    const d = this.grid;
    try {
      if (!d.reader.model) await d.reader.discover();
      const p = await d.reader.poll();
      const atMs = this.o.clock.nowMs();
      const model = d.reader.model!.id;
      const w = finiteOrUndefined(p.values.W);
      if (w === undefined) throw new GarbageError(`model ${model} W is ${p.values.W === undefined ? 'not implemented (or its W_SF is not)' : `not a finite number (${String(p.values.W)})`}`);
      const sign = d.invertSign ? -1 : 1;
      const currents = PHASE_POINTS.slice(0, phasesOf(model)).map((n) => finiteOrUndefined(p.values[n]));
      const imp = finiteOrUndefined(p.values.TotWhImp);
      const exp = finiteOrUndefined(p.values.TotWhExp);
      this.gridFault = undefined;
      return {
        gridPowerW: w * sign,
        // a phase current the meter does not implement makes the set unusable for a fuse check
        phaseCurrentsA: currents.every((a): a is number => a !== undefined) ? currents.map((a) => Math.abs(a)) : undefined,
        importedWh: d.invertSign ? exp : imp,
        exportedWh: d.invertSign ? imp : exp,
        atMs,
      };
    } catch (e) {
      this.gridFault = this.fault(this.gridFault, codeOf(e), `${d.name}: ${errText(e)}`);
      return undefined;
    }
  }

  private async pollPv(): Promise<{ pvPowerW: number; pvAtMs: number } | undefined> {
    const d = this.pv!;
    try {
      if (!d.reader.model) await d.reader.discover();
      const p = await d.reader.poll();
      const w = finiteOrUndefined(p.values.W);
      if (w === undefined) throw new GarbageError(`model ${d.reader.model?.id} W is not implemented or not a number`);
      this.pvFault = undefined;
      return { pvPowerW: d.invertSign ? -w : w, pvAtMs: this.o.clock.nowMs() };
    } catch (e) {
      this.pvFault = this.fault(this.pvFault, codeOf(e), `${d.name}: ${errText(e)}`);
      return undefined;
    }
  }

  private publish(grid: Partial<SiteMeterState> | undefined, pv: { pvPowerW: number; pvAtMs: number } | undefined): void {
    this.s = {
      ...(grid ?? {}),
      ...(pv ?? {}),
      fault: this.gridFault,
      pvFault: this.pv ? this.pvFault : undefined,
    };
  }

  /** Keep a fault's first-seen time while its cause stays the same kind. */
  private fault(prev: PortFault | undefined, code: string, message: string): PortFault {
    if (prev?.code !== code) this.o.log?.(message);
    return { code, message, sinceMs: prev?.code === code ? prev.sinceMs : this.o.clock.nowMs() };
  }
}

function finiteOrUndefined(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

function codeOf(e: unknown): string {
  if (e instanceof ModbusError) return e.code;
  if (e instanceof GarbageError) return 'garbage';
  if (e instanceof MapMovedError || e instanceof DiscoveryError) return 'discovery';
  return 'error';
}

/** Settle like `p` or reject after `ms` of real time (I/O bounds are real time: a silent socket does not move a virtual clock). */
function withinMs<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    t = setTimeout(() => reject(new ModbusError('timeout', message)), ms);
  });
  p.catch(() => undefined);
  return Promise.race([p, timeout]).finally(() => clearTimeout(t));
}
