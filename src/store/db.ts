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
  try {
    setUp(db, path, opts);
  } catch (err) {
    db.close();
    const code = (err as { code?: string }).code;
    // a read-only or full file system shows here first (WAL needs its -shm and -wal files)
    throw Object.assign(new Error(`cannot open database ${path}${code ? ` (${code})` : ''}: ${(err as Error).message}; is its file system full or read-only?`), { code });
  }
  return db;
}

function setUp(db: Db, path: string, opts: OpenDbOptions): void {
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
}

interface TxState {
  /** Durability of the transaction this module opened and that is still open. */
  outer?: Durability;
  /** A write that must survive a power cut joined a relaxed transaction. */
  mustSync: boolean;
  /** Run once the open transaction has committed; dropped if it rolls back. */
  afterCommit: (() => void)[];
  /**
   * The first error thrown inside the open transaction. A caller further up may catch it and carry on,
   * but the transaction is lost all the same: SQLite may already have rolled it back (SQLITE_FULL,
   * SQLITE_IOERR, SQLITE_BUSY: https://www.sqlite.org/lang_transaction.html "Response To Errors Within A
   * Transaction"), and whatever ran after it would have been committed on its own.
   */
  failed?: unknown;
}
const txStates = new WeakMap<Db, TxState>();

function txState(db: Db): TxState {
  let st = txStates.get(db);
  if (!st) {
    st = { mustSync: false, afterCommit: [] };
    txStates.set(db, st);
  }
  return st;
}

// ---------------------------------------------------------------------------------------------
// storage health

/** Whether the file takes writes; what the runtime hands the core (`storage` reason when not). */
export interface StorageHealth {
  writable: boolean;
  /** What failed, in words an installer can act on (the SQLite code and message). */
  fault?: string;
  /** When the fault was first seen, epoch ms of the store's clock. */
  sinceMs?: number;
}

interface HealthState {
  health: StorageHealth;
  listeners: ((h: StorageHealth) => void)[];
  nowMs: () => number;
}
const healthStates = new WeakMap<Db, HealthState>();

function healthState(db: Db): HealthState {
  let h = healthStates.get(db);
  if (!h) {
    h = { health: { writable: true }, listeners: [], nowMs: Date.now };
    healthStates.set(db, h);
  }
  return h;
}

export function storageHealth(db: Db): StorageHealth {
  return { ...healthState(db).health };
}

/** The clock `sinceMs` is read from (the store passes its own). */
export function setHealthClock(db: Db, nowMs: () => number): void {
  healthState(db).nowMs = nowMs;
}

export function onHealthChange(db: Db, fn: (h: StorageHealth) => void): () => void {
  const h = healthState(db);
  h.listeners.push(fn);
  return () => {
    h.listeners = h.listeners.filter((l) => l !== fn);
  };
}

function setHealth(db: Db, next: StorageHealth): void {
  const h = healthState(db);
  if (h.health.writable === next.writable && h.health.fault === next.fault) return;
  h.health = next;
  for (const l of h.listeners) {
    try {
      l({ ...next });
    } catch {
      // a listener's failure is its own
    }
  }
}

/**
 * SQLite result codes that mean the file cannot take writes (full, read-only, I/O error, locked for
 * longer than busy_timeout, corrupt), as opposed to a statement that is wrong (constraint, misuse):
 * https://www.sqlite.org/rescode.html
 */
const STORAGE_CODES = /^SQLITE_(FULL|READONLY|IOERR|BUSY|LOCKED|CORRUPT|CANTOPEN|NOMEM|PROTOCOL|NOTADB|PERM)/;

export function isStorageError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && STORAGE_CODES.test(code);
}

/** Turns a failed write into the store's `storage` fault; the one place that does. */
export function noteWriteFailure(db: Db, err: unknown): void {
  if (!isStorageError(err)) return;
  const e = err as { code: string; message?: string };
  const h = healthState(db).health;
  setHealth(db, { writable: false, fault: `${e.code}: ${e.message ?? 'write failed'}`, sinceMs: h.writable ? healthState(db).nowMs() : h.sinceMs });
}

/** The file system is (nearly) full before any write failed: the same fault, with the free space named. */
export function noteLowSpace(db: Db, fault: string): void {
  const h = healthState(db).health;
  setHealth(db, { writable: false, fault, sinceMs: h.writable ? healthState(db).nowMs() : h.sinceMs });
}

