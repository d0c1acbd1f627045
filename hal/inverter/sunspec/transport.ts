/**
 * Modbus transport for the SunSpec driver: TCP or RTU (RS-485) through modbus-serial.
 *
 * One request in flight at a time (a serial line carries one transaction at a time, and a TCP device
 * behind a gateway usually does too), a per-request timeout, retries, and reconnect with backoff
 * timed by the injected clock. Every failure is a {@link ModbusError} naming the request.
 */
import * as modbusSerial from 'modbus-serial';
import type { ModbusRTU as ModbusClient } from 'modbus-serial/ModbusRTU.js';
import type { Clock } from '../../ports.ts';

// the package is CommonJS and sets module.exports.default to itself, so this works the same under tsx and tsc
const ModbusClientClass = (modbusSerial as unknown as { default: typeof ModbusClient }).default;

export type ModbusLink =
  | { kind: 'tcp'; host: string; port: number; unitId: number }
  | { kind: 'rtu'; path: string; baudRate: number; parity: 'none' | 'even' | 'odd'; stopBits: 1 | 2; dataBits: 7 | 8; unitId: number };

export interface TransportOptions {
  timeoutMs: number;
  /** Extra attempts after a timeout or I/O error (exception responses are answers and are not retried). */
  retries: number;
  clock: Clock;
  /** First reconnect delay after a failed connect, doubled per failure up to `backoffMaxMs`. */
  backoffMinMs?: number;
  backoffMaxMs?: number;
  log?: (msg: string) => void;
}

export type ModbusErrorCode = 'timeout' | 'exception' | 'disconnected' | 'io';

/** Per-request settings of a device sharing the connection: its unit id, its own timeout and retries. */
export interface RequestTarget {
  unitId?: number;
  timeoutMs?: number;
  retries?: number;
}

/** A failed Modbus request: what was asked, and what went wrong. */
export class ModbusError extends Error {
  constructor(
    readonly code: ModbusErrorCode,
    message: string,
    readonly request?: { fc: 3 | 16; address: number; count: number },
    /** Modbus exception code (1 illegal function, 2 illegal address, 3 illegal value, 4 device failure, 6 busy, ...). */
    readonly exceptionCode?: number,
  ) {
    super(message);
    this.name = 'ModbusError';
  }
}

export function describeLink(link: ModbusLink): string {
  return link.kind === 'tcp'
    ? `tcp://${link.host}:${link.port} unit ${link.unitId}`
    : `rtu ${link.path} ${link.baudRate} ${link.dataBits}${link.parity[0].toUpperCase()}${link.stopBits} unit ${link.unitId}`;
}

/** Exceptions a device raises while busy; worth one more try. */
const TRANSIENT_EXCEPTIONS = new Set([5, 6]);

export class ModbusTransport {
  /** Requests put on the wire since creation (retries included), for the bus-time figures. */
  requestCount = 0;
  /** Successful connects so far: a change tells the driver the device may have restarted meanwhile. */
  connects = 0;
  /** What went on the wire, by function: enough to work out RTU frame sizes. */
  readonly stats = { reads: 0, writes: 0, registersRead: 0, registersWritten: 0 };
  private client?: ModbusClient;
  /** Rejects when the current connection closes: a request in flight then fails at once instead of timing out. */
  private clientClosed?: Promise<never>;
  private tail: Promise<unknown> = Promise.resolve();
  private nextConnectAtMs = 0;
  private backoffMs: number;
  private closed = false;
  private connecting?: Promise<void>;
  private releasing: Promise<void> = Promise.resolve();

  constructor(readonly link: ModbusLink, private o: TransportOptions) {
    this.backoffMs = o.backoffMinMs ?? 500;
  }

  get connected(): boolean {
    return this.client?.isOpen === true;
  }

  /** Connect once, now; rejects with a message naming the link and the cause. */
  async connect(): Promise<void> {
    this.closed = false;
    await this.enqueue(() => this.doConnect());
  }

  /**
   * FC 3, `count` <= 125 registers. `unitId` addresses another device on the same bus or gateway
   * (default: the link's); requests stay serialised, one on the wire at a time, whichever unit they are for.
   */
  readHolding(address: number, count: number, target?: number | RequestTarget): Promise<number[]> {
    return this.enqueue(() => this.withRetries({ fc: 3, address, count }, async (c) => (await c.readHoldingRegisters(address, count)).data, targetOf(target)));
  }

