/**
 * Numbered schema migrations. Each runs in its own transaction together with the version bump, so a
 * crash mid-migration leaves the database at the previous version, and the next start runs it again.
 * The version lives in the meta table (`schemaVersion`); a database without a meta table is version 0.
 * Migrations are append-only: a released one is never edited, a change is a new number.
 */
import type { Db } from './db.ts';
import { transact } from './db.ts';

export interface Migration {
  version: number;
  description: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'meta, dispatches with status history, outbox',
    sql: `
      CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
      CREATE TABLE dispatches (
        id TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        receivedMs INTEGER NOT NULL,
        startMs INTEGER NOT NULL,
        endMs INTEGER NOT NULL,
        startedMs INTEGER,
        endedMs INTEGER,
        exportedWh REAL NOT NULL DEFAULT 0,
        importedWh REAL NOT NULL DEFAULT 0,
        carSideWh REAL NOT NULL DEFAULT 0,
        record TEXT NOT NULL,
        updatedMs INTEGER NOT NULL
      );
      CREATE INDEX dispatches_status ON dispatches(status);
      CREATE TABLE dispatch_status (
        n INTEGER PRIMARY KEY,
        dispatchId TEXT NOT NULL,
        status TEXT NOT NULL,
        reason TEXT,
        atMs INTEGER NOT NULL
      );
      CREATE INDEX dispatch_status_id ON dispatch_status(dispatchId);
      -- rowId is the message's seq: unique and never reused, even after the newest row is deleted
      CREATE TABLE outbox (
        rowId INTEGER PRIMARY KEY,
        ts TEXT NOT NULL,
        class TEXT NOT NULL,
        topic TEXT NOT NULL,
        payload TEXT NOT NULL,
        qos INTEGER NOT NULL,
        retain INTEGER NOT NULL,
        responseTopic TEXT,
        correlationData TEXT,
        absoluteTopic INTEGER NOT NULL DEFAULT 0
      );
    `,
  },
  {
    version: 2,
    description: 'energy ledger with running totals, event log',
    sql: `
      CREATE TABLE ledger (
        n INTEGER PRIMARY KEY,
        dispatchId TEXT NOT NULL UNIQUE,
        status TEXT NOT NULL,
        startMs INTEGER NOT NULL,
        endMs INTEGER NOT NULL,
        exportedWh REAL NOT NULL,
        importedWh REAL NOT NULL,
        carSideWh REAL NOT NULL,
        rewardAmount REAL,
        currency TEXT,
        interrupted INTEGER NOT NULL DEFAULT 0,
        settledMs INTEGER NOT NULL,
        day TEXT NOT NULL,
        month TEXT NOT NULL
      );
      CREATE INDEX ledger_end ON ledger(endMs);
      -- period: 'all', 'month:YYYY-MM' or 'day:YYYY-MM-DD' (local time); currency '' when unpriced
      CREATE TABLE energy_totals (
        period TEXT NOT NULL,
        currency TEXT NOT NULL,
        dispatches INTEGER NOT NULL,
        exportedWh REAL NOT NULL,
        importedWh REAL NOT NULL,
        carSideWh REAL NOT NULL,
        rewardAmount REAL NOT NULL,
        PRIMARY KEY (period, currency)
      ) WITHOUT ROWID;
      CREATE TABLE events (
        n INTEGER PRIMARY KEY,
        atMs INTEGER NOT NULL,
        kind TEXT NOT NULL,
        severity TEXT NOT NULL,
        message TEXT NOT NULL
      );
      CREATE INDEX events_at ON events(atMs);
    `,
  },
  {
    version: 3,
    description: 'state history: full-rate batches, 1-minute and 15-minute rollups',
    sql: `
      CREATE TABLE history_raw (
        n INTEGER PRIMARY KEY,
        fromMs INTEGER NOT NULL,
        toMs INTEGER NOT NULL,
        samples INTEGER NOT NULL,
        data BLOB NOT NULL
      );
      CREATE INDEX history_raw_to ON history_raw(toMs);
      CREATE TABLE history_1m (
        bucketMs INTEGER PRIMARY KEY,
        samples INTEGER NOT NULL,
        powerWSum REAL NOT NULL, powerWMin REAL NOT NULL, powerWMax REAL NOT NULL,
        setpointWSum REAL NOT NULL,
        houseLoadWSum REAL NOT NULL, houseLoadSamples INTEGER NOT NULL,
        socPctLast REAL, socPctMin REAL,
        gridDownSamples INTEGER NOT NULL,
        importedWh REAL NOT NULL, exportedWh REAL NOT NULL,
        modeLast TEXT NOT NULL
      );
      CREATE TABLE history_15m (
        bucketMs INTEGER PRIMARY KEY,
        samples INTEGER NOT NULL,
        powerWSum REAL NOT NULL, powerWMin REAL NOT NULL, powerWMax REAL NOT NULL,
        setpointWSum REAL NOT NULL,
        houseLoadWSum REAL NOT NULL, houseLoadSamples INTEGER NOT NULL,
        socPctLast REAL, socPctMin REAL,
        gridDownSamples INTEGER NOT NULL,
        importedWh REAL NOT NULL, exportedWh REAL NOT NULL,
        modeLast TEXT NOT NULL
      );
    `,
  },
  {
    version: 4,
    description: 'ledger message kept for byte-identical re-sends, outbox class index, signed-dispatch replay guard, finished-dispatch index',
    sql: `
      -- the ledger message as first queued (envelope and payload, JSON): settling again returns it unchanged
      ALTER TABLE ledger ADD COLUMN message TEXT;
      -- bound enforcement looks for the oldest row of a class: O(log n) with this index
      CREATE INDEX outbox_class ON outbox(class, rowId);
      -- signed dispatches seen, per id and signature, until their issuedAt leaves the age window
      CREATE TABLE replay_guard (
        id TEXT NOT NULL,
        sig TEXT NOT NULL,
        issuedAtMs INTEGER NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (id, sig)
      ) WITHOUT ROWID;
      CREATE INDEX replay_guard_issued ON replay_guard(issuedAtMs);
      CREATE INDEX dispatches_updated ON dispatches(updatedMs);
    `,
  },
  {
    version: 5,
    description: 'ledger rows say why a dispatch ended early (reason) and how long the device was down during it (downtimeS)',
    sql: `
      -- 'stopped' (a clean stop), 'interrupted' (a crash outlasting the window), or NULL (ended by its own time or a cancel)
      ALTER TABLE ledger ADD COLUMN reason TEXT;
      -- seconds the device was down while the window was open (it resumed after a restart); NULL = none
      ALTER TABLE ledger ADD COLUMN downtimeS REAL;
    `,
  },
];

