/**
 * `wallbox ledger [--since DATE] [--csv]` and the totals shown by `wallbox status`: read-only access
 * to the store file, safe beside a running daemon (WAL readers never block the writer).
 */
import { existsSync } from 'node:fs';
import type { Db } from './db.ts';
import type { StoreTotals } from './index.ts';
import { openReadOnly, readTotals } from './read.ts';
import { formatLedgerCsv, formatLedgerTable, ledgerRows } from './ledger.ts';
import { checkTimezone, localToUtcMs } from './reward.ts';

export interface LedgerCommandArgs {
  dbPath: string;
  /** `YYYY-MM-DD` (local midnight in `timezone`) or an ISO 8601 time with zone. */
  since?: string;
  csv: boolean;
  /** IANA zone for a date-only `since`; undefined/null = the system's. */
  timezone?: string | null;
}

const DATE_ONLY = /^(\d{4})-(\d{2})-(\d{2})$/;
const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/;

/** Parses `--since`; throws an error naming the option and the accepted forms. */
export function parseSince(since: string, tz: string | null | undefined): number {
  const bad = () => new Error(`invalid --since ${JSON.stringify(since)}: expected a date YYYY-MM-DD or an ISO 8601 time with zone, e.g. 2026-11-23 or 2026-11-23T18:00:00Z`);
  const d = DATE_ONLY.exec(since);
  if (d) {
    const [y, m, day] = [Number(d[1]), Number(d[2]), Number(d[3])];
    const check = new Date(Date.UTC(y, m - 1, day));
    if (check.getUTCFullYear() !== y || check.getUTCMonth() !== m - 1 || check.getUTCDate() !== day) throw bad();
    return localToUtcMs(y, m, day, tz);
  }
  if (!DATE_TIME.test(since)) throw bad();
  const ms = Date.parse(since);
  if (!Number.isFinite(ms)) throw bad();
  return ms;
}

function openForCli(dbPath: string): Db {
  if (!existsSync(dbPath)) throw new Error(`no database at ${dbPath} (storage.path): the runtime has not run with this config yet`);
  return openReadOnly(dbPath);
}

/**
 * Prints the ledger; returns the exit code (0 ok, 1 store error, 2 bad arguments). Each `out` call is
 * one block of text without a final line end (the caller ends it, as console.log does).
 */
export function runLedgerCommand(args: LedgerCommandArgs, out: (s: string) => void): number {
  let sinceMs = 0;
  try {
    checkTimezone(args.timezone);
    if (args.since !== undefined) sinceMs = parseSince(args.since, args.timezone);
  } catch (err) {
    out(`wallbox ledger: ${(err as Error).message}`);
    return 2;
  }
  let db: Db | undefined;
  try {
    db = openForCli(args.dbPath);
    const rows = ledgerRows(db, sinceMs);
    const text = args.csv ? formatLedgerCsv(rows) : rows.length ? formatLedgerTable(rows) : 'no settled dispatches';
    out(text.replace(/\r?\n$/, ''));
    return 0;
  } catch (err) {
    out(`wallbox ledger: ${(err as Error).message}`);
    return 1;
  } finally {
    db?.close();
  }
}

/** Energy and reward totals for `wallbox status` (local day, local month, all time). */
export function readStatusTotals(dbPath: string, opts: { nowMs: number; timezone?: string | null }): StoreTotals {
  checkTimezone(opts.timezone);
  const db = openForCli(dbPath);
  try {
    const t = readTotals(db, opts.nowMs, opts.timezone);
    const { fromMs: _d, ...day } = t.day;
    const { fromMs: _m, ...month } = t.month;
    return { day, month, all: t.all };
  } finally {
    db.close();
  }
}
