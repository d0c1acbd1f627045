/**
 * The site meter port from MQTT, for installs where the meter is already published (Home Assistant,
 * Tasmota, a Shelly, EVerest's powermeter): one topic for grid power (and optionally one for PV), each a
 * plain number or a JSON document with a path to the number (mqtt-payload.ts).
 *
 * Age: a figure is stamped with the monotonic clock when its message arrives and is withdrawn once it is
 * older than `maxAgeS` (the state then carries a `stale` fault), so a publisher that stops is noticed
 * without any timer. A retained message is ignored: the broker replays it at subscription with no clue to
 * how old it is. The client speaks MQTT 3.1.1, which both Mosquitto and the embedded broker accept.
 */
import mqtt, { type IPublishPacket, type MqttClient } from 'mqtt';
import type { Clock, PortFault, SiteMeterPort, SiteMeterState } from '../ports.ts';
import { parsePath, readNumber } from './mqtt-payload.ts';
import { redactUrl } from '../redact-url.ts';

export interface MqttSource {
  topic: string;
  /** JSON path to the number; empty/undefined = the payload is the number. */
  path?: string | null;
}

export interface MqttMeterOptions {
  url: string;
  /** Grid power, W (or `unit`), positive = import unless `invertSign`. */
  grid: MqttSource;
  /** PV production, positive = produced. */
  pv?: MqttSource | null;
  /**
   * JSON paths to the phase currents, A, L1 first, in the grid topic's payload (Shelly `a_current`,
   * `b_current`, `c_current`); they share the grid figure's time. A payload missing one of them carries no
   * currents (the fuse limit then assumes the house load); the grid figure stands.
   */
  currentPaths?: string[] | null;
  /** A figure older than this is withdrawn, s. */
  maxAgeS: number;
  /** The publisher counts export as positive: flip the grid figure. */
  invertSign?: boolean;
  /** Unit of the published figures (default W). */
  unit?: 'W' | 'kW';
  username?: string;
  password?: string;
  /** Longest `open()` waits for the broker, ms (default 5000). */
  connectTimeoutMs?: number;
  clock: Clock;
  log?: (msg: string) => void;
}

interface Slot {
  source: MqttSource;
  path: (string | number)[];
  valueW?: number;
  currentsA?: number[];
  atMs?: number;
  fault?: PortFault;
}

export class MqttMeter implements SiteMeterPort {
  readonly kind = 'site-meter' as const;
  /** Messages taken so far (for tests and figures). */
  messages = 0;
  private client?: MqttClient;
  private readonly grid: Slot;
  private readonly pv?: Slot;
  private readonly currentPaths: (string | number)[][];
  private connFault?: PortFault;
  private readonly name: string;

  constructor(private readonly o: MqttMeterOptions) {
    // a path that cannot be read is a config error: the constructor throws, the factory turns it into open_failed
    this.grid = { source: o.grid, path: o.grid.path ? parsePath(o.grid.path) : [] };
    if (o.pv) this.pv = { source: o.pv, path: o.pv.path ? parsePath(o.pv.path) : [] };
    this.currentPaths = (o.currentPaths ?? []).map((p) => parsePath(p));
    if (this.currentPaths.length > 3) throw new Error('at most three phase current paths (L1, L2, L3)');
    if (this.currentPaths.length > 0 && this.grid.path.length === 0) throw new Error('phase current paths need a JSON payload: give the grid figure a path too');
    this.name = `MQTT site meter ${redactUrl(o.url)}`;
  }

  /**
   * Connect and subscribe, waiting at most `connectTimeoutMs`. A broker that is not there (yet) or refuses
   * the client does not make `open()` reject (see `SiteMeterPort`): the state carries a `disconnected`
   * fault and the client keeps reconnecting every 2 s, subscribing again on each connect.
   */
  async open(): Promise<void> {
    const timeoutMs = this.o.connectTimeoutMs ?? 5000;
    const topics = [this.grid.source.topic, ...(this.pv ? [this.pv.source.topic] : [])];
    const since = this.o.clock.nowMs();
    this.connFault = { code: 'disconnected', message: `${this.name}: not connected to the broker yet`, sinceMs: since };
    const client = mqtt.connect(this.o.url, {
      protocolVersion: 4,
      clean: true,
      reconnectPeriod: 2000,
      connectTimeout: timeoutMs,
      username: this.o.username,
      password: this.o.password,
      clientId: `wallbox-meter-${Math.random().toString(16).slice(2, 10)}`,
    });
    this.client = client;
    client.on('message', (topic, payload, packet) => this.onMessage(topic, payload, packet));
    client.on('close', () => {
      if (!this.connFault) this.connFault = { code: 'disconnected', message: `${this.name}: connection to the broker lost`, sinceMs: this.o.clock.nowMs() };
    });
    // errors show in the connection state; without a listener an error event would throw
    client.on('error', (e) => {
      this.o.log?.(`${this.name}: ${e.message}`);
      if (this.connFault) this.connFault = { ...this.connFault, message: `${this.name}: ${e.message}` };
    });
    // a clean session: the subscriptions are made again on every connect
    const subscribed = new Promise<void>((resolve) => {
      client.on('connect', () => {
        client.subscribe(topics, { qos: 0 }, (err, granted) => {
          const refused = (granted ?? []).filter((g) => g.qos === 128).map((g) => g.topic);
          if (err || refused.length) {
            const why = err ? err.message : `the broker refused the subscription to ${refused.join(', ')}`;
            this.connFault = { code: 'subscribe', message: `${this.name}: ${why}`, sinceMs: this.o.clock.nowMs() };
            this.o.log?.(this.connFault.message);
          } else {
            this.connFault = undefined;
          }
          resolve();
        });
      });
    });
    let t: NodeJS.Timeout | undefined;
    await Promise.race([subscribed, new Promise<void>((r) => (t = setTimeout(r, timeoutMs)))]).finally(() => clearTimeout(t));
    if (this.connFault?.code === 'disconnected') {
      this.connFault = { ...this.connFault, message: `${this.name}: no connection to the broker within ${timeoutMs} ms; retrying every 2 s` };
      this.o.log?.(this.connFault.message);
    }
  }

