/**
 * State history: what the device did, second by second for a short window and rolled up for years.
 *
 * Samples are buffered in memory and written in one batch (one transaction) every
 * `storage.sampleFlushS`. A batch is a single row holding its samples as deflated column arrays, so
 * an hour at 1 Hz costs a few pages instead of thousands of rows with their index entries; the
 * 1-minute and 15-minute rollups are updated in the same transaction by adding the batch's sums to the
 * bucket rows (a bucket split across two batches is summed, not overwritten). Full-rate batches are
 * deleted after `storage.stateFullRateHours`, minute rollups after `storage.minuteRetentionDays`,
 * 15-minute rollups after `storage.retentionDays`.
 *
 * The energy in a sample is what moved since the previous sample: the runtime hands in running totals
 * (reset to zero when it starts) and the store takes their difference.
 */
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { stmt, type Db } from './db.ts';

export interface StateSample {
  atMs: number;
  mode: string;
  socPct: number | null;
  /** AC power, W, positive into the car. */
  powerW: number;
  setpointW: number;
  houseLoadW: number | null;
  gridUp: boolean;
  /** Running total of AC energy into the car since the runtime started, Wh. */
  importedWh: number;
  /** Running total of AC energy out of the car since the runtime started, Wh. */
  exportedWh: number;
}

/** A buffered sample: the same fields, with `importedWh`/`exportedWh` the energy moved since the previous one. */
export type HistorySample = StateSample;

export interface RollupRow {
  bucketMs: number;
  samples: number;
  powerWSum: number;
  powerWMin: number;
  powerWMax: number;
  setpointWSum: number;
  houseLoadWSum: number;
  houseLoadSamples: number;
  socPctLast: number | null;
  socPctMin: number | null;
  gridDownSamples: number;
  importedWh: number;
  exportedWh: number;
  modeLast: string;
}

export const MINUTE_MS = 60_000;
export const QUARTER_MS = 15 * MINUTE_MS;

function checkSample(s: StateSample): void {
  const bad = (k: string, v: unknown) => new Error(`state sample: ${k} must be a finite number, got ${JSON.stringify(v)}`);
  if (!s || typeof s !== 'object') throw new Error('state sample must be an object');
  for (const k of ['atMs', 'powerW', 'setpointW', 'importedWh', 'exportedWh'] as const) if (typeof s[k] !== 'number' || !Number.isFinite(s[k])) throw bad(k, s[k]);
  for (const k of ['socPct', 'houseLoadW'] as const) if (s[k] !== null && (typeof s[k] !== 'number' || !Number.isFinite(s[k]))) throw bad(k, s[k]);
  if (typeof s.mode !== 'string') throw new Error(`state sample: mode must be a string, got ${JSON.stringify(s.mode)}`);
}

/** Turns running totals into per-sample energy; a total lower than the last one means a restart. */
export class SampleDeltas {
  private last?: { importedWh: number; exportedWh: number };

  next(s: StateSample): HistorySample {
    checkSample(s);
    const step = (cur: number, prev: number | undefined) => (prev === undefined || cur < prev ? Math.max(0, cur) : cur - prev);
    const importedWh = step(s.importedWh, this.last?.importedWh);
    const exportedWh = step(s.exportedWh, this.last?.exportedWh);
    this.last = { importedWh: s.importedWh, exportedWh: s.exportedWh };
    return { atMs: s.atMs, mode: s.mode, socPct: s.socPct, powerW: s.powerW, setpointW: s.setpointW, houseLoadW: s.houseLoadW, gridUp: s.gridUp, importedWh, exportedWh };
  }
}

/** Column-wise encoding: compresses far better than row-wise JSON (runs of equal values). */
export function encodeBatch(samples: HistorySample[]): Buffer {
  const t0 = samples.length ? samples[0].atMs : 0;
  const cols = {
    t0,
    dt: samples.map((s) => s.atMs - t0),
    mode: samples.map((s) => s.mode),
    soc: samples.map((s) => s.socPct),
    p: samples.map((s) => Math.round(s.powerW)),
    sp: samples.map((s) => Math.round(s.setpointW)),
    house: samples.map((s) => (s.houseLoadW === null ? null : Math.round(s.houseLoadW))),
    grid: samples.map((s) => (s.gridUp ? 1 : 0)),
    imp: samples.map((s) => s.importedWh),
    exp: samples.map((s) => s.exportedWh),
  };
  return deflateRawSync(Buffer.from(JSON.stringify(cols)), { level: 6 });
}

export function decodeBatch(data: Buffer): HistorySample[] {
  const c = JSON.parse(inflateRawSync(data).toString()) as {
    t0: number; dt: number[]; mode: string[]; soc: (number | null)[]; p: number[]; sp: number[]; house: (number | null)[]; grid: number[]; imp: number[]; exp: number[];
  };
  return c.dt.map((dt, i) => ({
    atMs: c.t0 + dt, mode: c.mode[i], socPct: c.soc[i], powerW: c.p[i], setpointW: c.sp[i], houseLoadW: c.house[i], gridUp: c.grid[i] === 1, importedWh: c.imp[i], exportedWh: c.exp[i],
  }));
}

