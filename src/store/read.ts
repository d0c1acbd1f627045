/**
 * Read-only access to a store file, shared by the store and the CLI (which must not migrate or write).
 */
import { openDb, type Db } from './db.ts';
import { historyEnergy } from './history.ts';
import { periodTotals } from './ledger.ts';
import { SchemaTooNewError, schemaVersion, SCHEMA_VERSION } from './migrations.ts';
import { localDayMonth, localPeriodStarts } from './reward.ts';

/** Totals straight from the file (shared by the store and the read-only CLI). */
export function readTotals(db: Db, nowMs: number, tz: string | null | undefined) {
  const { day, month } = localDayMonth(nowMs, tz);
  const { dayStartMs, monthStartMs } = localPeriodStarts(nowMs, tz);
  return {
    day: { ...periodTotals(db, `day:${day}`), metered: historyEnergy(db, dayStartMs, Number.MAX_SAFE_INTEGER), fromMs: dayStartMs },
    month: { ...periodTotals(db, `month:${month}`), metered: historyEnergy(db, monthStartMs, Number.MAX_SAFE_INTEGER), fromMs: monthStartMs },
    all: periodTotals(db, 'all'),
  };
}

/** Opens an existing store file read-only at the current schema (for the CLI beside a running daemon). */
export function openReadOnly(path: string): Db {
  const db = openDb(path, { readonly: true });
  try {
    const v = schemaVersion(db);
    if (v > SCHEMA_VERSION) throw new SchemaTooNewError(v, SCHEMA_VERSION);
    if (v < SCHEMA_VERSION) throw new Error(`database ${path} has schema version ${v}, older than this runtime (${SCHEMA_VERSION}); start the runtime once to migrate it`);
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}
