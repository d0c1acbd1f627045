/**
 * The durable MQTT outbox (OutboxStore of src/contract.ts) and the per-device seq counter.
 *
 * seq: reserved in blocks in the meta table (`seqReserved`), with a durable commit, before any number
 * of the block is handed out. A restart continues above the reserved mark, so seq is strictly
 * increasing across restarts and power cuts; the unused rest of a block becomes a gap, which the
 * contract allows. Persisting per message instead would cost a page write for every QoS 0 `state`
 * message (8,640 a day at the default interval) only to make the numbers contiguous.
 *
 * Acknowledgements are applied in memory at once and deleted from the file with the next transaction that
 * enqueues rows, or the next batched write.
 * After a crash the acknowledged-but-not-deleted rows are sent again: delivery is at least once, and the
 * receiver recognises a repeat by its seq.
 *
 * Published only after commit: a row written inside a transaction is invisible to `pending()` and
 * announced to `onWritten` listeners only once that transaction has committed; a rolled-back row is
 * never sent (design invariant 6). The uplink is woken by that announcement instead of polling.
 *
 * Bounded: above `maxRows` unacknowledged rows the oldest `state`, then `flex`, `status` and `event`
 * rows are dropped. `ledger` and `response` rows are never dropped; if they alone fill the outbox it
 * grows past the bound rather than lose a settlement.
 */
import { isoUtc, type MessageClass, type OutboundMessage, type OutboxStore, type QueuedMessage } from '../contract.ts';
import { afterCommit, requireDurableCommit, stmt, transact, type Db } from './db.ts';

/** Drop order when the outbox is full. `ledger` and `response` are absent on purpose. */
export const DROPPABLE_CLASSES: readonly MessageClass[] = ['state', 'flex', 'status', 'event'];
const KEPT_CLASSES: ReadonlySet<MessageClass> = new Set(['ledger', 'response']);
const VALID_CLASSES: ReadonlySet<string> = new Set(['status', 'state', 'flex', 'event', 'response', 'ledger']);

export interface OutboxOptions {
  /** Unacknowledged rows kept before droppable ones are dropped. */
  maxRows: number;
  /** Seq numbers reserved per durable meta write. */
  seqBlock?: number;
  /** Acknowledged rows held before a delete is forced outside the batched write. */
  maxPendingAcks?: number;
}

interface OutboxRow {
  rowId: number;
  ts: string;
  class: MessageClass;
  topic: string;
  payload: string;
  qos: number;
  retain: number;
  responseTopic: string | null;
  correlationData: string | null;
  absoluteTopic: number;
}

function checkMessage(m: OutboundMessage, i: number): void {
  if (!m || typeof m !== 'object') throw new Error(`outbox message ${i} is not an object`);
  if (typeof m.topic !== 'string' || m.topic.length === 0) throw new Error(`outbox message ${i}: topic must be a non-empty string`);
  if (!m.payload || typeof m.payload !== 'object' || Array.isArray(m.payload)) throw new Error(`outbox message ${i} (${m.topic}): payload must be an object`);
  if (m.qos !== 0 && m.qos !== 1) throw new Error(`outbox message ${i} (${m.topic}): qos must be 0 or 1, got ${String(m.qos)}`);
  if (!VALID_CLASSES.has(m.class)) throw new Error(`outbox message ${i} (${m.topic}): unknown class ${String(m.class)}`);
  if ((m.class === 'ledger' || m.class === 'response') && m.qos !== 1) throw new Error(`outbox message ${i} (${m.topic}): ${m.class} messages must be QoS 1`);
}

export class SqliteOutbox implements OutboxStore {
  private nextSeq: number;
  private reservedUpTo: number;
  private rows: number;
  private readonly acked = new Set<number>();
  private readonly seqBlock: number;
  private readonly maxPendingAcks: number;
  private readonly maxRows: number;
  /** Rows dropped to respect the bound since open, per class (for the status and the tests). */
  readonly dropped: Partial<Record<MessageClass, number>> = {};
  /** Highest row id whose transaction has committed: `pending()` never looks past it. */
  private committedUpTo: number;
  private listeners: (() => void)[] = [];

  constructor(private readonly db: Db, opts: OutboxOptions) {
    if (!(Number.isInteger(opts.maxRows) && opts.maxRows > 0)) throw new Error(`storage.outboxMaxRows must be a positive integer, got ${opts.maxRows}`);
    this.maxRows = opts.maxRows;
    this.seqBlock = opts.seqBlock ?? 1000;
    this.maxPendingAcks = opts.maxPendingAcks ?? 200;
    const reserved = stmt(db, "SELECT value FROM meta WHERE key = 'seqReserved'").get() as { value: string } | undefined;
    const maxRow = (stmt(db, 'SELECT max(rowId) AS m FROM outbox').get() as { m: number | null }).m ?? 0;
    this.reservedUpTo = Math.max(reserved ? Number(reserved.value) : 0, maxRow);
    this.nextSeq = this.reservedUpTo + 1;
    this.committedUpTo = maxRow;
    this.rows = (stmt(db, 'SELECT count(*) AS c FROM outbox').get() as { c: number }).c;
    // acknowledgements lost with a crash bring their rows back, or the bound was lowered in the config
    if (this.rows > this.maxRows) transact(db, 'relaxed', () => this.enforceBound());
  }