export function noteWritable(db: Db): void {
  if (!healthState(db).health.writable) setHealth(db, { writable: true });
}

/**
 * Runs `fn` once the open transaction commits, and never if it rolls back; at once when no
 * transaction is open. Used to publish outbox rows only after they are on disk (design invariant 6).
 */
export function afterCommit(db: Db, fn: () => void): void {
  if (db.inTransaction && txState(db).outer !== undefined) txState(db).afterCommit.push(fn);
  else fn();
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

/** Thrown by a write that would have run outside its caller's transaction after SQLite rolled it back. */
export class TransactionLostError extends Error {
  constructor(cause: unknown) {
    super(`storage: the transaction was rolled back by an earlier error (${(cause as Error)?.message ?? String(cause)}); nothing of it was written`, { cause });
    this.name = 'TransactionLostError';
  }
}

/**
 * Runs `fn` in one transaction committed with the given durability. Inside an open transaction `fn`
 * simply joins it (and its commit's durability). Any error inside the transaction aborts all of it,
 * even one a caller in between catches: the outermost call re-throws it after `fn` returns, and notes
 * a storage error in the store's health. Callbacks given to `afterCommit` run after the commit.
 */
export function transact<T>(db: Db, durability: Durability, fn: () => T): T {
  const st = txState(db);
  if (st.outer !== undefined) {
    // SQLite rolled the transaction back under us: a write now would commit on its own
    if (!db.inTransaction) throw new TransactionLostError(st.failed);
    if (st.failed !== undefined) throw new TransactionLostError(st.failed);
    try {
      return fn();
    } catch (err) {
      if (st.failed === undefined) st.failed = err;
      throw err;
    }
  }
  if (db.inTransaction) return fn();
  setLevel(db, durability);
  st.outer = durability;
  st.mustSync = false;
  st.failed = undefined;
  st.afterCommit = [];
  let out: T;
  try {
    out = db.transaction(() => {
      const r = fn();
      if (st.failed !== undefined) throw st.failed;
      return r;
    }).immediate();
  } catch (err) {
    const cause = st.failed ?? err;
    st.afterCommit = [];
    st.outer = undefined;
    st.failed = undefined;
    st.mustSync = false;
    noteWriteFailure(db, cause);
    throw cause;
  }
  st.outer = undefined;
  const callbacks = st.afterCommit;
  st.afterCommit = [];
  let syncError: unknown;
  if (st.mustSync) {
    st.mustSync = false;
    try {
      setLevel(db, 'durable');
      db.transaction(() => {
        db.prepare("INSERT INTO meta(key, value) VALUES ('durableCommits', '1') ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1").run();
      }).immediate();
    } catch (err) {
      // the transaction itself committed (it survives a killed process); only its fsync is in doubt
      noteWriteFailure(db, err);
      syncError = err;
    }
  }
  for (const cb of callbacks) {
    try {
      cb();
    } catch {
      // an after-commit callback (a publish) must not undo a commit that happened
    }
  }
  if (syncError !== undefined) throw syncError;
  return out;
}

/**
 * Tries a write of a few pages (inserted and deleted in one durable transaction): succeeds only when
 * the file has room and takes writes. Clears the storage fault when it does.
 */
export function probeWritable(db: Db): boolean {
  try {
    transact(db, 'durable', () => {
      db.prepare("INSERT INTO meta(key, value) VALUES ('storageProbe', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value").run('x'.repeat(16 * 1024));
      db.prepare("DELETE FROM meta WHERE key = 'storageProbe'").run();
    });
  } catch (err) {
    noteWriteFailure(db, err);
    return false;
  }
  noteWritable(db);
  return true;
}

const statements = new WeakMap<Db, Map<string, Database.Statement>>();

/**
 * The prepared statement for `sql`, prepared once per connection: preparing costs more than running
 * the small statements this store makes (measured ~17 % of a dispatch tick's CPU before).
 */
export function stmt(db: Db, sql: string): Database.Statement {
  let m = statements.get(db);
  if (!m) {
    m = new Map();
    statements.set(db, m);
  }
  let s = m.get(sql);
  if (!s) {
    s = db.prepare(sql);
    m.set(sql, s);
  }
  return s;
}
