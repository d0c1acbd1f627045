/**
 * The MQTT uplink to the aggregator (contract §1), in three parts: the connection supervisor
 * (connection.ts: fallback, backoff, watchdog), the outbox pump (pump.ts) and dispatch intake
 * (intake.ts). This file puts them together: birth and offline status, publishing, reconfiguration. It
 * decides nothing about the car: valid commands go to `onCommand`, invalid ones are answered here and
 * never reach the core.
 *
 * Delivery rule: a QoS 1 message is in the outbox before its first send and leaves it only on PUBACK, so
 * a broker outage or a crash can repeat a message (same seq) but never lose one. The aggregator
 * de-duplicates by `seq`.
 */
import type { MqttClient } from 'mqtt';
import { isoUtc, type OutboundMessage, type OutboxStore, type QueuedMessage } from '../contract.ts';
import type { DispatchCommand } from '../control/types.ts';
import { ConnectionSupervisor } from './connection.ts';
import { DEFAULT_MAX_LIVE_DISPATCHES, DispatchIntake, isPublishableTopic, type IntakeReason } from './intake.ts';
import { OutboxPump, isNotifying } from './pump.ts';
import type { ReplayMemory } from './signing.ts';
import { uplinkSettings, type UplinkSection, type UplinkSettings } from './settings.ts';
import { realTimer, withTimeout, type UplinkTimer } from './timer.ts';

export { isPublishableTopic } from './intake.ts';

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
  reason: IntakeReason;
  field?: string;
  message: string;
  /** False when the answer was dropped by the rate limit on invalid answers. */
  answered: boolean;
}

export interface UplinkOptions {
  config: { deviceId: string; uplink: UplinkSection };
  outbox: OutboxStore;
  /** Message times (`ts`, signed-dispatch ages, dispatch windows): the runtime's wall clock. */
  clock: { wallMs(): number };
  /**
   * Reconnect backoff, connect watchdog and supervisor timers (the hal Clock's timer half). Default:
   * real time, timers that do not keep the process alive. Tests pass the virtual clock.
   */
  timer?: UplinkTimer;
  /**
   * Remembers signed dispatches per id and signature; give the store's `replay` (SQLite) so the guard
   * survives restarts. Default: in memory.
   */
  replay?: ReplayMemory;
  /** Live dispatches the device holds (scheduled or active, plus commands not yet taken in). */
  liveDispatches?: () => number;
  /** Bound on `liveDispatches()`; a new dispatch beyond it is answered `dispatch_limit` (default 100). */
  maxLiveDispatches?: number;
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
  /** Answers sent without being stored because the outbox could not write (a full or read-only disk). */
  unstored: number;
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
   * Send whatever is pending in the outbox. Rows written inside a transaction are sent only after it
   * commits; the SQLite outbox wakes the uplink itself then, so this is only needed for other outboxes.
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

export function createUplink(opts: UplinkOptions): Uplink {
  return new MqttUplink(opts);
}

const consoleLog: UplinkLog = {
  info: () => {},
  warn: (o, m) => console.warn(`uplink: ${m}`, o),
  error: (o, m) => console.error(`uplink: ${m}`, o),
};

/** What an outbox that can stamp without writing offers (the SQLite one), for answers while the disk is full. */
interface VolatileStamping {
  stampVolatile(msgs: OutboundMessage[], nowMs: number): QueuedMessage[];
}

class MqttUplink implements Uplink {
  readonly root: string;
  private s: UplinkSettings;
  private readonly log: UplinkLog;
  private readonly timer: UplinkTimer;
  private readonly conn: ConnectionSupervisor;
  private readonly pump: OutboxPump;
  private readonly intake: DispatchIntake;
  private embedded: { close(): Promise<void> } | undefined;
  private startedAt = '';
  private started = false;
  private stopping = false;

  private readonly st: UplinkStats = {
    connected: false, connectAttempts: 0, connects: 0, disconnects: 0, sent: 0, acked: 0, inFlight: 0, outboxRows: 0,
    qos0Sent: 0, qos0Dropped: 0, received: 0, commands: 0, invalid: 0, invalidDropped: 0, publishErrors: 0, unstored: 0,
  };

