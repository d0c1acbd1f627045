/**
 * The MQTT uplink to the aggregator (contract §1): connection with fallback and backoff, birth and last
 * will, the durable outbox drain, and dispatch intake. It decides nothing about the car: valid commands go
 * to `onCommand`, invalid ones are answered here and never reach the core.
 *
 * Delivery rule: a QoS 1 message is in the outbox before its first send and leaves it only on PUBACK, so
 * a broker outage or a crash can repeat a message (same seq) but never lose one. The aggregator
 * de-duplicates by `seq`.
 */
import { readFileSync } from 'node:fs';
import type { KeyObject } from 'node:crypto';
import mqtt, { type IClientOptions, type IClientPublishOptions, type IPublishPacket, type MqttClient } from 'mqtt';
import { isoUtc, type OutboundMessage, type OutboxStore, type QueuedMessage } from '../contract.ts';
import type { DispatchCommand, ReplyRoute } from '../control/types.ts';
import { parseDispatchPayload, type CodecReason } from './codec.ts';
import { loadPublicKey, ReplayGuard } from './signing.ts';
import { uplinkSettings, type UplinkSection, type UplinkSettings } from './settings.ts';

/** pino-compatible: `log.warn({ err }, 'message')`. */
export interface UplinkLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface InvalidDispatch {
  topic: string;
  source: string;
  id: string | null;
  reason: CodecReason;
  field?: string;
  message: string;
  /** False when the answer was dropped by the rate limit on invalid answers. */
  answered: boolean;
}

export interface UplinkOptions {
  config: { deviceId: string; uplink: UplinkSection };
  outbox: OutboxStore;
  /** Only `nowMs` is used: message times follow the runtime's clock, network timers run in real time. */
  clock: { nowMs(): number };
  log?: UplinkLog;
  /** A valid dispatch or cancel. Called synchronously from the MQTT message handler; must not block. */
  onCommand: (cmd: DispatchCommand) => void;
  /** An invalid payload, after it has been answered (or its answer dropped). */
  onInvalid?: (info: InvalidDispatch) => void;
  /** Software version for the birth message. */
  version?: string;
  /** QoS 1 messages sent and not yet acknowledged, at most (Mosquitto's default receive maximum is 20). */
  maxInFlight?: number;
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
  /** Rejections of invalid payloads answered per second, sustained, and in a burst. */
  invalidAnswersPerS?: number;
  invalidAnswersBurst?: number;
}

export interface UplinkStats {
  connected: boolean;
  /** 5 or 4 (3.1.1) for the current or last connection; undefined before the first. */
  protocolVersion?: 4 | 5;
  connectAttempts: number;
  connects: number;
  disconnects: number;
  /** QoS 1 sends (first sends and resends). */
  sent: number;
  acked: number;
  inFlight: number;
  outboxRows: number;
  qos0Sent: number;
  /** QoS 0 messages (state) not sent because the broker was unreachable. */
  qos0Dropped: number;
  received: number;
  commands: number;
  invalid: number;
  invalidDropped: number;
  /** Outbound messages refused before the outbox (bad topic) or lost to an outbox error. */
  publishErrors: number;
  lastError?: string;
}

export interface Uplink {
  /** `<prefix>/<deviceId>`. */
  readonly root: string;
  /** Starts connecting in the background; resolves at once, whether or not the broker is reachable. */
  start(): Promise<void>;
  /** Stamp, persist (QoS 1) and send. Never throws. */
  publish(msgs: OutboundMessage[]): void;
  /**
   * Send whatever is pending in the outbox. For rows written there by someone else (the store's settlement
   * transaction); the uplink also looks once a second on its own.
   */
  drain(): void;
  connected(): boolean;
  /**
   * Apply a reloaded `uplink` section to the running uplink: groups are re-subscribed, the dispatch key
   * and payload limits take effect at once, connection settings (url, TLS, credentials, keepalive,
   * session) by reconnecting. `prefix` and a change to or from `"embedded"` need a restart. Never throws.
   */
  reconfigure(section: UplinkSection): { applied: string[]; restartNeeded: string[] };
  /** Retained `status` offline, then a clean DISCONNECT (so the broker does not send the last will). */
  stop(): Promise<void>;
  stats(): UplinkStats;
}

const UNSUPPORTED_PROTOCOL = new Set([1, 132]);
const FALLBACK_NOTE = 'broker refused MQTT 5; using 3.1.1';