  /**
   * Makes sure `count` more seq numbers are reserved durably. Call before opening a transaction that
   * enqueues: a reservation inside a transaction that then rolls back would be forgotten on disk but
   * not in memory.
   */
  reserve(count: number): void {
    const need = this.nextSeq + count - 1;
    if (need <= this.reservedUpTo) return;
    const upTo = need + this.seqBlock;
    transact(this.db, 'durable', () => {
      requireDurableCommit(this.db);
      stmt(this.db, "INSERT INTO meta(key, value) VALUES ('seqReserved', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value").run(String(upTo));
    });
    this.reservedUpTo = upTo;
  }

  /**
   * After a caller's transaction rolled back: counts again, and makes sure every seq handed out in
   * memory is still reserved on disk (a reservation made inside the rolled-back transaction is gone).
   */
  afterRollback(): void {
    this.recount();
    const row = stmt(this.db, "SELECT value FROM meta WHERE key = 'seqReserved'").get() as { value: string } | undefined;
    if ((row ? Number(row.value) : 0) < this.reservedUpTo) {
      transact(this.db, 'durable', () => {
        stmt(this.db, "INSERT INTO meta(key, value) VALUES ('seqReserved', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value").run(String(this.reservedUpTo));
      });
    }
  }

  enqueue(msgs: OutboundMessage[], nowMs: number): QueuedMessage[] {
    if (!Array.isArray(msgs)) throw new Error('outbox enqueue: msgs must be an array');
    msgs.forEach(checkMessage);
    this.reserve(msgs.length);
    if (!msgs.some((m) => m.qos === 1)) return this.stamp(msgs, nowMs);
    const durability = msgs.some((m) => m.qos === 1 && KEPT_CLASSES.has(m.class)) ? 'durable' : 'relaxed';
    try {
      return transact(this.db, durability, () => this.enqueueInTransaction(msgs, nowMs));
    } catch (err) {
      this.recount();
      throw err;
    }
  }

  /** Re-reads the row count after a transaction that counted rows rolled back. */
  recount(): void {
    this.rows = (stmt(this.db, 'SELECT count(*) AS c FROM outbox').get() as { c: number }).c;
    for (const id of this.acked) if (!stmt(this.db, 'SELECT 1 FROM outbox WHERE rowId = ?').get(id)) this.acked.delete(id);
  }

