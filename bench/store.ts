/**
 * Store benchmarks, on a real SQLite file:
 * - bytes written to disk per simulated day of normal operation (from /proc/self/io write_bytes, i.e.
 *   what the kernel sent or will send to the device for this process: WAL, checkpoints, fsyncs),
 *   target under 20 MB/day;
 * - database size after a simulated year at the default retention;
 * - ledger commit latency (settleDispatch: ledger row + totals + outbox rows, durable), median and p99;
 * - the store's CPU per dispatch (status changes with their responses, checkpoints, settlement).
 *
 * A "normal day": 1 Hz state samples, QoS 0 `state` every 10 s, 2 h of overnight charging, a 1 h
 * evening dispatch (meter checkpoint every 5 s, one settlement), `flex` on change at most every 10 s
 * while power flows and every 15 min otherwise, ~20 events, every QoS 1 message acknowledged.
 */
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore, type Store } from '../src/store/index.ts';
import type { DispatchRecord } from '../src/control/types.ts';
import { fmt, fsyncDbFiles, processWriteBytes, summarize } from './stats.ts';

const DAY_MS = 86_400_000;


function dbBytes(path: string): number {
  return [path, `${path}-wal`, `${path}-shm`].reduce((a, p) => a + (existsSync(p) ? statSync(p).size : 0), 0);
}

/**
 * The kernel writes a dirty page back within vm.dirty_expire_centisecs (30 s by default); a page
 * dirtied again after that is written again. A simulated day runs in about a second, so without help
 * every page would be dirtied once and counted once. Syncing the database files every 30 s of
 * simulated time reproduces real-time writeback, so write_bytes counts what a real day would write.
 */
class Writeback {
  private lastMs = -Infinity;
  constructor(private readonly path: string, private readonly everyMs = 30_000) {}
  tick(nowMs: number): void {
    if (nowMs - this.lastMs < this.everyMs) return;
    this.lastMs = nowMs;
    fsyncDbFiles(this.path);
  }
}