  /** FC 16, `values.length` <= 123 registers; `target` as for `readHolding`. */
  writeHolding(address: number, values: number[], target?: number | RequestTarget): Promise<void> {
    return this.enqueue(() => this.withRetries({ fc: 16, address, count: values.length }, async (c) => {
      await c.writeRegisters(address, values);
    }, targetOf(target)));
  }

  /** Drop the connection; the next request reconnects (subject to backoff). */
  drop(): void {
    const c = this.client;
    this.client = undefined;
    if (!c) return;
    // the RTU port has no destroy(); a serial device must be released before it can be opened again
    const released = new Promise<void>((resolve) => {
      try {
        if (this.link.kind === 'rtu') c.close(() => resolve());
        else c.destroy(() => resolve());
      } catch {
        resolve();
      }
    });
    this.releasing = guard(released, this.o.timeoutMs + 100).catch(() => undefined);
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.tail.catch(() => undefined);
    this.drop();
    await this.releasing;
  }

  // ---------------------------------------------------------------------------------------------

  private enqueue<T>(op: () => Promise<T>): Promise<T> {
    const run = this.tail.then(op, op);
    this.tail = run.catch(() => undefined);
    return run;
  }

  private async doConnect(): Promise<void> {
    if (this.connecting) return this.connecting;
    this.connecting = (async () => {
      this.drop();
      await this.releasing;
      const c = new ModbusClientClass();
      // a socket or serial error after connect surfaces as a failed request; without a listener it would crash the process
      c.on('error', (e: unknown) => this.o.log?.(`${describeLink(this.link)}: ${errText(e)}`));
      const l = this.link;
      try {
        await guard(
          l.kind === 'tcp'
            ? c.connectTCP(l.host, { port: l.port, timeout: this.o.timeoutMs })
            : c.connectRTUBuffered(l.path, { baudRate: l.baudRate, parity: l.parity, stopBits: l.stopBits, dataBits: l.dataBits }),
          this.o.timeoutMs * 2 + 100,
        );
      } catch (e) {
        try {
          c.destroy(() => undefined);
        } catch {
          // nothing to release
        }
        const now = this.o.clock.nowMs();
        this.nextConnectAtMs = now + this.backoffMs;
        this.backoffMs = Math.min(this.backoffMs * 2, this.o.backoffMaxMs ?? 30000);
        throw new ModbusError('disconnected', `cannot connect: ${errText(e)}`);
      }
      c.setID(l.unitId);
      c.setTimeout(this.o.timeoutMs);
      // modbus-serial leaves a request pending when the peer closes the socket; it would wait out its timeout
      const closed = new Promise<never>((_, reject) => (c as unknown as NodeJS.EventEmitter).once('close', () => reject(new PeerClosed('the device closed the connection'))));
      closed.catch(() => undefined);
      this.clientClosed = closed;
      this.client = c;
      this.connects++;
      this.backoffMs = this.o.backoffMinMs ?? 500;
      this.nextConnectAtMs = 0;
    })();
    try {
      await this.connecting;
    } finally {
      this.connecting = undefined;
    }
  }

  private async ensureClient(): Promise<ModbusClient> {
    if (this.closed) throw new ModbusError('disconnected', 'transport closed');
    if (this.client?.isOpen) return this.client;
    const now = this.o.clock.nowMs();
    if (now < this.nextConnectAtMs) {
      throw new ModbusError('disconnected', `not connected; next reconnect attempt in ${Math.ceil((this.nextConnectAtMs - now) / 1000)} s`);
    }
    await this.doConnect();
    return this.client!;
  }