/** Sums of the samples per bucket of `bucketMs`. */
export function rollup(samples: HistorySample[], bucketMs: number): Map<number, RollupRow> {
  const out = new Map<number, RollupRow>();
  for (const s of samples) {
    const b = Math.floor(s.atMs / bucketMs) * bucketMs;
    let r = out.get(b);
    if (!r) {
      r = { bucketMs: b, samples: 0, powerWSum: 0, powerWMin: s.powerW, powerWMax: s.powerW, setpointWSum: 0, houseLoadWSum: 0, houseLoadSamples: 0, socPctLast: null, socPctMin: null, gridDownSamples: 0, importedWh: 0, exportedWh: 0, modeLast: s.mode };
      out.set(b, r);
    }
    r.samples++;
    r.powerWSum += s.powerW;
    r.powerWMin = Math.min(r.powerWMin, s.powerW);
    r.powerWMax = Math.max(r.powerWMax, s.powerW);
    r.setpointWSum += s.setpointW;
    if (s.houseLoadW !== null) {
      r.houseLoadWSum += s.houseLoadW;
      r.houseLoadSamples++;
    }
    if (s.socPct !== null) {
      r.socPctLast = s.socPct;
      r.socPctMin = r.socPctMin === null ? s.socPct : Math.min(r.socPctMin, s.socPct);
    }
    if (!s.gridUp) r.gridDownSamples++;
    r.importedWh += s.importedWh;
    r.exportedWh += s.exportedWh;
    r.modeLast = s.mode;
  }
  return out;
}

const ROLLUP_TABLES = { minute: 'history_1m', quarter: 'history_15m' } as const;

function upsertRollups(db: Db, table: string, rows: Iterable<RollupRow>): void {
  const upsert = stmt(db, `
    INSERT INTO ${table}(bucketMs, samples, powerWSum, powerWMin, powerWMax, setpointWSum, houseLoadWSum, houseLoadSamples, socPctLast, socPctMin, gridDownSamples, importedWh, exportedWh, modeLast)
    VALUES (@bucketMs, @samples, @powerWSum, @powerWMin, @powerWMax, @setpointWSum, @houseLoadWSum, @houseLoadSamples, @socPctLast, @socPctMin, @gridDownSamples, @importedWh, @exportedWh, @modeLast)
    ON CONFLICT(bucketMs) DO UPDATE SET
      samples = samples + excluded.samples,
      powerWSum = powerWSum + excluded.powerWSum,
      powerWMin = min(powerWMin, excluded.powerWMin),
      powerWMax = max(powerWMax, excluded.powerWMax),
      setpointWSum = setpointWSum + excluded.setpointWSum,
      houseLoadWSum = houseLoadWSum + excluded.houseLoadWSum,
      houseLoadSamples = houseLoadSamples + excluded.houseLoadSamples,
      socPctLast = coalesce(excluded.socPctLast, socPctLast),
      socPctMin = CASE WHEN socPctMin IS NULL THEN excluded.socPctMin WHEN excluded.socPctMin IS NULL THEN socPctMin ELSE min(socPctMin, excluded.socPctMin) END,
      gridDownSamples = gridDownSamples + excluded.gridDownSamples,
      importedWh = importedWh + excluded.importedWh,
      exportedWh = exportedWh + excluded.exportedWh,
      modeLast = excluded.modeLast`);
  for (const r of rows) upsert.run(r);
}

/** Writes one batch (inside the caller's transaction). */
export function writeBatch(db: Db, samples: HistorySample[]): void {
  if (samples.length === 0) return;
  stmt(db, 'INSERT INTO history_raw(fromMs, toMs, samples, data) VALUES (?, ?, ?, ?)').run(samples[0].atMs, samples[samples.length - 1].atMs, samples.length, encodeBatch(samples));
  upsertRollups(db, ROLLUP_TABLES.minute, rollup(samples, MINUTE_MS).values());
  upsertRollups(db, ROLLUP_TABLES.quarter, rollup(samples, QUARTER_MS).values());
}

export interface HistoryRetention {
  stateFullRateHours: number;
  minuteRetentionDays: number;
  retentionDays: number;
}

/** Deletes what is past retention (inside the caller's transaction). Returns rows deleted. */
export function pruneHistory(db: Db, nowMs: number, r: HistoryRetention): number {
  const day = 86_400_000;
  return (
    stmt(db, 'DELETE FROM history_raw WHERE toMs < ?').run(nowMs - r.stateFullRateHours * 3_600_000).changes +
    stmt(db, 'DELETE FROM history_1m WHERE bucketMs < ?').run(nowMs - r.minuteRetentionDays * day).changes +
    stmt(db, 'DELETE FROM history_15m WHERE bucketMs < ?').run(nowMs - r.retentionDays * day).changes
  );
}

/** Full-rate samples in [fromMs, toMs] still on disk. */
export function rawSamples(db: Db, fromMs: number, toMs: number): HistorySample[] {
  const rows = stmt(db, 'SELECT data FROM history_raw WHERE toMs >= ? AND fromMs <= ? ORDER BY n').all(fromMs, toMs) as { data: Buffer }[];
  return rows.flatMap((r) => decodeBatch(r.data)).filter((s) => s.atMs >= fromMs && s.atMs <= toMs);
}

export function rollupRows(db: Db, resolution: 'minute' | 'quarter', fromMs: number, toMs: number): RollupRow[] {
  return stmt(db, `SELECT * FROM ${ROLLUP_TABLES[resolution]} WHERE bucketMs >= ? AND bucketMs <= ? ORDER BY bucketMs`).all(fromMs, toMs) as RollupRow[];
}

/** Energy in the rollups over [fromMs, toMs) at 15-minute resolution. */
export function historyEnergy(db: Db, fromMs: number, toMs: number): { importedWh: number; exportedWh: number } {
  const r = stmt(db, 'SELECT coalesce(sum(importedWh), 0) AS i, coalesce(sum(exportedWh), 0) AS e FROM history_15m WHERE bucketMs >= ? AND bucketMs < ?').get(fromMs, toMs) as { i: number; e: number };
  return { importedWh: r.i, exportedWh: r.e };
}