/** Drives the store through one simulated day starting at `dayStartMs`, adding to the running totals. */
function simulateDay(s: Store, dayStartMs: number, dayIndex: number, totals: { importedWh: number; exportedWh: number }, sampleEveryS = 1, writeback?: Writeback, uplink = true): void {
  const dispatchId = `bench-${dayIndex}`;
  const disStart = dayStartMs + 18 * 3_600_000;
  const disEnd = disStart + 3_600_000;
  let rec: DispatchRecord | undefined;
  let lastFlexMs = -Infinity;
  let soc = 60;
  for (let t = dayStartMs; t < dayStartMs + DAY_MS; t += sampleEveryS * 1000) {
    const hour = (t - dayStartMs) / 3_600_000;
    const charging = hour >= 2 && hour < 4;
    const discharging = t >= disStart && t < disEnd;
    const powerW = charging ? 11_000 : discharging ? -7000 : 0;
    const wh = (Math.abs(powerW) * sampleEveryS) / 3600;
    if (powerW > 0) totals.importedWh += wh;
    if (powerW < 0) totals.exportedWh += wh;
    soc += (powerW * sampleEveryS) / 3600 / 600;

    if (t === disStart) {
      rec = { id: dispatchId, request: { id: dispatchId, powerW: -7000, durationS: 3600 }, body: '{}', source: 'device', receivedMs: t, startMs: t, endMs: disEnd, status: 'accepted', acceptedW: -7000, exportedWh: 0, importedWh: 0, carSideWh: 0 };
      s.recordDispatch(rec, t);
      s.outbox.enqueue([{ topic: 'dispatch/response', payload: { id: dispatchId, status: 'accepted' }, qos: 1, retain: false, class: 'response' }], t);
      rec = { ...rec, status: 'active', startedMs: t };
      s.recordDispatch(rec, t);
    }
    if (rec && discharging) {
      rec = { ...rec, exportedWh: rec.exportedWh + wh, carSideWh: rec.carSideWh - wh / 0.95 };
      s.saveMeterState({ atMs: t, meter: { atMs: t, exportedWh: totals.exportedWh, importedWh: totals.importedWh, powerW }, dispatches: [{ id: rec.id, exportedWh: rec.exportedWh, importedWh: rec.importedWh, carSideWh: rec.carSideWh }] });
    } else {
      s.saveMeterState({ atMs: t, meter: { atMs: t, exportedWh: totals.exportedWh, importedWh: totals.importedWh, powerW }, dispatches: [] });
    }
    if (rec && t + sampleEveryS * 1000 >= disEnd) {
      const done: DispatchRecord = { ...rec, status: 'completed', endedMs: disEnd };
      s.settleDispatch(done, [{ topic: 'dispatch/response', payload: { id: rec.id, status: 'completed', deliveredWh: rec.exportedWh }, qos: 1, retain: false, class: 'response' }], disEnd);
      rec = undefined;
    }
    s.recordSample({ atMs: t, mode: charging ? 'charge' : discharging ? 'discharge' : 'idle', socPct: Math.round(soc * 10) / 10, powerW, setpointW: powerW, houseLoadW: 400 + ((t / 1000) % 7), gridUp: true, ...totals });

    const msgs = [];
    if ((t / 1000) % 10 === 0) msgs.push({ topic: 'state', payload: { powerW }, qos: 0 as const, retain: false, class: 'state' as const });
    const flexEveryMs = charging || discharging ? 10_000 : 900_000;
    if (t - lastFlexMs >= flexEveryMs) {
      lastFlexMs = t;
      msgs.push({ topic: 'flex', payload: { dischargeableWh: Math.round(soc * 100) }, qos: 1 as const, retain: true, class: 'flex' as const });
    }
    if ((t - dayStartMs) % 4_320_000 === 0) {
      s.recordEvent({ kind: 'mode', severity: 'info', message: `mode at ${hour} h` }, t);
      msgs.push({ topic: 'event', payload: { kind: 'mode' }, qos: 1 as const, retain: false, class: 'event' as const });
    }
    if (uplink && msgs.length) for (const q of s.outbox.enqueue(msgs, t)) if (q.rowId !== undefined) s.outbox.ack(q.rowId);
    writeback?.tick(t);
  }
  // ledger/response rows of the day acknowledged by the broker too
  for (const p of s.outbox.pending(1000)) s.outbox.ack(p.rowId!);
}

