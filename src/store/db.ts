/**
 * Opening the SQLite file and the durability of each class of write (docs/storage.md).
 *
 * One file, WAL journal. `synchronous` is set per transaction class rather than per connection:
 * - `durable` (FULL): ledger, settlement outbox rows, dispatch status changes, seq reservations. The WAL
 *   is fsynced at commit, so once the call returns the row survives a power cut.
 * - `relaxed` (NORMAL): samples, rollups, meter checkpoints, event log, acknowledgements, other outbox
 *   rows. A commit is in the OS cache, so it survives kill -9; a power cut may lose the last seconds,
 *   never the file's consistency. Because the WAL is append-only, the next durable commit also makes
 *   every earlier relaxed commit durable, so the order of what survives is always a prefix.
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

export type Db = Database.Database;
export type Durability = 'durable' | 'relaxed';

/**
 * Page size for new files. Most transactions here touch one or two small rows, and a WAL commit
 * writes whole pages: with 1 KiB pages a meter checkpoint or a `flex` row costs a quarter of what it
 * costs at SQLite's default 4 KiB. Measured by bench/store.ts on a normal simulated day: 19.3 MB/day
 * at 4 KiB, 12.3 at 2 KiB, 10.7 at 1 KiB, 8.2 at 512 B (docs/storage.md).
 */
export const PAGE_SIZE_BYTES = 1024;

const SYNC_LEVEL: Record<Durability, string> = { durable: 'FULL', relaxed: 'NORMAL' };
const currentLevel = new WeakMap<Db, Durability>();

export interface OpenDbOptions {
  readonly?: boolean;
  /** Pages in the WAL before it is copied back into the database (SQLite's default is 1000). */
  walAutocheckpointPages?: number;
}

/** Opens (creating when allowed) the database file with the project's pragmas. */
export function openDb(path: string, opts: OpenDbOptions = {}): Db {
  if (typeof path !== 'string' || path.length === 0) throw new Error('storage.path must be a non-empty file path');
  if (!opts.readonly && path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  let db: Db;
  try {
    db = new Database(path, { readonly: opts.readonly ?? false, fileMustExist: opts.readonly ?? false });
  } catch (err) {
    throw new Error(`cannot open database ${path}: ${(err as Error).message}`);
  }
  // another process (the CLI beside the daemon) may hold the write lock for a moment
  db.pragma('busy_timeout = 5000');
  if (!opts.readonly) {
    // only takes effect on a new file; see PAGE_SIZE_BYTES
    db.pragma(`page_size = ${PAGE_SIZE_BYTES}`);
    const mode = db.pragma('journal_mode = WAL', { simple: true });
    if (String(mode).toLowerCase() !== 'wal' && path !== ':memory:') throw new Error(`database ${path}: cannot switch to WAL journal (got ${mode})`);
    db.pragma('synchronous = FULL');
    currentLevel.set(db, 'durable');
    db.pragma(`wal_autocheckpoint = ${opts.walAutocheckpointPages ?? 1000}`);
    // after a checkpoint the WAL file is truncated back to this size so it never grows without bound
    db.pragma(`journal_size_limit = ${8 * 1024 * 1024}`);
    db.pragma('temp_store = MEMORY');
  }
  return db;
}

interface TxState {
  /** Durability of the transaction this module opened and that is still open. */
  outer?: Durability;
  /** A write that must survive a power cut joined a relaxed transaction. */
  mustSync: boolean;
}
const txStates = new WeakMap<Db, TxState>();

function txState(db: Db): TxState {
  let st = txStates.get(db);
  if (!st) {
    st = { mustSync: false };
    txStates.set(db, st);
  }
  return st;
}

function setLevel(db: Db, durability: Durability): void {
  if (currentLevel.get(db) === durability) return;
  db.pragma(`synchronous = ${SYNC_LEVEL[durability]}`);
  currentLevel.set(db, durability);
}

/**
 * Called inside a transaction by a write that must survive a power cut whatever the caller chose (a
 * settlement, a seq reservation). SQLite cannot change `synchronous` inside a transaction, so when the
 * enclosing one is relaxed, `transact` follows its commit with a small durable commit: its WAL fsync
 * also covers every frame written before it.
 */
export function requireDurableCommit(db: Db): void {
  const st = txState(db);
  if (db.inTransaction && st.outer !== 'durable') st.mustSync = true;
}

/**
 * Runs `fn` in one transaction committed with the given durability. Inside an open transaction `fn`
 * simply joins it (and its commit's durability).
 */
export function transact<T>(db: Db, durability: Durability, fn: () => T): T {
  if (db.inTransaction) return fn();
  const st = txState(db);
  setLevel(db, durability);
  st.outer = durability;
  st.mustSync = false;
  let out: T;
  try {
    out = db.transaction(fn).immediate();
  } finally {
    st.outer = undefined;
  }
  if (st.mustSync) {
    st.mustSync = false;
    setLevel(db, 'durable');
    db.transaction(() => {
      db.prepare("INSERT INTO meta(key, value) VALUES ('durableCommits', '1') ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1").run();
    }).immediate();
  }
  return out;
}
