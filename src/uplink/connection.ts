/**
 * The connection supervisor: one MQTT connection to the aggregator's broker, with MQTT 5 falling back
 * to 3.1.1, jittered exponential backoff, a connect watchdog and a supervisor that makes sure an
 * unconnected uplink always has an attempt or a retry under way. Timers come from the injected
 * `UplinkTimer`; it decides nothing about messages (the pump and the intake do).
 */
import { readFileSync } from 'node:fs';
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt';
import type { UplinkSettings } from './settings.ts';
import type { UplinkTimer } from './timer.ts';
import type { UplinkLog, UplinkStats } from './client.ts';

const UNSUPPORTED_PROTOCOL = new Set([1, 132]);
const FALLBACK_NOTE = 'broker refused MQTT 5; using 3.1.1';

export interface ConnectionEvents {
  connected(client: MqttClient, protocolVersion: 4 | 5, sessionPresent: boolean, generation: number): void;
  disconnected(): void;
  message(topic: string, payload: Buffer, packet: IPublishPacket): void;
  /** Once a second (supervisor tick) while connected. */
  tick?(): void;
}

export interface ConnectionOptions {
  deviceId: string;
  root: string;
  settings: () => UplinkSettings;
  timer: UplinkTimer;
  log: UplinkLog;
  stats: UplinkStats;
  events: ConnectionEvents;
  reconnectMinMs: number;
  reconnectMaxMs: number;
  /** Random in [0, 1) for the backoff jitter (injected for tests). */
  random?: () => number;
}

export class ConnectionSupervisor {
  url: string | null = null;
  private client: MqttClient | undefined;
  private gen = 0;
  private connectedNow = false;
  private version: 4 | 5 = 5;
  private fallbackTo311 = false;
  private attemptStartedMs = 0;
  private connectedSinceMs = 0;
  private failures = 0;
  private retryTimer: unknown;
  private watchdogTimer: unknown;
  private supervisorTimer: unknown;
  private stopping = true;

  constructor(private readonly o: ConnectionOptions) {}

  get connected(): boolean {
    return this.connectedNow;
  }

  get generation(): number {
    return this.gen;
  }

  get protocolVersion(): 4 | 5 {
    return this.version;
  }

  /** The client of the current connection, when connected. */
  current(): MqttClient | undefined {
    return this.connectedNow ? this.client : undefined;
  }

  /**
   * Connect and keep connected. `mqtt311`: start with MQTT 3.1.1 (the embedded broker speaks only that, so
   * trying 5 first would log a protocol fall-back on every start); otherwise 5 first, 3.1.1 if refused.
   */
  start(url: string, opts: { mqtt311?: boolean } = {}): void {
    this.url = url;
    if (opts.mqtt311) this.fallbackTo311 = true;
    this.stopping = false;
    this.armSupervisor();
    this.attempt();
  }

  /** Stops retrying; the caller ends the client (after its offline message) and then calls `teardown`. */
  stopping_(): void {
    this.stopping = true;
    this.o.timer.clearTimer(this.supervisorTimer);
    this.o.timer.clearTimer(this.retryTimer);
    this.o.timer.clearTimer(this.watchdogTimer);
    this.supervisorTimer = undefined;
    this.retryTimer = undefined;
  }

  /** Drops the connection for good (after `stopping_`). */
  close(): void {
    this.teardown();
    this.connectedNow = false;
    this.o.stats.connected = false;
  }

  /** Start the backoff over and forget a 3.1.1 fallback (new connection settings). */
  resetBackoff(): void {
    this.failures = 0;
    this.fallbackTo311 = false;
  }

  private armSupervisor(): void {
    this.supervisorTimer = this.o.timer.setTimer(() => {
      if (this.stopping) return;
      this.supervise();
      this.armSupervisor();
    }, 1000);
  }