export async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'wallbox-bench-store-'));
  try {
    const t0 = Date.UTC(2026, 0, 1);
    const opts = { timezone: 'Europe/Paris', reward: { ratePerKWh: 0.2, currency: 'EUR' } };

    // 1. bytes written per simulated day: warm up one day (first-use allocation of pages), measure the next
    {
      const path = join(dir, 'day.db');
      const s = openStore(path, opts);
      const totals = { importedWh: 0, exportedWh: 0 };
      const wb = new Writeback(path);
      simulateDay(s, t0, 0, totals, 1, wb);
      s.flush();
      const before = processWriteBytes();
      const days = 3;
      for (let d = 1; d <= days; d++) simulateDay(s, t0 + d * DAY_MS, d, totals, 1, wb);
      s.flush();
      const after = processWriteBytes();
      s.close();
      if (before === undefined || after === undefined) console.log('bytes written per simulated day: /proc/self/io not available on this system');
      else console.log(`bytes written per simulated day (1 Hz samples, 1 h dispatch, 2 h charging; mean of ${days} days after a warm-up day, 30 s writeback): ${fmt((after - before) / days / 1e6, 2)} MB/day (target < 20 MB)`);
    }

    // 2. database size after a simulated year at default retention. For speed the sample interval
    //    shrinks as the end nears: 15 min until the last 31 days (only 15-minute rollups survive that
    //    long), then 60 s, and 1 Hz with full uplink traffic for the last two days (the full-rate
    //    window). Acknowledged outbox rows leave nothing behind.
    {
      const path = join(dir, 'year.db');
      const s = openStore(path, opts);
      const totals = { importedWh: 0, exportedWh: 0 };
      const a = performance.now();
      for (let d = 0; d < 365; d++) simulateDay(s, t0 + d * DAY_MS, d, totals, d >= 363 ? 1 : d >= 365 - 31 ? 60 : 900, undefined, d >= 363);
      s.close();
      const wall = (performance.now() - a) / 1000;
      console.log(`database size after a simulated year (default retention: 24 h full rate, 31 d of 1-min, 730 d of 15-min rollups; 365 settlements): ${fmt(dbBytes(path) / 1e6, 2)} MB (main file ${fmt(statSync(path).size / 1e6, 2)} MB; simulated in ${fmt(wall, 1)} s)`);
    }

    // 3. ledger commit latency: settleDispatch on a real file, durable (fsync), with history present
    {
      const path = join(dir, 'latency.db');
      const s = openStore(path, opts);
      const totals = { importedWh: 0, exportedWh: 0 };
      simulateDay(s, t0, 0, totals, 10);
      const lat: number[] = [];
      for (let i = 0; i < 500; i++) {
        const t = t0 + DAY_MS + i * 60_000;
        const r: DispatchRecord = { id: `lat-${i}`, request: { id: `lat-${i}`, powerW: -7000, durationS: 60 }, body: '{}', source: 'device', receivedMs: t, startMs: t, endMs: t + 60_000, startedMs: t, endedMs: t + 60_000, status: 'completed', acceptedW: -7000, exportedWh: 116.7, importedWh: 0, carSideWh: -122.8 };
        const a = performance.now();
        s.settleDispatch(r, [{ topic: 'dispatch/response', payload: { id: r.id, status: 'completed', deliveredWh: 116.7 }, qos: 1, retain: false, class: 'response' }], t + 60_000);
        lat.push(performance.now() - a);
      }
      s.close();
      const st = summarize(lat);
      console.log(`ledger commit latency (settleDispatch, ${st.n} settlements, synchronous=FULL): median ${fmt(st.median, 3)} ms, p99 ${fmt(st.p99, 3)} ms, max ${fmt(st.max, 3)} ms`);
    }

    // 4. user CPU of the store per dispatch: accepted and active (each in the tick's relaxed transaction
    //    with its response row), 60 ticks of meter checkpoints, the settlement. Statements are prepared
    //    once per connection; preparing them per call cost about as much as running them.
    {
      const path = join(dir, 'cpu.db');
      const s = openStore(path, opts);
      const cycle = (i: number) => {
        const t = t0 + i * 120_000;
        const r: DispatchRecord = { id: `cpu-${i}`, request: { id: `cpu-${i}`, powerW: -7000, durationS: 60 }, body: '{}', source: 'device', receivedMs: t, startMs: t, endMs: t + 60_000, status: 'accepted', acceptedW: -7000, exportedWh: 0, importedWh: 0, carSideWh: 0 };
        const resp = (status: string) => ({ topic: 'dispatch/response', payload: { id: r.id, status }, qos: 1 as const, retain: false, class: 'response' as const });
        s.atomically(() => {
          s.recordDispatch(r, t);
          s.outbox.enqueue([resp('accepted')], t);
        }, 'relaxed');
        const active = { ...r, status: 'active' as const, startedMs: t };
        s.atomically(() => {
          s.recordDispatch(active, t + 1000);
          s.outbox.enqueue([resp('active')], t + 1000);
        }, 'relaxed');
        for (let k = 1; k <= 60; k++) s.saveMeterState({ atMs: t + k * 1000, meter: { k }, dispatches: [{ id: r.id, exportedWh: k * 1.94, importedWh: 0, carSideWh: -k * 2.04 }] });
        s.settleDispatch({ ...active, status: 'completed', endedMs: t + 60_000, exportedWh: 116.7, carSideWh: -122.8 }, [resp('completed')], t + 60_000);
      };
      for (let i = 0; i < 50; i++) cycle(i);
      const n = 300;
      const c0 = process.cpuUsage();
      for (let i = 50; i < 50 + n; i++) cycle(i);
      const c = process.cpuUsage(c0);
      s.close();
      console.log(`store CPU per dispatch (accepted, active, 60 checkpoint ticks, settlement; ${n} dispatches): user ${fmt(c.user / n / 1000, 2)} ms, system ${fmt(c.system / n / 1000, 2)} ms`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