export function createUplink(opts: UplinkOptions): Uplink {
  return new MqttUplink(opts);
}

const consoleLog: UplinkLog = {
  info: () => {},
  warn: (o, m) => console.warn(`uplink: ${m}`, o),
  error: (o, m) => console.error(`uplink: ${m}`, o),
};

/** A topic the device may publish to: no wildcards, no NUL, not empty, not a `$` system topic. */
export function isPublishableTopic(t: unknown): t is string {
  return typeof t === 'string' && t.length > 0 && t.length <= 1024 && !/[+#\u0000]/.test(t) && !t.startsWith('$');
}

interface Flight {
  row: QueuedMessage;
  /** PUBACKs still awaited (the own topic, and the MQTT 5 response topic when there is one). */
  waiting: number;
  failed: boolean;
}

class MqttUplink implements Uplink {
  readonly root: string;
  private s: UplinkSettings;
  private readonly log: UplinkLog;
  private readonly maxInFlight: number;
  private readonly reconnectMinMs: number;
  private readonly reconnectMaxMs: number;
  private readonly sources = new Map<string, string>();
  private readonly replay = new ReplayGuard();
  private publicKey: KeyObject | undefined;
  private url: string | null;
  private embedded: { close(): Promise<void> } | undefined;
  private startedAt = '';

  private client: MqttClient | undefined;
  private generation = 0;
  private isConnected = false;
  private protocolVersion: 4 | 5 = 5;
  private fallbackTo311 = false;
  private attemptStartedMs = 0;
  private connectedSinceMs = 0;
  private failures = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private watchdogTimer: NodeJS.Timeout | undefined;
  private supervisor: NodeJS.Timeout | undefined;
  private started = false;
  private stopping = false;

  private readonly inFlight = new Map<number, Flight>();
  /** Rows the broker refused on this connection; retried after the next reconnect. */
  private readonly refused = new Set<number>();
  private lastSentSeq = -Infinity;
  private pumpQueued = false;

  private tokens: number;
  private tokensAtMs = 0;
  private readonly tokenRatePerS: number;
  private readonly tokenBurst: number;

  private readonly st: UplinkStats = {
    connected: false, connectAttempts: 0, connects: 0, disconnects: 0, sent: 0, acked: 0, inFlight: 0, outboxRows: 0,
    qos0Sent: 0, qos0Dropped: 0, received: 0, commands: 0, invalid: 0, invalidDropped: 0, publishErrors: 0,
  };

  constructor(private readonly o: UplinkOptions) {
    this.s = uplinkSettings(o.config.uplink);
    this.log = o.log ?? consoleLog;
    this.root = `${this.s.prefix}/${o.config.deviceId}`;
    this.url = this.s.url;
    this.maxInFlight = Math.max(1, o.maxInFlight ?? 20);
    this.reconnectMinMs = o.reconnectMinMs ?? 1000;
    this.reconnectMaxMs = Math.max(this.reconnectMinMs, o.reconnectMaxMs ?? 60_000);
    this.tokenRatePerS = o.invalidAnswersPerS ?? 20;
    this.tokenBurst = o.invalidAnswersBurst ?? 200;
    this.tokens = this.tokenBurst;
    this.sources.set(`${this.root}/dispatch`, 'device');
    for (const g of this.s.groups) this.sources.set(`${this.s.prefix}/group/${g}/dispatch`, `group:${g}`);
  }

  // ---------------------------------------------------------------------------------------------
  // lifecycle

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    this.stopping = false;
    this.startedAt = isoUtc(this.o.clock.nowMs());
    this.url = this.s.url;
    if (this.s.dispatchPublicKey) {
      try {
        this.publicKey = loadPublicKey(this.s.dispatchPublicKey);
      } catch (e) {
        // without its key the device cannot tell a genuine dispatch from a forged one: it refuses them all
        this.publicKey = undefined;
        this.st.lastError = (e as Error).message;
        this.log.error({ err: (e as Error).message }, 'signed dispatch is configured but the key is unusable; every dispatch will be rejected');
      }
    }
    if (this.url === 'embedded') {
      const port = this.s.embeddedPort;
      try {
        const { startEmbeddedBroker } = await import('./embedded-broker.ts');
        this.embedded = await startEmbeddedBroker(port, '127.0.0.1');
        this.log.info({ port }, `embedded MQTT broker on 127.0.0.1:${port}`);
      } catch (e) {
        this.log.warn({ err: (e as Error).message, port }, 'embedded broker did not start; connecting to whatever listens there');
      }
      this.url = `mqtt://127.0.0.1:${port}`;
    }
    if (!this.url) {
      this.log.info({}, 'uplink.url is null: no aggregator connection; messages stay in the outbox');
      return;
    }
    this.supervisor = setInterval(() => this.supervise(), 1000);
    this.supervisor.unref();
    this.attempt();
  }

  async stop(): Promise<void> {
    if (!this.started || this.stopping) return;
    this.stopping = true;
    clearInterval(this.supervisor);
    clearTimeout(this.retryTimer);
    clearTimeout(this.watchdogTimer);
    this.retryTimer = undefined;
    const client = this.client;
    if (client && this.isConnected) {
      const off = this.stampStatus(false);
      await withTimeout(
        new Promise<void>((resolve) => client.publish(`${this.root}/status`, off, { qos: 1, retain: true }, () => resolve())),
        2000,
      );
      await withTimeout(new Promise<void>((resolve) => client.end(false, {}, () => resolve())), 2000);
    }
    this.teardown();
    this.isConnected = false;
    this.st.connected = false;
    if (this.embedded) {
      await withTimeout(this.embedded.close(), 2000);
      this.embedded = undefined;
    }
    this.started = false;
  }

  connected(): boolean {
    return this.isConnected;
  }

  drain(): void {
    this.pump();
  }

  reconfigure(section: UplinkSection): { applied: string[]; restartNeeded: string[] } {
    const applied: string[] = [];
    const restartNeeded: string[] = [];
    try {
      const next = uplinkSettings(section);
      const prev = this.s;
      const differs = (k: keyof UplinkSettings) => JSON.stringify(prev[k]) !== JSON.stringify(next[k]);
      if (differs('prefix')) restartNeeded.push('prefix');
      if (differs('url') && (prev.url === 'embedded' || next.url === 'embedded' || prev.url === null || next.url === null)) restartNeeded.push('url');
      if (differs('embeddedPort') && prev.url === 'embedded') restartNeeded.push('embeddedPort');
      const keep = { prefix: prev.prefix, url: restartNeeded.includes('url') ? prev.url : next.url, embeddedPort: prev.embeddedPort };
      this.s = { ...next, ...keep };
      for (const k of ['maxPayloadBytes', 'maxDispatchAgeS'] as const) if (differs(k)) applied.push(k);
      if (differs('dispatchPublicKey')) {
        this.publicKey = undefined;
        if (next.dispatchPublicKey) {
          try {
            this.publicKey = loadPublicKey(next.dispatchPublicKey);
          } catch (e) {
            this.st.lastError = (e as Error).message;
            this.log.error({ err: (e as Error).message }, 'new dispatch key unusable; every dispatch will be rejected');
          }
        }
        applied.push('dispatchPublicKey');
      }
      if (differs('groups')) {
        this.resubscribeGroups(prev.groups, next.groups);
        applied.push('groups');
      }
      const connectionKeys = (['url', 'tls', 'username', 'passwordFile', 'keepaliveS', 'connectTimeoutS', 'sessionExpiryS', 'willDelayS'] as const).filter(
        (k) => differs(k) && !restartNeeded.includes(k),
      );
      if (connectionKeys.length) {
        applied.push(...connectionKeys);
        if (this.url !== 'embedded' && this.s.url !== null) this.url = this.s.url;
        if (this.started && !this.stopping) {
          this.failures = 0;
          this.fallbackTo311 = false;
          this.reconnectCleanly();
        }
      }
    } catch (e) {
      this.log.error({ err: (e as Error).message }, 'uplink reconfiguration failed; previous settings kept');
    }
    return { applied, restartNeeded };
  }

  /**
   * DISCONNECT normally, then connect again with the current settings: the broker keeps the session and
   * sends no last will. The next attempt waits for the old connection to close so it is no takeover.
   */
  private reconnectCleanly(): void {
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const c = this.client;
    if (!c || !this.isConnected) {
      this.scheduleRetry(0);
      return;
    }
    this.client = undefined;
    this.generation++;
    this.onDisconnected();
    c.removeAllListeners();
    c.on('error', () => {});
    let done = false;
    const next = () => {
      if (done) return;
      done = true;
      if (!this.stopping) this.scheduleRetry(0);
    };
    try {
      c.end(false, {}, next);
    } catch {
      next();
    }
    setTimeout(next, 2000).unref();
  }

  private resubscribeGroups(before: string[], after: string[]): void {
    const topic = (g: string) => `${this.s.prefix}/group/${g}/dispatch`;
    const removed = before.filter((g) => !after.includes(g)).map(topic);
    const added = after.filter((g) => !before.includes(g));
    for (const t of removed) this.sources.delete(t);
    for (const g of added) this.sources.set(topic(g), `group:${g}`);
    const client = this.client;
    if (!client || !this.isConnected) return;
    if (removed.length) client.unsubscribe(removed, (err) => err && this.fail(`unsubscribe: ${err.message}`));
    if (added.length) client.subscribe(added.map(topic), { qos: 1 }, (err) => err && this.fail(`subscribe: ${err.message}`));
  }

  stats(): UplinkStats {
    let rows = this.st.outboxRows;
    try {
      rows = this.o.outbox.size();
    } catch {
      // keep the last known figure
    }
    return { ...this.st, connected: this.isConnected, inFlight: this.inFlight.size, outboxRows: rows, protocolVersion: this.st.protocolVersion };
  }

  // ---------------------------------------------------------------------------------------------
  // connection

  private options(): IClientOptions {
    const s = this.s;
    const v: 4 | 5 = this.fallbackTo311 ? 4 : 5;
    const will = { topic: `${this.root}/status`, payload: Buffer.from('{"online":false}'), qos: 1 as const, retain: true } as NonNullable<IClientOptions['will']>;
    if (v === 5 && s.willDelayS > 0) will.properties = { willDelayInterval: s.willDelayS };
    const o: IClientOptions = {
      protocolVersion: v,
      clientId: this.o.config.deviceId,
      // a persistent session keeps our subscriptions and queues QoS 1 dispatches while we are away
      clean: false,
      keepalive: s.keepaliveS,
      connectTimeout: s.connectTimeoutS * 1000,
      // reconnection is ours (jittered backoff and a watchdog); mqtt.js's own would race it
      reconnectPeriod: 0,
      resubscribe: false,
      queueQoSZero: false,
      will,
    };
    if (v === 5) o.properties = { sessionExpiryInterval: s.sessionExpiryS };
    if (s.username) o.username = s.username;
    // files are read on every attempt so a rotated certificate or password takes effect on reconnect
    if (s.passwordFile) o.password = readFileSync(s.passwordFile, 'utf8').replace(/\r?\n$/, '');
    if (s.tls) {
      if (s.tls.ca) o.ca = readFileSync(s.tls.ca);
      if (s.tls.cert) o.cert = readFileSync(s.tls.cert);
      if (s.tls.key) o.key = readFileSync(s.tls.key);
      o.rejectUnauthorized = s.tls.rejectUnauthorized;
    } else o.rejectUnauthorized = true;
    return o;
  }

  private attempt(): void {
    if (this.stopping || !this.url) return;
    this.retryTimer = undefined;
    this.teardown();
    const gen = ++this.generation;
    this.st.connectAttempts++;
    this.attemptStartedMs = Date.now();
    let opts: IClientOptions;
    try {
      opts = this.options();
    } catch (e) {
      this.fail(`cannot prepare the connection: ${(e as Error).message}`);
      this.scheduleRetry();
      return;
    }
    const v = opts.protocolVersion as 4 | 5;
    let client: MqttClient;
    try {
      client = mqtt.connect(this.url, opts);
    } catch (e) {
      this.fail(`cannot connect to ${this.url}: ${(e as Error).message}`);
      this.scheduleRetry();
      return;
    }
    this.client = client;
    // dispatches and their answers are small packets: without this, Nagle's algorithm meeting the peer's
    // delayed ACK holds each one back for tens of milliseconds
    (client.stream as { setNoDelay?: (on: boolean) => void } | undefined)?.setNoDelay?.(true);
    // the connect watchdog: whatever state mqtt.js or the socket gets stuck in, this attempt ends
    this.watchdogTimer = setTimeout(() => {
      if (gen !== this.generation || this.isConnected) return;
      this.fail(`no CONNACK within ${this.s.connectTimeoutS} s`);
      this.scheduleRetry();
    }, this.s.connectTimeoutS * 1000 + 1000);
    this.watchdogTimer.unref();

    client.on('connect', (connack) => {
      if (gen !== this.generation) return;
      this.onConnected(client, v, connack.sessionPresent);
    });
    client.on('message', (topic, payload, packet) => {
      if (gen !== this.generation) return;
      this.onMessage(topic, payload, packet);
    });
    client.on('error', (e: Error & { code?: unknown }) => {
      if (gen !== this.generation) return;
      if (v === 5 && typeof e.code === 'number' && UNSUPPORTED_PROTOCOL.has(e.code)) {
        this.fallbackTo311 = true;
        this.log.warn({ code: e.code }, FALLBACK_NOTE);
        this.failures = 0;
        this.scheduleRetry(0);
        return;
      }
      this.fail(e.message);
    });
    client.on('close', () => {
      if (gen !== this.generation) return;
      if (this.isConnected) this.onDisconnected();
      if (!this.stopping) this.scheduleRetry();
    });
  }

  private onConnected(client: MqttClient, v: 4 | 5, sessionPresent: boolean): void {
    clearTimeout(this.watchdogTimer);
    this.isConnected = true;
    this.st.connected = true;
    this.protocolVersion = v;
    this.st.protocolVersion = v;
    this.st.connects++;
    this.connectedSinceMs = Date.now();
    this.inFlight.clear();
    this.refused.clear();
    this.lastSentSeq = -Infinity;
    this.log.info({ url: this.url, protocolVersion: v, sessionPresent }, 'connected');
    // birth first, so a subscriber sees online before anything else from this connection
    client.publish(`${this.root}/status`, this.stampStatus(true), { qos: 1, retain: true }, (err) => {
      if (err) this.fail(`birth message: ${err.message}`);
    });
    const subs: Record<string, { qos: 1 }> = {};
    for (const t of this.sources.keys()) subs[t] = { qos: 1 };
    client.subscribe(subs, (err, granted) => {
      if (err) return this.fail(`subscribe: ${err.message}`);
      const refused = (granted ?? []).filter((g) => g.qos === 128 || (g as { reasonCode?: number }).reasonCode === 128);
      if (refused.length) this.log.error({ topics: refused.map((g) => g.topic) }, 'broker refused a dispatch subscription');
    });
    this.pump();
  }

  private onDisconnected(): void {
    this.isConnected = false;
    this.st.connected = false;
    this.st.disconnects++;
    this.inFlight.clear();
    // a connection that held for a while was good: start the backoff over
    if (Date.now() - this.connectedSinceMs > 30_000) this.failures = 0;
    this.log.warn({ url: this.url }, 'disconnected from the broker');
  }

  private fail(message: string): void {
    this.st.lastError = message;
    this.log.warn({ err: message }, 'uplink connection problem');
  }

  /** Jittered exponential backoff: a random delay in [base/2, base], base doubling from min to max. */
  private scheduleRetry(delayMs?: number): void {
    if (this.stopping || this.retryTimer) return;
    if (this.isConnected) this.onDisconnected();
    this.teardown();
    let d = delayMs;
    if (d === undefined) {
      const base = Math.min(this.reconnectMaxMs, this.reconnectMinMs * 2 ** Math.min(this.failures, 30));
      d = base / 2 + Math.random() * (base / 2);
      this.failures++;
    }
    this.retryTimer = setTimeout(() => this.attempt(), d);
    this.retryTimer.unref();
  }

  /**
   * Once a second: drain rows others wrote to the outbox; and whatever happened, an unconnected uplink
   * always has an attempt or a retry under way.
   */
  private supervise(): void {
    if (this.isConnected) return this.pump();
    if (this.stopping || this.retryTimer) return;
    const stuckMs = Date.now() - this.attemptStartedMs;
    if (!this.client || stuckMs > (this.s.connectTimeoutS + 5) * 1000) {
      this.fail('connection attempt stuck; starting over');
      this.scheduleRetry();
    }
  }

  private teardown(): void {
    clearTimeout(this.watchdogTimer);
    const c = this.client;
    this.client = undefined;
    if (!c) return;
    this.generation++;
    c.removeAllListeners();
    // mqtt.js may still emit an error while closing; an unhandled 'error' event would end the process
    c.on('error', () => {});
    try {
      c.end(true);
    } catch {
      // already closed
    }
  }

  private stampStatus(online: boolean): Buffer {
    const payload: Record<string, unknown> = online ? { online: true, version: this.o.version ?? 'unknown', startedAt: this.startedAt } : { online: false };
    try {
      // stamped through the outbox for ts and seq; status is sent at once and never stored (QoS 0 there)
      const [q] = this.o.outbox.enqueue([{ topic: 'status', payload, qos: 0, retain: true, class: 'status' }], this.o.clock.nowMs());
      return Buffer.from(JSON.stringify({ ts: q.ts, seq: q.seq, ...payload }));
    } catch (e) {
      this.st.publishErrors++;
      this.log.error({ err: (e as Error).message }, 'could not stamp the status message');
      return Buffer.from(JSON.stringify({ ts: isoUtc(this.o.clock.nowMs()), ...payload }));
    }
  }

  // ---------------------------------------------------------------------------------------------
  // outbound

  publish(msgs: OutboundMessage[]): void {
    try {
      if (!Array.isArray(msgs) || msgs.length === 0) return;
      const ok = msgs.filter((m) => {
        const good = m && isPublishableTopic(m.topic) && (m.responseTopic === undefined || isPublishableTopic(m.responseTopic));
        if (!good) {
          this.st.publishErrors++;
          this.log.error({ topic: m?.topic, responseTopic: m?.responseTopic }, 'refused an outbound message with an invalid topic');
        }
        return good;
      });
      if (ok.length === 0) return;
      const queued = this.o.outbox.enqueue(ok, this.o.clock.nowMs());
      let qos1 = false;
      for (const q of queued) {
        if (q.qos === 1) qos1 = true;
        else if (this.isConnected && this.client && !this.stopping) {
          this.send(this.client, q, undefined);
          this.st.qos0Sent++;
        } else this.st.qos0Dropped++;
      }
      if (qos1) this.pump();
    } catch (e) {
      this.st.publishErrors++;
      this.log.error({ err: (e as Error).message }, 'outbound messages not queued');
    }
  }

  private schedulePump(): void {
    if (this.pumpQueued) return;
    this.pumpQueued = true;
    // acks arrive in bursts: one outbox read per burst, not one per ack
    setImmediate(() => {
      this.pumpQueued = false;
      this.pump();
    });
  }

  /** Send pending outbox rows in seq order, keeping at most `maxInFlight` unacknowledged. */
  private pump(): void {
    try {
      const client = this.client;
      if (!client || !this.isConnected || this.stopping) return;
      const free = this.maxInFlight - this.inFlight.size;
      if (free <= 0) return;
      const rows = this.o.outbox.pending(this.inFlight.size + this.refused.size + free);
      let sent = 0;
      for (const row of rows) {
        if (sent >= free) break;
        if (row.rowId === undefined || row.seq <= this.lastSentSeq || this.inFlight.has(row.rowId) || this.refused.has(row.rowId)) continue;
        this.lastSentSeq = row.seq;
        this.send(client, row, row.rowId);
        sent++;
      }
    } catch (e) {
      this.st.publishErrors++;
      this.log.error({ err: (e as Error).message }, 'outbox drain failed; retrying on the next message or reconnect');
    }
  }

  private send(client: MqttClient, m: QueuedMessage, rowId: number | undefined): void {
    const body = Buffer.from(JSON.stringify({ ts: m.ts, seq: m.seq, ...m.payload }));
    const topic = m.absoluteTopic ? m.topic : `${this.root}/${m.topic}`;
    const gen = this.generation;
    const targets: [string, IClientPublishOptions][] = [[topic, { qos: m.qos, retain: m.retain }]];
    if (m.responseTopic) {
      const o: IClientPublishOptions = { qos: m.qos, retain: false };
      if (this.protocolVersion === 5 && m.correlationData) o.properties = { correlationData: Buffer.from(m.correlationData, 'base64') };
      targets.push([m.responseTopic, o]);
    }
    if (rowId === undefined) {
      for (const [t, o] of targets) client.publish(t, body, o);
      return;
    }
    const flight: Flight = { row: m, waiting: targets.length, failed: false };
    this.inFlight.set(rowId, flight);
    this.st.sent++;
    for (const [t, o] of targets)
      client.publish(t, body, o, (err) => {
        try {
          this.onPublished(rowId, flight, gen, err);
        } catch (e) {
          this.log.error({ err: (e as Error).message }, 'outbox acknowledgement failed');
        }
      });
  }

  private onPublished(rowId: number, flight: Flight, gen: number, err: Error | undefined): void {
    if (err) flight.failed = true;
    if (--flight.waiting > 0) return;
    const current = this.inFlight.get(rowId) === flight && gen === this.generation;
    if (!flight.failed) {
      // the broker has it: even if the connection since dropped, the row must not be sent again
      this.o.outbox.ack(rowId);
      this.st.acked++;
    } else if (current && this.isConnected) {
      // refused while connected (not authorized, quota): kept, and retried after the next reconnect
      this.refused.add(rowId);
      this.log.error({ seq: flight.row.seq, topic: flight.row.topic, err: err?.message }, 'broker refused a message');
    }
    if (current) {
      this.inFlight.delete(rowId);
      this.schedulePump();
    }
  }

  // ---------------------------------------------------------------------------------------------
  // inbound

  private onMessage(topic: string, payload: Buffer, packet: IPublishPacket): void {
    try {
      this.st.received++;
      const source = this.sources.get(topic);
      if (!source) return;
      const replyTo = this.replyRoute(packet);
      const r = parseDispatchPayload(payload, {
        nowMs: this.o.clock.nowMs(),
        source,
        maxBytes: this.s.maxPayloadBytes,
        publicKey: this.publicKey,
        maxAgeS: this.s.maxDispatchAgeS,
        replay: this.replay,
        replyTo,
      });
      if (this.s.dispatchPublicKey && !this.publicKey) {
        // configured for signed dispatch but without a usable key: nothing may pass, signed or not
        const id = r.ok ? (r.command.kind === 'cancel' ? r.command.id : r.command.request.id) : r.id;
        this.answerInvalid(topic, source, { id, reason: 'signature', field: 'sig', message: 'device has no usable dispatch key' }, replyTo);
        return;
      }
      if (!r.ok) {
        this.answerInvalid(topic, source, r, replyTo);
        return;
      }
      this.st.commands++;
      this.o.onCommand(r.command);
    } catch (e) {
      this.log.error({ err: (e as Error).message, topic }, 'dispatch handler failed');
    }
  }

  private replyRoute(packet: IPublishPacket): ReplyRoute | undefined {
    const p = packet.properties;
    if (!p?.responseTopic) return undefined;
    if (!isPublishableTopic(p.responseTopic)) {
      this.log.warn({ responseTopic: String(p.responseTopic).slice(0, 80) }, 'ignored an unusable MQTT 5 response topic');
      return undefined;
    }
    const route: ReplyRoute = { responseTopic: p.responseTopic };
    const cd = p.correlationData as Buffer | undefined;
    if (cd && cd.length > 0) route.correlationData = Buffer.from(cd).toString('base64');
    return route;
  }

  /** Answer an invalid payload ourselves, through the outbox; rate-limited so a flood cannot fill it. */
  private answerInvalid(topic: string, source: string, r: { id: string | null; reason: CodecReason; field?: string; message: string }, replyTo: ReplyRoute | undefined): void {
    this.st.invalid++;
    const now = this.o.clock.nowMs();
    this.tokens = Math.min(this.tokenBurst, this.tokens + (Math.max(0, now - this.tokensAtMs) / 1000) * this.tokenRatePerS);
    this.tokensAtMs = now;
    const answered = this.tokens >= 1;
    if (answered) {
      this.tokens -= 1;
      const payload: Record<string, unknown> = { id: r.id, status: 'rejected', reason: r.reason };
      if (r.field !== undefined) payload.field = r.field;
      payload.message = r.message;
      const m: OutboundMessage = { topic: 'dispatch/response', payload, qos: 1, retain: false, class: 'response' };
      if (replyTo) {
        m.responseTopic = replyTo.responseTopic;
        if (replyTo.correlationData) m.correlationData = replyTo.correlationData;
      }
      this.publish([m]);
    } else {
      this.st.invalidDropped++;
      if (this.st.invalidDropped % 1000 === 1) this.log.warn({ dropped: this.st.invalidDropped }, 'invalid dispatch flood: answers dropped');
    }
    try {
      this.o.onInvalid?.({ topic, source, id: r.id, reason: r.reason, field: r.field, message: r.message, answered });
    } catch (e) {
      this.log.error({ err: (e as Error).message }, 'onInvalid handler failed');
    }
  }
}

async function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let t: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    t = setTimeout(() => resolve(undefined), ms);
  });
  try {
    return await Promise.race([p.catch(() => undefined), timeout]);
  } finally {
    clearTimeout(t);
  }
}
