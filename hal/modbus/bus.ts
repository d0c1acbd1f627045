/**
 * Shared Modbus buses: one connection per RS-485 line (or per TCP gateway), however many devices sit on it.
 *
 * An RS-485 bus carries one transaction at a time and a serial port can be opened once, so an inverter and
 * a meter on the same wire must share one {@link ModbusTransport}: its queue serialises their requests and
 * each request carries its own unit id. The same holds for a Modbus TCP gateway in front of a bus (one
 * socket, several unit ids). Each driver gets a {@link ModbusChannel} for its unit; the transport opens on
 * the first channel's `connect()` and closes when the last channel has closed.
 */
import type { Clock } from '../ports.ts';
import { describeLink, ModbusTransport, type ModbusLink } from '../inverter/sunspec/transport.ts';

/** What a Modbus device driver needs from its connection (a {@link ModbusTransport} is one). */
export interface ModbusChannel {
  /** Requests this channel put on the wire (retries included where the transport counts them). */
  readonly requestCount: number;
  /** Successful connects of the underlying connection: a change means the device may have restarted. */
  readonly connects: number;
  /** Reads, writes and registers this channel put on the wire. */
  readonly stats: { reads: number; writes: number; registersRead: number; registersWritten: number };
  connect(): Promise<void>;
  readHolding(address: number, count: number): Promise<number[]>;
  writeHolding(address: number, values: number[]): Promise<void>;
  close(): Promise<void>;
}

export interface BusOptions {
  timeoutMs: number;
  retries: number;
}

/** The key of the physical bus: the serial device, or the TCP endpoint. */
export function busKey(link: ModbusLink): string {
  return link.kind === 'tcp' ? `tcp://${link.host}:${link.port}` : link.path;
}

interface Bus {
  key: string;
  link: ModbusLink;
  options: BusOptions[];
  users: Set<SharedChannel>;
  transport?: ModbusTransport;
  connecting?: Promise<void>;
  closing?: Promise<void>;
}

/**
 * The buses of one runtime. `channel()` for a link whose bus is already known returns a channel on the same
 * connection; the line settings of an RTU bus must then agree (a port runs at one baud rate).
 */
export class ModbusBuses {
  private readonly buses = new Map<string, Bus>();

  constructor(private readonly clock: Clock, private readonly log?: (msg: string) => void) {}

  /**
   * A channel to `link.unitId` on the bus of `link`. Throws when the bus is already in use with other line
   * settings, or when that unit id is already taken on it (two drivers would answer for one device).
   * `name` (a config key such as `siteMeter.modbus`) names the user in those errors.
   */
  channel(link: ModbusLink, options: BusOptions, name: string): ModbusChannel {
    const key = busKey(link);
    let bus = this.buses.get(key);
    if (!bus) {
      bus = { key, link, options: [], users: new Set() };
      this.buses.set(key, bus);
    } else {
      const a = bus.link;
      if (a.kind === 'rtu' && link.kind === 'rtu' && (a.baudRate !== link.baudRate || a.parity !== link.parity || a.stopBits !== link.stopBits || a.dataBits !== link.dataBits)) {
        throw new Error(`${name}: ${link.path} is already in use at ${describeLink({ ...a, unitId: link.unitId }).replace(/ unit \d+$/, '')}; devices on one RS-485 bus share its baud rate, parity, data and stop bits`);
      }
      for (const u of bus.users) {
        if (u.unitId === link.unitId) throw new Error(`${name}: unit ${link.unitId} on ${key} is already used by ${u.name}; give each device on a bus its own unit id`);
      }
    }
    bus.options.push(options);
    const ch = new SharedChannel(this, bus, link.unitId, name, options);
    bus.users.add(ch);
    return ch;
  }

  /** The devices sharing the bus of `link` (names as given to `channel()`). */
  usersOf(link: ModbusLink): string[] {
    return [...(this.buses.get(busKey(link))?.users ?? [])].map((u) => u.name);
  }

  /**
   * The transport of a bus, made on first use with the longest timeout any user asked for (for connecting);
   * each request then runs with its own device's timeout and retries.
   */
  transportOf(bus: Bus): ModbusTransport {
    if (!bus.transport) {
      const timeoutMs = Math.max(...bus.options.map((o) => o.timeoutMs));
      const retries = Math.max(...bus.options.map((o) => o.retries));
      bus.transport = new ModbusTransport(bus.link, { timeoutMs, retries, clock: this.clock, log: this.log });
    }
    return bus.transport;
  }
}

class SharedChannel implements ModbusChannel {
  readonly stats = { reads: 0, writes: 0, registersRead: 0, registersWritten: 0 };
  private acquired = false;

  constructor(private readonly buses: ModbusBuses, private readonly bus: Bus, readonly unitId: number, readonly name: string, private readonly options: BusOptions) {}

  get requestCount(): number {
    return this.stats.reads + this.stats.writes;
  }

  get connects(): number {
    return this.bus.transport?.connects ?? 0;
  }

  async connect(): Promise<void> {
    const t = this.buses.transportOf(this.bus);
    this.acquired = true;
    await this.bus.closing;
    if (t.connected) return;
    // the other device may be connecting right now: one connect for both
    this.bus.connecting ??= t.connect().finally(() => {
      this.bus.connecting = undefined;
    });
    await this.bus.connecting;
  }

  readHolding(address: number, count: number): Promise<number[]> {
    this.stats.reads++;
    this.stats.registersRead += count;
    return this.buses.transportOf(this.bus).readHolding(address, count, { unitId: this.unitId, ...this.options });
  }

  writeHolding(address: number, values: number[]): Promise<void> {
    this.stats.writes++;
    this.stats.registersWritten += values.length;
    return this.buses.transportOf(this.bus).writeHolding(address, values, { unitId: this.unitId, ...this.options });
  }

  /** Release this device's hold on the bus; the connection closes when no device holds it. */
  async close(): Promise<void> {
    if (!this.acquired) return;
    this.acquired = false;
    const stillUsed = [...this.bus.users].some((u) => u.acquired);
    if (stillUsed || !this.bus.transport) return;
    const closing = this.bus.transport.close();
    this.bus.closing = closing.catch(() => undefined);
    await this.bus.closing;
  }
}
