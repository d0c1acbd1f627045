/**
 * kill -9 at random moments of a process that meters, settles and queues in a loop (real files):
 * after every kill the database opens, passes integrity_check, holds every ledger message it settled,
 * and after the last one the ledger adds up to what the (persistent) inverter counters moved.
 */
import { strict as assert } from 'node:assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { dbIn, tempDir } from './helpers.ts';

const CHILD = new URL('../fixtures/store-crash-child.ts', import.meta.url).pathname;
const KILLS = 50;
const TICK_WH = 2;

function startChild(dbPath: string, invPath: string, extra: string[] = []): { child: ChildProcess; out: string[]; ready: Promise<void>; settled: Promise<void>; exited: Promise<number | null> } {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, dbPath, invPath, ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  const out: string[] = [];
  let err = '';
  let partial = '';
  let onReady: () => void = () => {};
  const ready = new Promise<void>((r) => (onReady = r));
  let onSettled: () => void = () => {};
  const settled = new Promise<void>((r) => (onSettled = r));
  child.stdout!.on('data', (b: Buffer) => {
    const lines = (partial + b.toString()).split('\n');
    partial = lines.pop() ?? '';
    for (const l of lines) {
      out.push(l);
      if (l === 'ready') onReady();
      if (l.startsWith('settled ')) onSettled();
    }
  });
  child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => {
    if (code !== null && code !== 0) process.stderr.write(`child exited ${code}: ${err}\n`);
    onReady();
    onSettled();
    resolve(code);
  }));
  return { child, out, ready, settled, exited };
}

function check(dbPath: string): { ledger: { dispatchId: string; exportedWh: number }[]; ledgerMsgs: string[] } {
  const db = new Database(dbPath);
  try {
    assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
    // killed during the very first start-up, before its migrations committed: nothing else to check yet
    const hasLedger = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'ledger'").get();
    if (!hasLedger) return { ledger: [], ledgerMsgs: [] };
    const ledger = db.prepare('SELECT dispatchId, exportedWh FROM ledger ORDER BY n').all() as { dispatchId: string; exportedWh: number }[];
    const ledgerMsgs = (db.prepare("SELECT payload FROM outbox WHERE class = 'ledger' ORDER BY rowId").all() as { payload: string }[]).map((r) => (JSON.parse(r.payload) as { id: string }).id);
    // settlement is atomic: at every instant, every ledger row has its queued ledger message and response
    assert.deepEqual([...ledgerMsgs].sort(), ledger.map((r) => r.dispatchId).sort());
    const responses = (db.prepare("SELECT payload FROM outbox WHERE class = 'response'").all() as { payload: string }[]).map((r) => JSON.parse(r.payload) as { id: string; status: string });
    for (const l of ledger) assert.ok(responses.some((r) => r.id === l.dispatchId && r.status === 'completed'), `completed response for ${l.dispatchId}`);
    return { ledger, ledgerMsgs };
  } finally {
    db.close();
  }
}

describe('store under kill -9', () => {
  it(`${KILLS} kills at random moments: integrity, no double settlement, no lost ledger message, energy adds up`, { timeout: 240_000 }, async (t) => {
    const dir = tempDir(t);
    const dbPath = dbIn(dir);
    const invPath = join(dir, 'inverter.json');
    let seed = Number(process.env.CRASH_SEED ?? Date.now() % 100_000);
    t.diagnostic(`seed ${seed}`);
    const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    let lastSeq = 0;
    const running = new Set<ChildProcess>();
    t.after(() => { for (const c of running) c.kill('SIGKILL'); });
    let killedMidStartup = 0;

    for (let k = 0; k < KILLS; k++) {
      const run = startChild(dbPath, invPath);
      running.add(run.child);
      // a third of the kills land anywhere from spawn (start-up recovery included), the rest after ready
      if (rand() < 0.33) {
        await new Promise((r) => setTimeout(r, 50 + rand() * 900));
        if (!run.out.includes('ready')) killedMidStartup++;
      } else {
        // after at least one settlement of its own, so every such run adds to what is checked
        await run.settled;
        await new Promise((r) => setTimeout(r, rand() * 250));
      }
      run.child.kill('SIGKILL');
      await run.exited;
      running.delete(run.child);
      const seqs = run.out.filter((l) => l.startsWith('seq ')).map((l) => Number(l.slice(4)));
      for (const s of seqs) {
        assert.ok(s > lastSeq, `run ${k}: seq ${s} after ${lastSeq}`);
        lastSeq = s;
      }
      check(dbPath);
    }

    // a last clean start settles whatever the last kill left open
    const last = startChild(dbPath, invPath, ['--recover-only']);
    running.add(last.child);
    assert.equal(await last.exited, 0);
    running.delete(last.child);
    const { ledger } = check(dbPath);
    const inv = JSON.parse(readFileSync(invPath, 'utf8')) as { totalExportedWh: number };
    const sum = ledger.reduce((a, r) => a + r.exportedWh, 0);
    t.diagnostic(`${ledger.length} settlements, ${sum.toFixed(3)} Wh in the ledger, ${inv.totalExportedWh} Wh counted; ${killedMidStartup} kills during start-up`);
    assert.ok(ledger.length >= KILLS / 2, `${ledger.length} settlements: too few to mean something`);
    assert.ok(Math.abs(sum - inv.totalExportedWh) <= TICK_WH, `ledger ${sum} Wh vs counters ${inv.totalExportedWh} Wh`);
    assert.equal(new Set(ledger.map((r) => r.dispatchId)).size, ledger.length);
    const db = new Database(dbPath, { readonly: true });
    assert.equal((db.prepare("SELECT count(*) AS c FROM dispatches WHERE status NOT IN ('completed','rejected','expired','cancelled','superseded')").get() as { c: number }).c, 0);
    db.close();
  });
});
