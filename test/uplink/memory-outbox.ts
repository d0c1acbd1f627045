/**
 * An in-memory OutboxStore for uplink tests: the same contract as the SQLite one (src/store), without
 * the file. `maxRows` drops the oldest state-class rows first and never ledger or response rows.
 */
import { isoUtc, type MessageClass, type OutboundMessage, type OutboxStore, type QueuedMessage } from '../../src/contract.ts';

const DROPPABLE: MessageClass[] = ['state', 'flex', 'event', 'status'];

export class MemoryOutbox implements OutboxStore {
  private rows: QueuedMessage[] = [];
  private nextRowId = 1;
  seq: number;
  acks: number[] = [];
  dropped = 0;

  constructor(private readonly maxRows = 10_000, startSeq = 0) {
    this.seq = startSeq;
  }

  enqueue(msgs: OutboundMessage[], nowMs: number): QueuedMessage[] {
    const ts = isoUtc(nowMs);
    return msgs.map((m) => {
      const seq = ++this.seq;
      const q: QueuedMessage = { ...m, payload: { ...m.payload, ts, seq }, ts, seq };
      if (m.qos === 1) {
        q.rowId = this.nextRowId++;
        this.rows.push(q);
        this.evict();
      }
      return q;
    });
  }

  private evict(): void {
    for (const cls of DROPPABLE) {
      while (this.rows.length > this.maxRows) {
        const i = this.rows.findIndex((r) => r.class === cls);
        if (i < 0) break;
        this.rows.splice(i, 1);
        this.dropped++;
      }
    }
  }

  pending(limit: number): QueuedMessage[] {
    return this.rows.slice(0, Math.max(0, limit));
  }

  ack(rowId: number): void {
    this.acks.push(rowId);
    const i = this.rows.findIndex((r) => r.rowId === rowId);
    if (i >= 0) this.rows.splice(i, 1);
  }

  size(): number {
    return this.rows.length;
  }
}