  private options(): IClientOptions {
    const s = this.o.settings();
    const v: 4 | 5 = this.fallbackTo311 ? 4 : 5;
    const will = { topic: `${this.o.root}/status`, payload: Buffer.from('{"online":false}'), qos: 1 as const, retain: true } as NonNullable<IClientOptions['will']>;
    if (v === 5 && s.willDelayS > 0) will.properties = { willDelayInterval: s.willDelayS };
    const o: IClientOptions = {
      protocolVersion: v,
      clientId: this.o.deviceId,
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
    const gen = ++this.gen;
    this.o.stats.connectAttempts++;
    this.attemptStartedMs = this.o.timer.nowMs();
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
    const timeoutS = this.o.settings().connectTimeoutS;
    this.watchdogTimer = this.o.timer.setTimer(() => {
      if (gen !== this.gen || this.connectedNow) return;
      this.fail(`no CONNACK within ${timeoutS} s`);
      this.scheduleRetry();
    }, timeoutS * 1000 + 1000);

    client.on('connect', (connack) => {
      if (gen !== this.gen) return;
      this.onConnected(client, v, connack.sessionPresent, gen);
    });
    client.on('message', (topic, payload, packet) => {
      if (gen !== this.gen) return;
      this.o.events.message(topic, payload, packet);
    });
    client.on('error', (e: Error & { code?: unknown }) => {
      if (gen !== this.gen) return;
      if (v === 5 && typeof e.code === 'number' && UNSUPPORTED_PROTOCOL.has(e.code)) {
        this.fallbackTo311 = true;
        this.o.log.warn({ code: e.code }, FALLBACK_NOTE);
        this.failures = 0;
        this.scheduleRetry(0);
        return;
      }
      this.fail(e.message);
    });
    client.on('close', () => {
      if (gen !== this.gen) return;
      if (this.connectedNow) this.onDisconnected();
      if (!this.stopping) this.scheduleRetry();
    });
  }

  private onConnected(client: MqttClient, v: 4 | 5, sessionPresent: boolean, gen: number): void {
    this.o.timer.clearTimer(this.watchdogTimer);
    this.connectedNow = true;
    this.o.stats.connected = true;
    this.version = v;
    this.o.stats.protocolVersion = v;
    this.o.stats.connects++;
    this.connectedSinceMs = this.o.timer.nowMs();
    this.o.log.info({ url: this.url, protocolVersion: v, sessionPresent }, 'connected');
    this.o.events.connected(client, v, sessionPresent, gen);
  }

  private onDisconnected(): void {
    this.connectedNow = false;
    this.o.stats.connected = false;
    this.o.stats.disconnects++;
    // a connection that held for a while was good: start the backoff over
    if (this.o.timer.nowMs() - this.connectedSinceMs > 30_000) this.failures = 0;
    this.o.log.warn({ url: this.url }, 'disconnected from the broker');
    this.o.events.disconnected();
  }

  fail(message: string): void {
    this.o.stats.lastError = message;
    this.o.log.warn({ err: message }, 'uplink connection problem');
  }

  /** Jittered exponential backoff: a random delay in [base/2, base], base doubling from min to max. */
  scheduleRetry(delayMs?: number): void {
    if (this.stopping || this.retryTimer !== undefined) return;
    if (this.connectedNow) this.onDisconnected();
    this.teardown();
    let d = delayMs;
    if (d === undefined) {
      const base = Math.min(this.o.reconnectMaxMs, this.o.reconnectMinMs * 2 ** Math.min(this.failures, 30));
      d = base / 2 + (this.o.random ?? Math.random)() * (base / 2);
      this.failures++;
    }
    this.retryTimer = this.o.timer.setTimer(() => this.attempt(), d);
  }

  /**
   * DISCONNECT normally, then connect again with the current settings: the broker keeps the session and
   * sends no last will. The next attempt waits for the old connection to close so it is no takeover.
   */
  reconnectCleanly(): void {
    this.o.timer.clearTimer(this.retryTimer);
    this.retryTimer = undefined;
    const c = this.client;
    if (!c || !this.connectedNow) {
      this.scheduleRetry(0);
      return;
    }
    this.client = undefined;
    this.gen++;
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
    this.o.timer.setTimer(next, 2000);
  }

  /**
   * Once a second: whatever happened, an unconnected uplink always has an attempt or a retry under way;
   * while connected, the owner's `tick` (drains an outbox that does not announce its writes).
   */
  private supervise(): void {
    if (this.connectedNow) return this.o.events.tick?.();
    if (this.stopping || this.retryTimer !== undefined) return;
    const stuckMs = this.o.timer.nowMs() - this.attemptStartedMs;
    if (!this.client || stuckMs > (this.o.settings().connectTimeoutS + 5) * 1000) {
      this.fail('connection attempt stuck; starting over');
      this.scheduleRetry();
    }
  }

  teardown(): void {
    this.o.timer.clearTimer(this.watchdogTimer);
    const c = this.client;
    this.client = undefined;
    if (!c) return;
    this.gen++;
    c.removeAllListeners();
    // mqtt.js may still emit an error while closing; an unhandled 'error' event would end the process
    c.on('error', () => {});
    try {
      c.end(true);
    } catch {
      // already closed
    }
  }

  /** The client of a live connection, to say goodbye on before `close` (stop). */
  liveClient(): MqttClient | undefined {
    return this.connectedNow ? this.client : undefined;
  }
}