  constructor(private readonly o: UplinkOptions) {
    this.s = uplinkSettings(o.config.uplink);
    this.log = o.log ?? consoleLog;
    this.timer = o.timer ?? realTimer;
    this.root = `${this.s.prefix}/${o.config.deviceId}`;
    const reconnectMinMs = o.reconnectMinMs ?? 1000;
    this.pump = new OutboxPump({
      outbox: o.outbox, root: this.root, log: this.log, stats: this.st, maxInFlight: Math.max(1, o.maxInFlight ?? 20),
      stateExpiryS: () => Math.max(30, 3 * (Number(this.o.config.uplink.stateIntervalS) || 10)),
    });
    this.conn = new ConnectionSupervisor({
      deviceId: o.config.deviceId, root: this.root, settings: () => this.s, timer: this.timer, log: this.log, stats: this.st,
      reconnectMinMs, reconnectMaxMs: Math.max(reconnectMinMs, o.reconnectMaxMs ?? 60_000),
      events: {
        connected: (client, v, _sp, gen) => this.onConnected(client, v, gen),
        disconnected: () => this.pump.detach(),
        message: (topic, payload, packet) => this.intake.handle(topic, payload, packet),
        // an outbox that does not announce its commits is looked at once a second
        tick: () => {
          if (!this.pump.notified) this.pump.pump();
        },
      },
    });
    this.intake = new DispatchIntake({
      root: this.root, settings: () => this.s, nowMs: () => this.o.clock.wallMs(), monoMs: () => this.timer.nowMs(), log: this.log, stats: this.st,
      onCommand: o.onCommand, onInvalid: o.onInvalid, answer: (m) => this.publish([m]), replay: o.replay,
      invalidAnswersPerS: o.invalidAnswersPerS ?? 20, invalidAnswersBurst: o.invalidAnswersBurst ?? 200,
      liveDispatches: o.liveDispatches, maxLiveDispatches: o.maxLiveDispatches ?? DEFAULT_MAX_LIVE_DISPATCHES,
    });
  }

  // ---------------------------------------------------------------------------------------------
  // lifecycle

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    this.stopping = false;
    this.startedAt = isoUtc(this.o.clock.wallMs());
    let url = this.s.url;
    const keyError = this.intake.loadKey();
    if (keyError) {
      // without its key the device cannot tell a genuine dispatch from a forged one: it refuses them all
      this.st.lastError = keyError;
      this.log.error({ err: keyError }, 'signed dispatch is configured but the key is unusable; every dispatch will be rejected');
    }
    let mqtt311 = false;
    if (url === 'embedded') {
      const port = this.s.embeddedPort;
      try {
        const { startEmbeddedBroker } = await import('./embedded-broker.ts');
        this.embedded = await startEmbeddedBroker(port, '127.0.0.1');
        this.log.info({ port }, `embedded MQTT broker on 127.0.0.1:${port}`);
        mqtt311 = true;
      } catch (e) {
        this.log.warn({ err: (e as Error).message, port }, 'embedded broker did not start; connecting to whatever listens there');
      }
      url = `mqtt://127.0.0.1:${port}`;
    }
    if (!url) {
      this.log.info({}, 'uplink.url is null: no aggregator connection; messages stay in the outbox');
      return;
    }
    this.conn.start(url, { mqtt311 });
  }

  async stop(): Promise<void> {
    if (!this.started || this.stopping) return;
    this.stopping = true;
    this.conn.stopping_();
    const client = this.conn.liveClient();
    if (client) {
      const off = this.stampStatus(false);
      await withTimeout(this.timer, new Promise<void>((resolve) => client.publish(`${this.root}/status`, off, { qos: 1, retain: true }, () => resolve())), 2000);
      await withTimeout(this.timer, new Promise<void>((resolve) => client.end(false, {}, () => resolve())), 2000);
    }
    this.conn.close();
    this.pump.detach();
    if (this.embedded) {
      await withTimeout(this.timer, this.embedded.close(), 2000);
      this.embedded = undefined;
    }
    this.started = false;
  }

  connected(): boolean {
    return this.conn.connected;
  }

