import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { decodeBatch, encodeBatch, rollup, SampleDeltas, type HistorySample } from '../../src/store/history.ts';
import { openStore } from '../../src/store/index.ts';
import { dbIn, T0, tempDir } from './helpers.ts';

const close = (a: number, b: number, eps: number, what: string) => assert.ok(Math.abs(a - b) <= eps, `${what}: ${a} != ${b}`);

/** A deterministic day-shaped pattern: charging at night, a discharge at the evening peak. */
function sampleAt(i: number, atMs: number, totals: { imp: number; exp: number }, dtS: number) {
  const hour = new Date(atMs).getUTCHours();
  const powerW = hour < 5 ? 7000 + (i % 7) * 10 : hour >= 17 && hour < 18 ? -6000 - (i % 5) * 20 : (i % 11) - 5;
  if (powerW > 0) totals.imp += (powerW * dtS) / 3600;
  else totals.exp += (-powerW * dtS) / 3600;
  return { atMs, mode: powerW > 100 ? 'charge' : powerW < -100 ? 'discharge' : 'idle', socPct: 50 + (i % 30), powerW, setpointW: powerW, houseLoadW: i % 13 === 0 ? null : 400 + (i % 200), gridUp: i % 97 !== 0, importedWh: totals.imp, exportedWh: totals.exp };
}