  /** Stamps and inserts inside the caller's transaction; the caller has called `reserve` first. */
  enqueueInTransaction(msgs: OutboundMessage[], nowMs: number): QueuedMessage[] {
    msgs.forEach(checkMessage);
    if (this.nextSeq + msgs.length - 1 > this.reservedUpTo) throw new Error('outbox: seq numbers not reserved before the transaction');
    const queued = this.stamp(msgs, nowMs);
    const insert = stmt(this.db, 
      'INSERT INTO outbox(rowId, ts, class, topic, payload, qos, retain, responseTopic, correlationData, absoluteTopic) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    );
    let last = 0;
    for (const q of queued) {
      if (q.qos !== 1) continue;
      insert.run(q.seq, q.ts, q.class, q.topic, JSON.stringify(q.payload), q.qos, q.retain ? 1 : 0, q.responseTopic ?? null, q.correlationData ?? null, q.absoluteTopic ? 1 : 0);
      q.rowId = q.seq;
      this.rows++;
      last = q.seq;
    }
    this.enforceBound();
    // acknowledged rows leave with a commit that happens anyway: fewer repeats after a crash, no extra commit
    this.flushAcksInTransaction();
    if (last > 0) {
      afterCommit(this.db, () => {
        // transactions on one connection commit in the order they were opened: no lower id can follow
        if (last > this.committedUpTo) this.committedUpTo = last;
        this.notify();
      });
    }
    return queued;
  }

  /**
   * Calls `fn` after every commit that added rows (not per row: once per transaction). Returns the
   * unsubscribe function. The listener must not throw; if it does, the error is swallowed.
   */
  onWritten(fn: () => void): () => void {
    this.listeners.push(fn);
    return () => {
      this.listeners = this.listeners.filter((l) => l !== fn);
    };
  }

  /**
   * Runs `fn` once the current transaction commits (at once outside one); never if it rolls back. The
   * uplink sends QoS 0 messages produced inside a transaction this way.
   */
  whenCommitted(fn: () => void): void {
    afterCommit(this.db, fn);
  }

  private notify(): void {
    for (const l of this.listeners) {
      try {
        l();
      } catch {
        // a listener's failure is its own
      }
    }
  }

  /**
   * Stamps without writing anything, for answers sent while the file cannot take writes. Uses only seq
   * numbers already reserved on disk, so seq stays increasing across restarts; throws when none are left.
   */
  stampVolatile(msgs: OutboundMessage[], nowMs: number): QueuedMessage[] {
    if (!Array.isArray(msgs)) throw new Error('outbox stampVolatile: msgs must be an array');
    msgs.forEach(checkMessage);
    if (this.nextSeq + msgs.length - 1 > this.reservedUpTo) throw new Error('outbox: no reserved seq numbers left to stamp without a write');
    return this.stamp(msgs, nowMs);
  }

  private stamp(msgs: OutboundMessage[], nowMs: number): QueuedMessage[] {
    if (!Number.isFinite(nowMs)) throw new Error(`outbox enqueue: nowMs must be a finite epoch ms, got ${nowMs}`);
    const ts = isoUtc(nowMs);
    return msgs.map((m) => {
      const seq = this.nextSeq++;
      const q: QueuedMessage = { ...m, payload: { ...m.payload, ts, seq }, ts, seq };
      return q;
    });
  }

  /**
   * Drops the oldest droppable rows above the bound. Each class query walks the (class, rowId) index
   * (migration 4): O(log n) per message even when only undroppable rows are left.
   */
  private enforceBound(): void {
    let excess = this.size() - this.maxRows;
    for (const cls of DROPPABLE_CLASSES) {
      if (excess <= 0) return;
      const victims = stmt(this.db, 'SELECT rowId FROM outbox WHERE class = ? ORDER BY rowId LIMIT ?').all(cls, excess + this.acked.size) as { rowId: number }[];
      const drop = victims.filter((v) => !this.acked.has(v.rowId)).slice(0, excess);
      const del = stmt(this.db, 'DELETE FROM outbox WHERE rowId = ?');
      for (const v of drop) del.run(v.rowId);
      this.rows -= drop.length;
      excess -= drop.length;
      if (drop.length) this.dropped[cls] = (this.dropped[cls] ?? 0) + drop.length;
    }
  }

  pending(limit: number): QueuedMessage[] {
    if (!(Number.isInteger(limit) && limit >= 0)) throw new Error(`outbox pending: limit must be a non-negative integer, got ${limit}`);
    const rows = stmt(this.db, 'SELECT * FROM outbox WHERE rowId <= ? ORDER BY rowId LIMIT ?').all(this.committedUpTo, limit + this.acked.size) as OutboxRow[];
    const out: QueuedMessage[] = [];
    for (const r of rows) {
      if (this.acked.has(r.rowId)) continue;
      if (out.length >= limit) break;
      const q: QueuedMessage = {
        rowId: r.rowId, seq: r.rowId, ts: r.ts, class: r.class, topic: r.topic, payload: JSON.parse(r.payload) as Record<string, unknown>,
        qos: r.qos as 0 | 1, retain: r.retain === 1,
      };
      if (r.responseTopic !== null) q.responseTopic = r.responseTopic;
      if (r.correlationData !== null) q.correlationData = r.correlationData;
      if (r.absoluteTopic) q.absoluteTopic = true;
      out.push(q);
    }
    return out;
  }

  ack(rowId: number): void {
    if (!Number.isInteger(rowId)) throw new Error(`outbox ack: rowId must be an integer, got ${rowId}`);
    if (this.acked.has(rowId) || !stmt(this.db, 'SELECT 1 FROM outbox WHERE rowId = ?').get(rowId)) return;
    this.acked.add(rowId);
    if (this.acked.size >= this.maxPendingAcks) transact(this.db, 'relaxed', () => this.flushAcksInTransaction());
  }

  /** Deletes acknowledged rows; called inside the store's batched write. */
  flushAcksInTransaction(): void {
    if (this.acked.size === 0) return;
    const ids = [...this.acked];
    const del = stmt(this.db, 'DELETE FROM outbox WHERE rowId = ?');
    let deleted = 0;
    for (const id of ids) deleted += del.run(id).changes;
    // forgotten in memory only once the deletes are on disk: a rolled-back delete leaves them acknowledged
    afterCommit(this.db, () => {
      for (const id of ids) this.acked.delete(id);
      this.rows -= deleted;
    });
  }

  size(): number {
    return this.rows - this.acked.size;
  }

  /** The highest seq handed out so far (0 before the first). */
  lastSeq(): number {
    return this.nextSeq - 1;
  }
}