  /** Pushed source: nothing to poll. The figures' age is judged in `state()`. */
  async refresh(): Promise<void> {}

  state(): SiteMeterState {
    const now = this.o.clock.nowMs();
    const grid = this.current(this.grid, now);
    const out: SiteMeterState = { fault: this.connFault ?? grid.fault };
    if (grid.valueW !== undefined) {
      out.gridPowerW = grid.valueW;
      out.atMs = grid.atMs;
      if (this.grid.currentsA) out.phaseCurrentsA = [...this.grid.currentsA];
    }
    if (this.pv) {
      const pv = this.current(this.pv, now);
      out.pvFault = this.connFault ?? pv.fault;
      if (pv.valueW !== undefined) {
        out.pvPowerW = pv.valueW;
        out.pvAtMs = pv.atMs;
      }
    }
    return out;
  }

  async close(): Promise<void> {
    const c = this.client;
    this.client = undefined;
    if (c) await new Promise<void>((r) => c.end(true, {}, () => r()));
  }

  // ---------------------------------------------------------------------------------------------

  /** A slot's figure if still within `maxAgeS`, else its fault (or `stale`). */
  private current(slot: Slot, now: number): { valueW?: number; atMs?: number; fault?: PortFault } {
    if (slot.fault) return { fault: slot.fault };
    if (slot.atMs === undefined || slot.valueW === undefined) {
      return { fault: { code: 'no_data', message: `${this.name}: nothing received on ${slot.source.topic} yet`, sinceMs: now } };
    }
    const ageS = (now - slot.atMs) / 1000;
    if (ageS > this.o.maxAgeS) {
      return { fault: { code: 'stale', message: `${this.name}: last message on ${slot.source.topic} is ${ageS.toFixed(1)} s old (limit ${this.o.maxAgeS} s)`, sinceMs: slot.atMs + this.o.maxAgeS * 1000 } };
    }
    return { valueW: slot.valueW, atMs: slot.atMs };
  }

  private onMessage(topic: string, payload: Buffer, packet: IPublishPacket): void {
    const slots = [this.grid, this.pv].filter((s): s is Slot => s !== undefined && s.source.topic === topic);
    if (slots.length === 0) return;
    if (packet.retain) {
      this.o.log?.(`${this.name}: retained message on ${topic} ignored (its age is unknown)`);
      return;
    }
    this.messages++;
    const now = this.o.clock.nowMs();
    for (const slot of slots) {
      const r = readNumber(payload, slot.path);
      if ('error' in r) {
        // garbage withdraws the figure: the last good one is not current any more
        if (slot.fault?.message !== `${this.name}: ${topic}: ${r.error}`) this.o.log?.(`${this.name}: ${topic}: ${r.error}`);
        slot.fault = { code: 'garbage', message: `${this.name}: ${topic}: ${r.error}`, sinceMs: slot.fault?.code === 'garbage' ? slot.fault.sinceMs : now };
        slot.valueW = undefined;
        slot.atMs = undefined;
        continue;
      }
      let w = this.o.unit === 'kW' ? r.value * 1000 : r.value;
      if (slot === this.grid && this.o.invertSign) w = -w;
      if (slot === this.grid && this.currentPaths.length > 0) {
        const currents = this.currentPaths.map((p) => readNumber(payload, p));
        slot.currentsA = currents.every((c): c is { value: number } => 'value' in c) ? currents.map((c) => Math.abs(c.value)) : undefined;
      }
      slot.valueW = w;
      slot.atMs = now;
      slot.fault = undefined;
    }
  }
}

