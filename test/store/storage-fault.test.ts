/**
 * Issue 15 §7 and §10: a disk that is full or read-only is a fault the store reports, an SQLite error
 * inside a transaction aborts all of it however the caller handles it, and what the store holds in
 * memory stays bounded. Real file systems: a 256 KiB tmpfs (skipped where mounting is not permitted),
 * remounted read-only; and SQLite's max_page_count where the file itself must be "full".
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore, type Store } from '../../src/store/index.ts';
import { tinyFs } from '../helpers/tmpfs.ts';

/** The sample buffer's documented bound (docs/storage.md). */
const MAX_BUFFERED_SAMPLES = 20_000;
import { dbIn, record, responseMsg, T0, tempDir } from './helpers.ts';

/** Limits the file to its current size plus `pages` pages: the next writes beyond it fail with SQLITE_FULL. */
function capFile(s: Store, pages: number): void {
  const count = s.db.pragma('page_count', { simple: true }) as number;
  s.db.pragma(`max_page_count = ${count + pages}`);
}

const big = (id: string) => record(id, { body: 'x'.repeat(200_000) });

describe('storage that cannot write', () => {
  it('an SQLite error inside a transaction aborts the whole transaction, even when the caller catches it (SQLITE_FULL caught per call)', (t) => {
    const path = dbIn(tempDir(t));
    const s = openStore(path);
    s.recordDispatch(record('before'), T0);
    capFile(s, 4);
    let caught: unknown;
    assert.throws(
      () =>
        s.atomically(() => {
          s.recordEvent({ kind: 'dispatch', severity: 'info', message: 'first write of the tick' }, T0 + 1000);
          try {
            // as the runtime's per-call error handling does
            s.recordDispatch(big('huge'), T0 + 1000);
          } catch (e) {
            caught = e;
          }
          s.recordEvent({ kind: 'dispatch', severity: 'info', message: 'after the failed write' }, T0 + 1000);
          s.outbox.enqueue([responseMsg('after', 'accepted')], T0 + 1000);
        }, 'relaxed'),
      (e: Error & { code?: string }) => e.code === 'SQLITE_FULL',
    );
    assert.equal((caught as { code?: string })?.code, 'SQLITE_FULL');
    s.db.close();
    const again = openStore(path);
    assert.deepEqual(again.events().map((e) => e.message), [], 'writes of the failed transaction were committed');
    assert.equal(again.outbox.size(), 0);
    assert.equal(again.dispatch('huge'), undefined);
    assert.equal(again.dispatch('before')?.status, 'accepted');
    again.close();
  });

  it('a full file is a storage fault with its cause, cleared by a probe once there is room again', (t) => {
    let now = T0;
    const s = openStore(dbIn(tempDir(t)), { nowMs: () => now });
    assert.deepEqual(s.health(), { writable: true });
    const changes: boolean[] = [];
    s.onHealthChange((h) => changes.push(h.writable));
    capFile(s, 4);
    assert.throws(() => s.recordDispatch(big('huge'), now), /full/i);
    const h = s.health();
    assert.equal(h.writable, false);
    assert.match(h.fault ?? '', /SQLITE_FULL/);
    assert.equal(h.sinceMs, T0);
    // still full at the next probe
    now += 30_000;
    assert.equal(s.health().writable, false);
    assert.equal(s.health().sinceMs, T0, 'the fault keeps the time it began');
    // room again: not cleared before the probe interval, cleared by the probe after it
    s.db.pragma('max_page_count = 1073741823');
    now += 10_000;
    assert.equal(s.health().writable, false);
    now += 20_000;
    assert.deepEqual(s.health(), { writable: true });
    assert.deepEqual(changes, [false, true]);
    s.close();
  });

  it('a disk nearly full is seen before a write fails (storage.minFreeMiB), and clears only with room to spare', (t) => {
    const dir = tinyFs(t, 4 * 1024);
    if (!dir) return t.skip('mounting a tmpfs is not permitted here');
    let now = T0;
    const s = openStore(join(dir, 'wallbox.db'), { nowMs: () => now, probeIntervalS: 1, storage: { minFreeMiB: 1 } });
    assert.equal(s.health().writable, true);
    // 3.5 of 4 MiB taken by another file: 0.5 MiB free, below the 1 MiB bound
    writeFileSync(join(dir, 'other'), Buffer.alloc(3.5 * 1024 * 1024 - 200 * 1024));
    now += 5000;
    const h = s.health();
    assert.equal(h.writable, false);
    assert.match(h.fault ?? '', /^ENOSPC: 0\.\d MiB free on .*, below storage\.minFreeMiB \(1 MiB\)$/);
    // 1.2 MiB free: above the bound but below 1.5 × it, so still not writable (no flapping at the edge)
    writeFileSync(join(dir, 'other'), Buffer.alloc(2.8 * 1024 * 1024 - 200 * 1024));
    now += 2000;
    assert.equal(s.health().writable, false);
    unlinkSync(join(dir, 'other'));
    now += 2000;
    assert.equal(s.health().writable, true);
    s.close();
  });

  it('a full disk (256 KiB tmpfs): writes fail as a storage fault, the sample buffer stays bounded, nothing half-written', (t) => {
    const dir = tinyFs(t, 256);
    if (!dir) return t.skip('mounting a tmpfs is not permitted here');
    let now = T0;
    // the free-space check off (a tiny bound): this test is about writes that fail
    const s = openStore(join(dir, 'wallbox.db'), { nowMs: () => now, storage: { sampleFlushS: 60, minFreeMiB: 0.001 } });
    s.recordDispatch(record('d0'), T0);
    // fill the disk with another file
    let fill = 0;
    try {
      for (;;) writeFileSync(join(dir, `fill-${fill++}`), Buffer.alloc(16 * 1024));
    } catch {
      // full
    }
    let failures = 0;
    for (let i = 1; i <= 30; i++) {
      try {
        s.settleDispatch(record(`d${i}`, { status: 'completed', exportedWh: i, startedMs: T0, endedMs: T0 + 1000 }), [responseMsg(`d${i}`, 'completed')], T0 + i);
      } catch {
        failures++;
      }
    }
    assert.ok(failures > 0, 'the disk never filled');
    assert.equal(s.health().writable, false);
    // the write's own code, or (once a probe looked) the free space it found: both say full
    assert.match(s.health().fault ?? '', /SQLITE_(FULL|IOERR)|ENOSPC: 0\.0 MiB free/);
    // samples keep coming every second for longer than the buffer holds
    let sampleErrors = 0;
    for (let i = 0; i < MAX_BUFFERED_SAMPLES + 2000; i++) {
      try {
        s.recordSample({ atMs: T0 + i * 1000, mode: 'idle', socPct: 50, powerW: 0, setpointW: 0, houseLoadW: 500, gridUp: true, importedWh: 0, exportedWh: 0 });
      } catch {
        sampleErrors++;
      }
    }
    assert.ok(sampleErrors > 0);
    assert.ok(s.samples(0, Infinity).length <= MAX_BUFFERED_SAMPLES, `buffer holds ${s.samples(0, Infinity).length}`);
    // every ledger row on disk has its totals: a settlement is all or nothing
    const rows = s.ledger();
    assert.equal(s.totals(T0).all.dispatches, rows.length);
    // room again
    for (let i = 0; i < fill; i++) {
      try {
        unlinkSync(join(dir, `fill-${i}`));
      } catch {
        // the last one may not exist
      }
    }
    now += 31_000;
    assert.equal(s.health().writable, true);
    s.close();
  });

  it('a file that turns read-only under the running store: every write is a storage fault, and the store says so', (t) => {
    // SQLite's query_only is what a file system remounted read-only does to the connection
    // (SQLITE_READONLY on every write); remounting a mount with the database open for writing is refused
    let now = T0;
    const s = openStore(dbIn(tempDir(t)), { nowMs: () => now });
    s.recordDispatch(record('d1'), T0);
    s.db.pragma('query_only = 1');
    assert.throws(() => s.recordDispatch({ ...record('d1'), status: 'active' }, T0 + 1000), (e: Error & { code?: string }) => e.code === 'SQLITE_READONLY');
    const h = s.health();
    assert.equal(h.writable, false);
    assert.match(h.fault ?? '', /SQLITE_READONLY/);
    assert.throws(() => s.outbox.enqueue([responseMsg('d1', 'active')], T0 + 1000));
    now += 30_000;
    assert.equal(s.health().writable, false, 'a probe on a read-only file cannot succeed');
    s.db.pragma('query_only = 0');
    now += 30_000;
    assert.equal(s.health().writable, true);
    s.close();
  });

  it('a restart on a read-only file system: opening the store fails naming the file', (t) => {
    const dir = tempDir(t);
    const path = join(dir, 'wallbox.db');
    openStore(path).close();
    const ro = mkdtempSync(join(tmpdir(), 'wallbox-ro-'));
    try {
      execFileSync('mount', ['--bind', dir, ro], { stdio: 'ignore' });
      execFileSync('mount', ['-o', 'remount,ro,bind', ro], { stdio: 'ignore' });
    } catch {
      rmSync(ro, { recursive: true, force: true });
      return t.skip('bind-mounting read-only is not permitted here');
    }
    t.after(() => {
      execFileSync('umount', ['-l', ro], { stdio: 'ignore' });
      rmSync(ro, { recursive: true, force: true });
    });
    assert.throws(() => openStore(join(ro, 'wallbox.db')), (e: Error) => e.message.includes(join(ro, 'wallbox.db')));
  });
});
