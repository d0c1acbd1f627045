/**
 * The config file watcher on real files: an edit, a delete and a rewrite are each reported once, with inotify
 * and without it; a change made before the watch began is not missed.
 *
 * Regression `config-change-before-watch`: the daemon answered `status` before its directory watch began, and
 * inotify alone was trusted; a file deleted in that window (or on a board where inotify is not available) was
 * never reloaded, so the refusal event never came (seen in CI as "timed out waiting for the refusal event").
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigFileWatcher, configFingerprint } from '../../src/config/watch.ts';
import { waitFor } from '../helpers/wait.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function setUp(opts: { inotify: boolean; debounceMs?: number }) {
  const dir = mkdtempSync(join(tmpdir(), 'wallbox-watch-'));
  const path = join(dir, 'local.json');
  writeFileSync(path, '{"vehicle":{"dischargeFloorPct":40}}');
  const baseline = await configFingerprint(path);
  let changes = 0;
  const warnings: string[] = [];
  const noInotify = () => {
    throw Object.assign(new Error('ENOSPC: System limit for number of file watchers reached'), { code: 'ENOSPC' });
  };
  const w = new ConfigFileWatcher({
    path, baseline, pollMs: 50, debounceMs: opts.debounceMs ?? 30, onChange: () => changes++, warn: (m) => warnings.push(m),
    ...(opts.inotify ? {} : { watchFn: noInotify }),
  });
  return {
    dir, path, w, warnings, baseline,
    changes: () => changes,
    /** Waits until `n` changes were reported, then long enough for a doubled report to show. */
    expectChanges: async (n: number) => {
      await waitFor(`${n} change report(s), have ${changes}`, () => (changes >= n ? true : undefined));
      await sleep(300);
      assert.equal(changes, n, 'each change reported once');
    },
    done: () => {
      w.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

describe('config file watcher', () => {
  for (const inotify of [true, false]) {
    test(`${inotify ? 'with' : 'without'} inotify: an edit, a delete and a rewrite are each reported once; nothing else is`, async () => {
      const t = await setUp({ inotify });
      try {
        t.w.start();
        await sleep(300);
        assert.equal(t.changes(), 0, 'an unchanged file is not a change');
        writeFileSync(t.path, '{"vehicle":{"dischargeFloorPct":35}}');
        await t.expectChanges(1);
        unlinkSync(t.path);
        await t.expectChanges(2);
        writeFileSync(t.path, '{"vehicle":{"dischargeFloorPct":45}}');
        await t.expectChanges(3);
        if (inotify) assert.deepEqual(t.warnings, []);
        else {
          assert.equal(t.warnings.length, 1, 'one warning, not one per look');
          assert.match(t.warnings[0]!, /config file watch not available \(ENOSPC.*looking every 0\.05 s/);
          assert.equal(t.w.watching(), false);
        }
      } finally {
        t.done();
      }
    });
  }

  test('config-change-before-watch: a file deleted between the load and the watch start is reported', async () => {
    const t = await setUp({ inotify: true });
    try {
      unlinkSync(t.path);
      t.w.start();
      await t.expectChanges(1);
    } finally {
      t.done();
    }
  });

  test('a change another path has already read (accept) is not reported again; a later one is', async () => {
    // a long quiet time: the accept below comes well within it, however loaded the machine. With looks (50 ms)
    // far more often than the quiet time this also checks a waiting report is not put off by every look
    // (it was: the second change below was never reported)
    const t = await setUp({ inotify: true, debounceMs: 600 });
    try {
      t.w.start();
      writeFileSync(t.path, '{"vehicle":{"dischargeFloorPct":44}}');
      // `wallbox config set` wrote it and the daemon read it at once: its fingerprint is accepted
      t.w.accept(await configFingerprint(t.path));
      await sleep(1200);
      assert.equal(t.changes(), 0, 'the same change is not reloaded twice');
      writeFileSync(t.path, '{"vehicle":{"dischargeFloorPct":46}}');
      await t.expectChanges(1);
    } finally {
      t.done();
    }
  });

  test('after stop() nothing is reported', async () => {
    const t = await setUp({ inotify: true });
    try {
      t.w.start();
      t.w.stop();
      writeFileSync(t.path, '{}');
      await sleep(300);
      assert.equal(t.changes(), 0);
    } finally {
      t.done();
    }
  });

  test('the fingerprint tells an absent file from a present one, and a rewrite from the original', async () => {
    const t = await setUp({ inotify: false });
    try {
      assert.match(await configFingerprint(join(t.dir, 'none.json')), /^absent:ENOENT$/);
      writeFileSync(t.path, '{"vehicle":{"dischargeFloorPct":41}}');
      assert.notEqual(await configFingerprint(t.path), t.baseline);
    } finally {
      t.done();
    }
  });
});
