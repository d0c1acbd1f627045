/**
 * The signed-dispatch replay guard, kept in SQLite so it survives restarts and kill -9 (issue 15 §10:
 * the very same signed messages re-sent after a restart ran again). What is remembered: each (id,
 * signature) seen, with its `issuedAt`, for as long as that `issuedAt` could still pass the age check;
 * older entries are pruned, the age check refuses those messages anyway.
 *
 * Same contract as the in-memory `ReplayGuard` of src/uplink/signing.ts (`ReplayMemory`):
 * - an `issuedAt` older than one already seen for the id is `replay`;
 * - otherwise the same (id, signature) again is `same`: a re-delivery, answered idempotently by the core;
 * - anything else is `new`.
 *
 * A write that fails (a full disk) is kept in memory instead and the store's health shows the fault;
 * the guard never throws into the codec.
 */
import { stmt, transact, type Db } from './db.ts';

export type ReplayVerdict = 'new' | 'same' | 'replay';

/** Entries kept in memory when the file does not take them, at most. */
const MAX_UNSTORED = 10_000;

export class SqliteReplayGuard {
  private readonly unstored = new Map<string, { issuedAtMs: number; body: string }>();
  private lastPruneMs = -Infinity;

  constructor(private readonly db: Db, private readonly pruneEveryMs = 60_000) {}

  check(id: string, issuedAtMs: number, body: string, sig: string): ReplayVerdict {
    const newest = (stmt(this.db, 'SELECT max(issuedAtMs) AS m FROM replay_guard WHERE id = ?').get(id) as { m: number | null }).m;
    let newestMs = newest ?? -Infinity;
    for (const [k, e] of this.unstored) if (k.startsWith(`${id}\u0000`) && e.issuedAtMs > newestMs) newestMs = e.issuedAtMs;
    if (issuedAtMs < newestMs) return 'replay';
    if (this.unstored.has(`${id}\u0000${sig}`)) return 'same';
    if (stmt(this.db, 'SELECT 1 FROM replay_guard WHERE id = ? AND sig = ?').get(id, sig)) return 'same';
    // Ed25519 signatures are deterministic: the same body at the same instant is the same message
    const sameBody = stmt(this.db, 'SELECT 1 FROM replay_guard WHERE id = ? AND issuedAtMs = ? AND body = ?').get(id, issuedAtMs, body);
    return sameBody ? 'same' : 'new';
  }

  remember(id: string, issuedAtMs: number, body: string, sig: string): void {
    try {
      transact(this.db, 'relaxed', () => {
        stmt(this.db, 'INSERT OR IGNORE INTO replay_guard(id, sig, issuedAtMs, body) VALUES (?, ?, ?, ?)').run(id, sig, issuedAtMs, body);
      });
    } catch {
      // the store's health has the fault; remember it for this run at least
      this.unstored.set(`${id}\u0000${sig}`, { issuedAtMs, body });
      while (this.unstored.size > MAX_UNSTORED) this.unstored.delete(this.unstored.keys().next().value as string);
    }
  }

  /** Forgets entries issued before `oldestAcceptedMs`; runs the delete at most once per `pruneEveryMs`. */
  prune(oldestAcceptedMs: number): void {
    for (const [k, e] of this.unstored) if (e.issuedAtMs < oldestAcceptedMs) this.unstored.delete(k);
    if (oldestAcceptedMs - this.lastPruneMs < this.pruneEveryMs && oldestAcceptedMs >= this.lastPruneMs) return;
    this.lastPruneMs = oldestAcceptedMs;
    try {
      transact(this.db, 'relaxed', () => stmt(this.db, 'DELETE FROM replay_guard WHERE issuedAtMs < ?').run(oldestAcceptedMs));
    } catch {
      // retried on the next prune; the health shows the fault
    }
  }

  get size(): number {
    return (stmt(this.db, 'SELECT count(*) AS c FROM replay_guard').get() as { c: number }).c + this.unstored.size;
  }
}