  drain(): void {
    const o = this.o.outbox as Partial<{ whenCommitted(fn: () => void): void }>;
    // inside a transaction the rows are not committed yet: look once it has
    if (typeof o.whenCommitted === 'function') o.whenCommitted(() => this.pump.pump());
    else this.pump.pump();
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
        const err = this.intake.loadKey();
        if (err) {
          this.st.lastError = err;
          this.log.error({ err }, 'new dispatch key unusable; every dispatch will be rejected');
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
        if (prev.url !== 'embedded' && this.s.url !== null && this.s.url !== 'embedded') this.conn.url = this.s.url;
        if (this.started && !this.stopping) {
          this.conn.resetBackoff();
          this.conn.reconnectCleanly();
        }
      }
    } catch (e) {
      this.log.error({ err: (e as Error).message }, 'uplink reconfiguration failed; previous settings kept');
    }
    return { applied, restartNeeded };
  }

  private resubscribeGroups(before: string[], after: string[]): void {
    const topic = (g: string) => `${this.s.prefix}/group/${g}/dispatch`;
    const removed = before.filter((g) => !after.includes(g)).map(topic);
    const added = after.filter((g) => !before.includes(g));
    this.intake.setGroups(after);
    const client = this.conn.current();
    if (!client) return;
    if (removed.length) client.unsubscribe(removed, (err) => err && this.conn.fail(`unsubscribe: ${err.message}`));
    if (added.length) client.subscribe(added.map(topic), { qos: 1 }, (err) => err && this.conn.fail(`subscribe: ${err.message}`));
  }

  stats(): UplinkStats {
    let rows = this.st.outboxRows;
    try {
      rows = this.o.outbox.size();
    } catch {
      // keep the last known figure
    }
    return { ...this.st, connected: this.conn.connected, inFlight: this.pump.inFlightCount, outboxRows: rows, protocolVersion: this.st.protocolVersion };
  }

  private onConnected(client: MqttClient, v: 4 | 5, gen: number): void {
    // birth first, so a subscriber sees online before anything else from this connection
    client.publish(`${this.root}/status`, this.stampStatus(true), { qos: 1, retain: true }, (err) => {
      if (err) this.conn.fail(`birth message: ${err.message}`);
    });
    const subs: Record<string, { qos: 1 }> = {};
    for (const t of this.intake.topics()) subs[t] = { qos: 1 };
    client.subscribe(subs, (err, granted) => {
      if (err) return this.conn.fail(`subscribe: ${err.message}`);
      const refused = (granted ?? []).filter((g) => g.qos === 128 || (g as { reasonCode?: number }).reasonCode === 128);
      if (refused.length) this.log.error({ topics: refused.map((g) => g.topic) }, 'broker refused a dispatch subscription');
    });
    this.pump.attach({ client, generation: gen, protocolVersion: v });
  }

  private stampStatus(online: boolean): Buffer {
    const payload: Record<string, unknown> = online ? { online: true, version: this.o.version ?? 'unknown', startedAt: this.startedAt } : { online: false };
    try {
      // stamped through the outbox for ts and seq; status is sent at once and never stored (QoS 0 there)
      const [q] = this.o.outbox.enqueue([{ topic: 'status', payload, qos: 0, retain: true, class: 'status' }], this.o.clock.wallMs());
      return Buffer.from(JSON.stringify({ ts: q.ts, seq: q.seq, ...payload }));
    } catch (e) {
      this.st.publishErrors++;
      this.log.error({ err: (e as Error).message }, 'could not stamp the status message');
      return Buffer.from(JSON.stringify({ ts: isoUtc(this.o.clock.wallMs()), ...payload }));
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
      let queued: QueuedMessage[];
      try {
        queued = this.o.outbox.enqueue(ok, this.o.clock.wallMs());
      } catch (e) {
        this.st.publishErrors++;
        this.log.error({ err: (e as Error).message }, 'outbound messages not queued');
        this.sendUnstored(ok);
        return;
      }
      const volatile = queued.filter((q) => q.qos !== 1);
      if (volatile.length) {
        const send = () => {
          for (const q of volatile) {
            if (!this.stopping && this.pump.sendVolatile(q)) this.st.qos0Sent++;
            else this.st.qos0Dropped++;
          }
        };
        // a QoS 0 message produced inside a transaction is as uncommitted as the rows beside it
        const o = this.o.outbox as Partial<{ whenCommitted(fn: () => void): void }>;
        if (typeof o.whenCommitted === 'function') o.whenCommitted(send);
        else send();
      }
      // QoS 1 rows: the SQLite outbox wakes the pump after the commit; another outbox is drained now
      if (queued.some((q) => q.qos === 1) && !isNotifying(this.o.outbox)) this.pump.pump();
    } catch (e) {
      this.st.publishErrors++;
      this.log.error({ err: (e as Error).message }, 'outbound messages not queued');
    }
  }

  /**
   * The outbox cannot write (a full or read-only disk): answers, events and state are still sent, once,
   * while connected, so the aggregator hears the `storage` refusal and sees `state.storage`; nothing else
   * is. They carry seq numbers already reserved on disk, so seq stays increasing across restarts.
   */
  private sendUnstored(msgs: OutboundMessage[]): void {
    const o = this.o.outbox as Partial<VolatileStamping>;
    if (typeof o.stampVolatile !== 'function') return;
    const urgent = msgs.filter((m) => m.class === 'response' || m.class === 'event' || m.class === 'state');
    if (!urgent.length) return;
    try {
      for (const q of o.stampVolatile(urgent, this.o.clock.wallMs())) if (!this.stopping && this.pump.sendVolatile(q)) this.st.unstored++;
    } catch (e) {
      this.log.error({ err: (e as Error).message }, 'answers not sent: no seq numbers left without a disk write');
    }
  }
}
