/**
 * One SunSpec measurement device on a Modbus channel: discovered like the inverter (the `SunS` marker, the
 * model chain, any base), then one read per poll covering the model's header and the points asked for, with
 * their scale factors. Used for the grid meter (models 201–204 integer + SF, 211–214 float32) and for a PV
 * inverter (101–103) or PV meter. Reports decoded values or throws; the port (driver.ts) turns throws into
 * faults.
 */
import { decodePoints, modelLayout, spanOf, MAX_READ_REGISTERS, type DecodedPoints, type ModelLayout } from '../../inverter/sunspec/codec.ts';
import { discover, DiscoveryError, type DeviceMap } from '../../inverter/sunspec/discovery.ts';
import { GarbageError, type ModelAt } from '../../inverter/sunspec/model-io.ts';
import type { ModbusChannel } from '../../modbus/bus.ts';

/** Meter models by phase wiring: integer + SF, then float. */
export const METER_MODELS = [201, 202, 203, 204, 211, 212, 213, 214] as const;
/** PV inverter models (integer + SF). */
export const PV_INVERTER_MODELS = [101, 102, 103] as const;

/** Phase currents each meter model carries: single phase (201/211) L1; split phase (202/212) L1, L2; wye and delta all three. */
export function phasesOf(model: number): number {
  const m = model % 10;
  return m === 1 ? 1 : m === 2 ? 2 : 3;
}

export interface ReaderOptions {
  channel: ModbusChannel;
  /** SunSpec base register; null = probe 40000, 0, 50000. */
  base: number | null;
  /** The models this reader accepts, in order of preference; the first of them found in the chain is read. */
  models: readonly number[];
  /** Points read every poll (their scale factors come along in the same read). */
  points: (model: number) => readonly string[];
  /** What the device is, for error messages ("grid meter", "PV inverter"). */
  what: string;
}

export class SunspecReader {
  model?: ModelAt;
  map?: DeviceMap;
  private span: [number, number] = [0, 0];

  constructor(private readonly o: ReaderOptions) {}

  /** Discover the device and pick its model; throws a {@link DiscoveryError} saying what was found instead. */
  async discover(): Promise<ModelAt> {
    const map = await discover((a, n) => this.o.channel.readHolding(a, n), { base: this.o.base });
    let pick: ModelAt | undefined;
    for (const id of this.o.models) {
      const found = map.models.find((m) => m.id === id);
      const layout = found ? modelLayout(id) : undefined;
      if (found && layout) {
        pick = { ...found, layout };
        break;
      }
    }
    if (!pick) {
      throw new DiscoveryError(`no ${this.o.what} model (${this.o.models.join(', ')}) in the SunSpec chain at base ${map.base} (device has ${map.models.map((m) => m.id).join(', ') || 'none'})`);
    }
    if (pick.length < pick.layout.length) {
      // a shorter L than the model defines would cut points the read relies on
      const names = this.o.points(pick.id);
      const [, end] = spanOf(pick.layout, names);
      if (end > 2 + pick.length) throw new DiscoveryError(`${this.o.what} model ${pick.id} at ${pick.address} has L = ${pick.length}, too short for its points (needs ${end - 2})`);
    }
    const [first, end] = spanOf(pick.layout, this.o.points(pick.id));
    // from the ID register, so every poll also checks the model is still where discovery found it
    this.span = [0, Math.max(end, first)];
    if (this.span[1] > MAX_READ_REGISTERS) throw new DiscoveryError(`internal: ${this.o.what} read of ${this.span[1]} registers exceeds one request`);
    this.map = map;
    this.model = pick;
    return pick;
  }

  /** Registers per poll (for the bus-time figures). */
  get registersPerPoll(): number {
    return this.span[1] - this.span[0];
  }

  /** One poll: the header and the points, decoded. Throws {@link MapMovedError} when the model is no longer there. */
  async poll(): Promise<DecodedPoints> {
    const m = this.model;
    if (!m) throw new Error('internal: poll before discover');
    const [first, end] = this.span;
    const regs = await this.o.channel.readHolding(m.address + first, end - first);
    if (regs.length !== end - first) throw new GarbageError(`${this.o.what}: asked for ${end - first} registers at ${m.address + first}, got ${regs.length}`);
    if (regs[0] !== m.id || regs[1] !== m.length) {
      this.model = undefined;
      throw new MapMovedError(`${this.o.what}: model ${m.id} is no longer at ${m.address} (found ID ${regs[0]}, L ${regs[1]}); rediscovering`);
    }
    const d = decodePoints(m.layout, (off) => (off >= first && off < end && off < 2 + m.length ? regs[off - first] : undefined), this.o.points(m.id));
    return d;
  }

  get layout(): ModelLayout | undefined {
    return this.model?.layout;
  }
}

/** The device map changed under the driver (a restart with another layout): discover again. */
export class MapMovedError extends Error {}