describe('state history', () => {
  it('batches encode and decode losslessly', () => {
    const s: HistorySample[] = [
      { atMs: T0, mode: 'idle', socPct: null, powerW: 0, setpointW: 0, houseLoadW: null, gridUp: true, importedWh: 0, exportedWh: 0 },
      { atMs: T0 + 1000, mode: 'discharge', socPct: 71.5, powerW: -7000, setpointW: -7000, houseLoadW: 450, gridUp: false, importedWh: 0.1, exportedWh: 1.944 },
    ];
    assert.deepEqual(decodeBatch(encodeBatch(s)), s);
  });

  it('running totals become per-sample energy; a restart (totals back to zero) is not a negative step', () => {
    const d = new SampleDeltas();
    const base = { mode: 'idle', socPct: null, powerW: 0, setpointW: 0, houseLoadW: null, gridUp: true };
    const steps = [[0, 0], [1, 2], [1.5, 5], [0.2, 0.1], [0.7, 0.4]].map(([imp, exp], i) => d.next({ ...base, atMs: T0 + i, importedWh: imp, exportedWh: exp }));
    const want = [[0, 0], [1, 2], [0.5, 3], [0.2, 0.1], [0.5, 0.3]];
    steps.forEach((st, i) => {
      close(st.importedWh, want[i][0], 1e-12, `imported ${i}`);
      close(st.exportedWh, want[i][1], 1e-12, `exported ${i}`);
    });
    assert.throws(() => d.next({ ...base, atMs: Number.NaN, importedWh: 0, exportedWh: 0 }), /atMs must be a finite number/);
    assert.throws(() => d.next({ ...base, atMs: T0, socPct: Number.POSITIVE_INFINITY, importedWh: 0, exportedWh: 0 }), /socPct/);
  });

  it('rollups over a simulated month equal the sum of the raw samples they replaced', (t) => {
    const path = dbIn(tempDir(t));
    // short full-rate window so most raw batches are deleted during the month
    const s = openStore(path, { timezone: 'UTC', storage: { stateFullRateHours: 2, sampleFlushS: 600 } });
    const december = Date.UTC(2026, 11, 1);
    let decemberImportWh = 0;
    const dtS = 10; // 10 s samples keep the month fast; the code path is the same as 1 Hz
    const days = 30;
    const n = (days * 86_400) / dtS;
    const totals = { imp: 0, exp: 0 };
    let samples = 0;
    let powerSum = 0;
    let gridDown = 0;
    for (let i = 0; i < n; i++) {
      const before = totals.imp;
      const x = sampleAt(i, T0 + i * dtS * 1000, totals, dtS);
      if (x.atMs >= december) decemberImportWh += totals.imp - before;
      s.recordSample(x);
      samples++;
      powerSum += x.powerW;
      if (!x.gridUp) gridDown++;
    }
    s.flush();
    for (const res of ['minute', 'quarter'] as const) {
      const rows = s.rollups(res, 0, Number.MAX_SAFE_INTEGER);
      const sum = (k: 'importedWh' | 'exportedWh' | 'samples' | 'powerWSum' | 'gridDownSamples') => rows.reduce((a, r) => a + r[k], 0);
      close(sum('importedWh'), totals.imp, 1e-6 * totals.imp, `${res} importedWh`);
      close(sum('exportedWh'), totals.exp, 1e-6 * totals.exp, `${res} exportedWh`);
      assert.equal(sum('samples'), samples, `${res} samples`);
      assert.equal(sum('powerWSum'), powerSum, `${res} power`);
      assert.equal(sum('gridDownSamples'), gridDown, `${res} grid down`);
    }
    assert.equal(s.rollups('quarter', 0, Number.MAX_SAFE_INTEGER).length, days * 96);
    // full rate only for the last 2 hours (plus the batch that straddles the limit)
    const raw = s.samples(0, Number.MAX_SAFE_INTEGER);
    assert.ok(raw.length > 0 && raw.length <= (3 * 3600) / dtS, `raw samples kept: ${raw.length}`);
    // totals: metered energy of the current month from the rollups
    const month = s.totals(T0 + (days - 1) * 86_400_000).month.metered;
    close(month.importedWh, decemberImportWh, 1e-6 * decemberImportWh, 'month metered import');
    s.close();
  });

  it('a bucket split across two batches is summed, not overwritten', (t) => {
    const s = openStore(dbIn(tempDir(t)), { storage: { sampleFlushS: 7 } });
    const totals = { imp: 0, exp: 0 };
    for (let i = 0; i < 120; i++) s.recordSample(sampleAt(i, T0 + i * 1000, totals, 1));
    s.flush();
    const rows = s.rollups('minute', 0, Number.MAX_SAFE_INTEGER);
    assert.deepEqual(rows.map((r) => r.samples), [60, 60]);
    assert.deepEqual(rows.map((r) => [r.powerWMin, r.powerWMax]), [[-5, 5], [-5, 5]]);
    s.close();
  });

  it('rollups and events past retention are deleted; the file stops growing', (t) => {
    const path = dbIn(tempDir(t));
    const s = openStore(path, { storage: { stateFullRateHours: 1, minuteRetentionDays: 2, retentionDays: 5, eventRetentionDays: 3, eventMaxRows: 50, sampleFlushS: 900 } });
    const totals = { imp: 0, exp: 0 };
    const dtS = 60;
    for (let i = 0; i < (10 * 86_400) / dtS; i++) {
      const atMs = T0 + i * dtS * 1000;
      s.recordSample(sampleAt(i, atMs, totals, dtS));
      if (i % 60 === 0) s.recordEvent({ kind: 'mode', severity: 'info', message: `hour ${i / 60}` }, atMs);
    }
    s.flush(T0 + 10 * 86_400_000);
    const end = T0 + 10 * 86_400_000;
    const minutes = s.rollups('minute', 0, end);
    const quarters = s.rollups('quarter', 0, end);
    assert.ok(minutes[0].bucketMs >= end - 2 * 86_400_000 - 3_600_000, 'minute rollups older than 2 days');
    assert.ok(quarters[0].bucketMs >= end - 5 * 86_400_000 - 3_600_000, '15-minute rollups older than 5 days');
    const ev = s.events(0, 10_000);
    assert.ok(ev.length <= 50, `${ev.length} events kept`);
    assert.ok(ev[0].atMs >= end - 3 * 86_400_000 - 3_600_000);
    s.close();
  });
});
