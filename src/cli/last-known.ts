/**
 * The last-known figures in the database, for `wallbox status` while the daemon is not running: the
 * newest state sample (full-rate batch or minute rollup, whichever is newer), the latest events, and the
 * energy and reward totals. Read-only, safe beside a daemon that is starting.
 */
import { existsSync } from 'node:fs';
import { stmt } from '../store/db.ts';
import { decodeBatch } from '../store/history.ts';
import { openReadOnly, readTotals } from '../store/read.ts';

export interface LastKnown {
  /** When the newest sample was taken, epoch ms (calendar), or null when the database has none. */
  atMs: number | null;
  mode: string | null;
  socPct: number | null;
  powerW: number | null;
  setpointW: number | null;
  gridUp: boolean | null;
  totals: ReturnType<typeof readTotals> | null;
  /** Newest events first. */
  recentEvents: { atMs: number; kind: string; severity: string; message: string }[];
}

export function readLastKnown(dbPath: string, nowMs: number, timezone: string): LastKnown {
  if (!existsSync(dbPath)) throw new Error(`no database at ${dbPath} (storage.path): the daemon has not run with this config yet`);
  const db = openReadOnly(dbPath);
  try {
    const out: LastKnown = { atMs: null, mode: null, socPct: null, powerW: null, setpointW: null, gridUp: null, totals: null, recentEvents: [] };
    const raw = stmt(db, 'SELECT data FROM history_raw ORDER BY toMs DESC, n DESC LIMIT 1').get() as { data: Buffer } | undefined;
    const sample = raw ? decodeBatch(raw.data).at(-1) : undefined;
    const minute = stmt(db, 'SELECT * FROM history_1m ORDER BY bucketMs DESC LIMIT 1').get() as
      | { bucketMs: number; samples: number; powerWSum: number; setpointWSum: number; socPctLast: number | null; gridDownSamples: number; modeLast: string }
      | undefined;
    if (sample && (!minute || sample.atMs >= minute.bucketMs)) {
      Object.assign(out, { atMs: sample.atMs, mode: sample.mode, socPct: sample.socPct, powerW: sample.powerW, setpointW: sample.setpointW, gridUp: sample.gridUp });
    } else if (minute && minute.samples > 0) {
      Object.assign(out, {
        atMs: minute.bucketMs, mode: minute.modeLast, socPct: minute.socPctLast, powerW: minute.powerWSum / minute.samples,
        setpointW: minute.setpointWSum / minute.samples, gridUp: minute.gridDownSamples === 0,
      });
    }
    out.totals = readTotals(db, nowMs, timezone);
    out.recentEvents = stmt(db, 'SELECT atMs, kind, severity, message FROM events ORDER BY n DESC LIMIT 5').all() as LastKnown['recentEvents'];
    return out;
  } finally {
    db.close();
  }
}