  private async withRetries<T>(req: { fc: 3 | 16; address: number; count: number }, fn: (c: ModbusClient) => Promise<T>, target: RequestTarget = {}): Promise<T> {
    const unit = target.unitId ?? this.link.unitId;
    // a device sharing the bus may ask for a shorter timeout than the connection's (a meter that stops
    // answering should not hold the inverter's requests up for the inverter's own timeout)
    const timeoutMs = target.timeoutMs ?? this.o.timeoutMs;
    const retries = target.retries ?? this.o.retries;
    const what = `${req.fc === 3 ? 'reading' : 'writing'} ${req.count} register${req.count === 1 ? '' : 's'} at ${req.address}${unit !== this.link.unitId ? ` of unit ${unit}` : ''}`;
    let last: ModbusError | undefined;
    // a device that closes the connection after each answer (some gateways do) costs the next request its
    // connection: that request gets one fresh connection without spending a retry
    let freshConnection = true;
    for (let attempt = 0; attempt <= retries; attempt++) {
      let c: ModbusClient;
      try {
        c = await this.ensureClient();
      } catch (e) {
        const err = e instanceof ModbusError ? e : new ModbusError('disconnected', errText(e));
        throw new ModbusError('disconnected', `${err.message} (${what})`, req);
      }
      // the unit and the timeout are per request: one connection serves every device on the bus, in turn
      c.setID(unit);
      c.setTimeout(timeoutMs);
      this.requestCount++;
      if (req.fc === 3) {
        this.stats.reads++;
        this.stats.registersRead += req.count;
      } else {
        this.stats.writes++;
        this.stats.registersWritten += req.count;
      }
      try {
        return await guard(Promise.race([fn(c), this.clientClosed!]), timeoutMs * 2 + 100);
      } catch (e) {
        if (e instanceof PeerClosed && freshConnection) {
          freshConnection = false;
          attempt--;
          this.drop();
          continue;
        }
        if (e instanceof ModbusError) throw new ModbusError(e.code, `${e.message} (${what})`, req);
        const ex = exceptionCodeOf(e);
        if (ex !== undefined) {
          last = new ModbusError('exception', `exception ${ex} (${EXCEPTION_NAMES[ex] ?? 'unknown'}) ${what}`, req, ex);
          if (!TRANSIENT_EXCEPTIONS.has(ex)) throw last;
          continue;
        }
        const timedOut = isTimeout(e);
        last = new ModbusError(
          timedOut ? 'timeout' : c.isOpen ? 'io' : 'disconnected',
          `${timedOut ? `no answer within ${timeoutMs} ms` : errText(e)} ${what} (attempt ${attempt + 1} of ${retries + 1})`,
          req,
        );
        // a late answer to a timed-out request would be taken for the next one's; start clean
        if (timedOut) this.drop();
        if (!c.isOpen) this.drop();
      }
    }
    throw last!;
  }
}

function targetOf(t: number | RequestTarget | undefined): RequestTarget {
  return typeof t === 'number' ? { unitId: t } : t ?? {};
}

export const EXCEPTION_NAMES: Record<number, string> = {
  1: 'illegal function',
  2: 'illegal data address',
  3: 'illegal data value',
  4: 'server device failure',
  5: 'acknowledge',
  6: 'server device busy',
  8: 'memory parity error',
  10: 'gateway path unavailable',
  11: 'gateway target failed to respond',
};

function exceptionCodeOf(e: unknown): number | undefined {
  const code = (e as { modbusCode?: unknown } | null)?.modbusCode;
  return typeof code === 'number' ? code : undefined;
}

function isTimeout(e: unknown): boolean {
  const x = e as { errno?: unknown; name?: unknown; code?: unknown } | null;
  return x?.errno === 'ETIMEDOUT' || x?.name === 'TransactionTimedOutError' || x?.code === 'ETIMEDOUT' || (e instanceof GuardTimeout);
}

export function errText(e: unknown): string {
  if (e instanceof Error) return e.message;
  const x = e as { message?: unknown; errno?: unknown } | null;
  if (x && typeof x.message === 'string' && x.message) return x.message;
  if (x && typeof x.errno === 'string') return x.errno;
  return String(e);
}

class GuardTimeout extends Error {}
class PeerClosed extends Error {}

/**
 * Settle within `ms` even if the library never calls back (a socket closed mid-request leaves its
 * transaction waiting): the queue must not stall behind one lost request. I/O timing, hence real time.
 */
function guard<T>(p: Promise<T>, ms: number): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    t = setTimeout(() => reject(new GuardTimeout(`no completion within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(t));
}
