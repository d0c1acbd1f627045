/**
 * The local event log: faults, mode changes, config changes, settlements. Written at once (relaxed
 * durability: survives kill -9; a power cut may lose the last seconds) because an event is most useful
 * exactly when the process dies right after it. Pruned by age and by row count.
 */
import type { CoreEvent } from '../control/types.ts';
import { stmt, type Db } from './db.ts';

export interface EventRow {
  n: number;
  atMs: number;
  kind: string;
  severity: CoreEvent['severity'];
  message: string;
}

const SEVERITIES: ReadonlySet<string> = new Set(['info', 'warning', 'alarm']);
const MAX_MESSAGE_CHARS = 2000;

export function checkEvent(ev: CoreEvent, atMs: number): void {
  if (!ev || typeof ev !== 'object') throw new Error('event must be an object {kind, severity, message}');
  if (typeof ev.kind !== 'string' || ev.kind.length === 0) throw new Error(`event kind must be a non-empty string, got ${JSON.stringify(ev.kind)}`);
  if (!SEVERITIES.has(ev.severity)) throw new Error(`event ${ev.kind}: severity must be info, warning or alarm, got ${JSON.stringify(ev.severity)}`);
  if (typeof ev.message !== 'string') throw new Error(`event ${ev.kind}: message must be a string`);
  if (!Number.isFinite(atMs)) throw new Error(`event ${ev.kind}: time must be a finite epoch ms, got ${atMs}`);
}

/** Inserts one event (inside the caller's transaction). */
export function insertEvent(db: Db, ev: CoreEvent, atMs: number): void {
  checkEvent(ev, atMs);
  stmt(db, 'INSERT INTO events(atMs, kind, severity, message) VALUES (?, ?, ?, ?)').run(atMs, ev.kind, ev.severity, ev.message.slice(0, MAX_MESSAGE_CHARS));
}

export function listEvents(db: Db, sinceMs = 0, limit = 1000): EventRow[] {
  return stmt(db, 'SELECT * FROM events WHERE atMs >= ? ORDER BY n LIMIT ?').all(sinceMs, limit) as EventRow[];
}

/** Deletes events older than the retention or beyond the newest `maxRows`. Returns rows deleted. */
export function pruneEvents(db: Db, nowMs: number, retentionDays: number, maxRows: number): number {
  let n = stmt(db, 'DELETE FROM events WHERE atMs < ?').run(nowMs - retentionDays * 86_400_000).changes;
  const newest = stmt(db, 'SELECT max(n) AS m FROM events').get() as { m: number | null };
  if (newest.m !== null) n += stmt(db, 'DELETE FROM events WHERE n <= ?').run(newest.m - maxRows).changes;
  return n;
}