export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1].version;

export class SchemaTooNewError extends Error {
  constructor(readonly found: number, readonly supported: number) {
    super(`database schema version ${found} is newer than this runtime supports (${supported}); upgrade the runtime`);
    this.name = 'SchemaTooNewError';
  }
}

/** The schema version recorded in the file; 0 for an empty database. */
export function schemaVersion(db: Db): number {
  const hasMeta = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").get();
  if (!hasMeta) {
    const other = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' LIMIT 1").get() as { name: string } | undefined;
    if (other) throw new Error(`database has table "${other.name}" but no meta table: not a wallbox database`);
    return 0;
  }
  const row = db.prepare("SELECT value FROM meta WHERE key = 'schemaVersion'").get() as { value: string } | undefined;
  const v = row ? Number(row.value) : 0;
  if (!Number.isInteger(v) || v < 0) throw new Error(`database meta.schemaVersion is not a version number: ${row?.value}`);
  return v;
}

/**
 * Brings the database to `target` (default: the newest). Refuses a database newer than this code.
 * Returns the versions applied.
 */
export function migrate(db: Db, target: number = SCHEMA_VERSION): number[] {
  const found = schemaVersion(db);
  if (found > SCHEMA_VERSION) throw new SchemaTooNewError(found, SCHEMA_VERSION);
  const applied: number[] = [];
  for (const m of MIGRATIONS) {
    if (m.version <= found || m.version > target) continue;
    transact(db, 'durable', () => {
      db.exec(m.sql);
      db.prepare("INSERT INTO meta(key, value) VALUES ('schemaVersion', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value").run(String(m.version));
    });
    applied.push(m.version);
  }
  return applied;
}
