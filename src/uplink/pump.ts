/**
 * The outbox pump: sends pending outbox rows in seq order over the current connection, at most
 * `maxInFlight` unacknowledged, and acknowledges a row in the outbox only when the broker has it.
 *
 * Woken, not polling: by the outbox after a commit that added rows (`onWritten`, the SQLite outbox
 * announces only committed rows), by a PUBACK freeing a slot, and by a (re)connect. An outbox without
 * `onWritten` (a plain OutboxStore) is drained by the supervisor once a second instead.
 */
import type { IClientPublishOptions, MqttClient } from 'mqtt';
import type { OutboxStore, QueuedMessage } from '../contract.ts';
import type { UplinkLog, UplinkStats } from './client.ts';

/** What the SQLite outbox offers beyond the contract: commit notifications and deferred QoS 0 sends. */
export interface NotifyingOutbox extends OutboxStore {
  onWritten(fn: () => void): () => void;
  whenCommitted?(fn: () => void): void;
}

export function isNotifying(o: OutboxStore): o is NotifyingOutbox {
  return typeof (o as Partial<NotifyingOutbox>).onWritten === 'function';
}

/** The connection the pump sends on; `generation` tells a stale callback from a current one. */
export interface Link {
  client: MqttClient;
  generation: number;
  protocolVersion: 4 | 5;
}

interface Flight {
  row: QueuedMessage;
  /** PUBACKs still awaited (the own topic, and the MQTT 5 response topic when there is one). */
  waiting: number;
  failed: boolean;
}

export interface PumpOptions {
  outbox: OutboxStore;
  root: string;
  log: UplinkLog;
  stats: UplinkStats;
  maxInFlight: number;
  /** MQTT 5 message expiry for `state` (QoS 0, describes the present): s. */
  stateExpiryS: () => number;
}

export class OutboxPump {
  private link: Link | undefined;
  private readonly inFlight = new Map<number, Flight>();
  /** Rows the broker refused on this connection; retried after the next reconnect. */
  private readonly refused = new Set<number>();
  private lastSentSeq = -Infinity;
  private pumpQueued = false;
  private unsubscribe: (() => void) | undefined;

  constructor(private readonly o: PumpOptions) {
    if (isNotifying(o.outbox)) this.unsubscribe = o.outbox.onWritten(() => this.schedule());
  }

  /** True when the outbox wakes the pump itself; otherwise someone must call `pump()` now and then. */
  get notified(): boolean {
    return this.unsubscribe !== undefined;
  }

  get inFlightCount(): number {
    return this.inFlight.size;
  }

  /** A new connection: everything unacknowledged is sent again on it, oldest first. */
  attach(link: Link): void {
    this.link = link;
    this.inFlight.clear();
    this.refused.clear();
    this.lastSentSeq = -Infinity;
    this.pump();
  }

  detach(): void {
    this.link = undefined;
    this.inFlight.clear();
  }

  close(): void {
    this.detach();
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }

  /** Sends a QoS 0 message now if connected (never stored); returns whether it went out. */
  sendVolatile(m: QueuedMessage): boolean {
    const l = this.link;
    if (!l) return false;
    this.send(l, m, undefined);
    return true;
  }

  /** Acks arrive in bursts, commits in ticks: one outbox read per burst. */
  schedule(): void {
    if (this.pumpQueued) return;
    this.pumpQueued = true;
    setImmediate(() => {
      this.pumpQueued = false;
      this.pump();
    });
  }

  /** Send pending outbox rows in seq order, keeping at most `maxInFlight` unacknowledged. */
  pump(): void {
    try {
      const l = this.link;
      if (!l) return;
      const free = this.o.maxInFlight - this.inFlight.size;
      if (free <= 0) return;
      const rows = this.o.outbox.pending(this.inFlight.size + this.refused.size + free);
      let sent = 0;
      for (const row of rows) {
        if (sent >= free) break;
        if (row.rowId === undefined || row.seq <= this.lastSentSeq || this.inFlight.has(row.rowId) || this.refused.has(row.rowId)) continue;
        this.lastSentSeq = row.seq;
        this.send(l, row, row.rowId);
        sent++;
      }
    } catch (e) {
      this.o.stats.publishErrors++;
      this.o.log.error({ err: (e as Error).message }, 'outbox drain failed; retrying on the next message or reconnect');
    }
  }

  private send(l: Link, m: QueuedMessage, rowId: number | undefined): void {
    // the payload as stored already holds ts and seq; this order makes every re-send the same bytes
    const body = Buffer.from(JSON.stringify({ ts: m.ts, seq: m.seq, ...m.payload }));
    const topic = m.absoluteTopic ? m.topic : `${this.o.root}/${m.topic}`;
    const own: IClientPublishOptions = { qos: m.qos, retain: m.retain };
    // a `state` describes the present: a broker holding it for an offline subscriber drops it once stale
    if (l.protocolVersion === 5 && m.class === 'state') own.properties = { messageExpiryInterval: Math.max(1, Math.round(this.o.stateExpiryS())) };
    const targets: [string, IClientPublishOptions][] = [[topic, own]];
    if (m.responseTopic) {
      const o: IClientPublishOptions = { qos: m.qos, retain: false };
      if (l.protocolVersion === 5 && m.correlationData) o.properties = { correlationData: Buffer.from(m.correlationData, 'base64') };
      targets.push([m.responseTopic, o]);
    }
    if (rowId === undefined) {
      for (const [t, o] of targets) l.client.publish(t, body, o);
      return;
    }
    const flight: Flight = { row: m, waiting: targets.length, failed: false };
    this.inFlight.set(rowId, flight);
    this.o.stats.sent++;
    for (const [t, o] of targets)
      l.client.publish(t, body, o, (err) => {
        try {
          this.onPublished(rowId, flight, l.generation, err);
        } catch (e) {
          this.o.log.error({ err: (e as Error).message }, 'outbox acknowledgement failed');
        }
      });
  }

  private onPublished(rowId: number, flight: Flight, gen: number, err: Error | undefined): void {
    if (err) flight.failed = true;
    if (--flight.waiting > 0) return;
    const current = this.inFlight.get(rowId) === flight && this.link?.generation === gen;
    if (!flight.failed) {
      // the broker has it: even if the connection since dropped, the row must not be sent again
      this.o.outbox.ack(rowId);
      this.o.stats.acked++;
    } else if (current) {
      // refused while connected (not authorized, quota): kept, and retried after the next reconnect
      this.refused.add(rowId);
      this.o.log.error({ seq: flight.row.seq, topic: flight.row.topic, err: err?.message }, 'broker refused a message');
    }
    if (current) {
      this.inFlight.delete(rowId);
      this.schedule();
    }
  }
}
