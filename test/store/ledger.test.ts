import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { formatLedgerCsv, formatLedgerTable, openStore, type MeterCheckpoint } from '../../src/store/index.ts';
import { ledgerMessage as runtimeLedgerMessage } from '../../src/runtime/outgoing.ts';
import { readStatusTotals, runLedgerCommand } from '../../src/store/ledger-command.ts';
import { dbIn, ledgerMsg, record, responseMsg, T0, tempDir } from './helpers.ts';

const reward = { ratePerKWh: 0.2, currency: 'EUR' };

describe('ledger and settlement', () => {
  it('a reward rate changed by a reload prices the settlements after it, not the rows before (reward rate changed live)', (t) => {
    const s = openStore(dbIn(tempDir(t)), { reward, timezone: 'Europe/Paris' });
    const settle = (id: string, atMs: number) => {
      const done = { ...record(id, { startMs: atMs, endMs: atMs + 3_600_000 }), status: 'completed' as const, startedMs: atMs, endedMs: atMs + 3_600_000, exportedWh: 7000 };
      s.recordDispatch(done, atMs);
      return s.settleDispatch(done, [responseMsg(id, 'completed', { deliveredWh: 7000 }), ledgerMsg(done)], atMs + 3_600_000);
    };
    // 7 kWh at 0.20 EUR/kWh, then at 0.25 EUR/kWh once the reload gave the new rate
    assert.deepEqual(settle('before', T0)[1].payload.reward, { amount: 1.4, currency: 'EUR' });
    s.setReward({ ratePerKWh: 0.25, currency: 'EUR' });
    assert.deepEqual(settle('after', T0 + 4 * 3_600_000)[1].payload.reward, { amount: 1.75, currency: 'EUR' });
    assert.deepEqual(s.ledger().map((r) => [r.dispatchId, r.rewardAmount]).sort(), [['after', 1.75], ['before', 1.4]]);
    s.close();
  });

  it('settles a dispatch: ledger row, totals, status history, response and ledger message in one go', (t) => {
    const s = openStore(dbIn(tempDir(t)), { reward, timezone: 'Europe/Paris' });
    const r = record('d1');
    s.recordDispatch(r, T0);
    s.recordDispatch({ ...r, status: 'active', startedMs: T0 + 1000 }, T0 + 1000);
    s.recordDispatch({ ...r, status: 'active', startedMs: T0 + 1000, exportedWh: 100 }, T0 + 2000); // energy only: batched
    const done = { ...r, status: 'completed' as const, startedMs: T0 + 1000, endedMs: T0 + 3_601_000, exportedWh: 7000, importedWh: 2, carSideWh: -7370 };
    const q = s.settleDispatch(done, [responseMsg('d1', 'completed', { deliveredWh: 7000 }), ledgerMsg(done)], T0 + 3_601_000);
    assert.deepEqual(q.map((m) => m.class), ['response', 'ledger']);
    assert.ok(q[1].seq > q[0].seq);
    assert.deepEqual(q[1].payload.reward, { amount: 1.4, currency: 'EUR' });
    assert.equal(q[1].payload.carSideWh, -7370);
    assert.equal(q[1].payload.exportedWh, 7000);
    const [row] = s.ledger();
    assert.equal(row.dispatchId, 'd1');
    assert.equal(row.exportedWh, 7000);
    assert.equal(row.rewardAmount, 1.4);
    assert.equal(row.interrupted, false);
    assert.equal(row.day, '2026-11-23');
    assert.deepEqual(s.dispatchStatusHistory('d1').map((c) => c.status), ['accepted', 'active', 'completed']);
    assert.deepEqual(s.outbox.pending(10).map((m) => m.seq), q.map((m) => m.seq));
    const tot = s.totals(T0 + 3_700_000);
    for (const p of [tot.day, tot.month, tot.all]) {
      assert.equal(p.dispatches, 1);
      assert.equal(p.exportedWh, 7000);
      assert.deepEqual(p.rewards, [{ amount: 1.4, currency: 'EUR' }]);
    }
    s.close();
  });

  it('settling the same dispatch twice writes nothing the second time and returns the stored ledger message, also after a restart', (t) => {
    const path = dbIn(tempDir(t));
    const s = openStore(path, { reward });
    const done = record('d1', { status: 'completed', startedMs: T0, endedMs: T0 + 60_000, exportedWh: 100 });
    const first = s.settleDispatch(done, [responseMsg('d1', 'completed')], T0 + 60_000);
    assert.equal(first.length, 2);
    const ledgerFirst = first.find((m) => m.class === 'ledger');
    assert.deepEqual(s.settleDispatch(done, [responseMsg('d1', 'completed')], T0 + 61_000), [ledgerFirst]);
    s.recordDispatch({ ...done, status: 'active' }, T0 + 62_000); // a late update cannot reopen it
    s.db.close();
    const again = openStore(path, { reward });
    const second = again.settleDispatch({ ...done, exportedWh: 999 }, [responseMsg('d1', 'completed')], T0 + 70_000);
    assert.equal(JSON.stringify(second), JSON.stringify([ledgerFirst]));
    assert.equal(again.ledger().length, 1);
    assert.equal(again.ledger()[0].exportedWh, 100);
    assert.equal(again.totals(T0).all.dispatches, 1);
    assert.equal(again.outbox.size(), 2);
    assert.equal(again.dispatch('d1')?.status, 'completed');
    assert.deepEqual(again.interruptedDispatches(), []);
    again.close();
  });

  it('a settlement that fails writes nothing: no ledger row, no outbox row', (t) => {
    const s = openStore(dbIn(tempDir(t)));
    const done = record('d1', { status: 'completed', exportedWh: 5 });
    assert.throws(() => s.settleDispatch(done, [{ topic: '', payload: {}, qos: 1, retain: false, class: 'response' }], T0), /topic/);
    assert.equal(s.ledger().length, 0);
    assert.equal(s.outbox.size(), 0);
    assert.equal(s.settleDispatch(done, [responseMsg('d1', 'completed')], T0).length, 2);
    s.close();
  });

  it('time-of-day rates price the export by when it happened (from the state history)', (t) => {
    // Paris is UTC+1 in November: 17:00-21:00 local = 16:00-20:00Z
    const s = openStore(dbIn(tempDir(t)), { timezone: 'Europe/Paris', reward: { ratePerKWh: 0.1, currency: 'EUR', timeOfDay: [{ from: '17:00', to: '21:00', ratePerKWh: 0.5 }] } });
    // 30 min before the peak at 2 kW, 30 min in it at 6 kW
    let exported = 0;
    for (let i = 0; i <= 3600; i++) {
      const atMs = T0 - 1_800_000 + i * 1000;
      const w = i < 1800 ? 2000 : 6000;
      if (i > 0) exported += w / 3600;
      s.recordSample({ atMs, mode: 'discharge', socPct: 80, powerW: -w, setpointW: -w, houseLoadW: 500, gridUp: true, importedWh: 0, exportedWh: exported });
    }
    const done = record('tod', { status: 'completed', startedMs: T0 - 1_800_000, endedMs: T0 + 1_800_000, exportedWh: 4000 });
    const [, ledger] = s.settleDispatch(done, [responseMsg('tod', 'completed')], T0 + 1_800_000);
    // 1 kWh at 0.1 + 3 kWh at 0.5 (boundary minute rounding: within a cent)
    const amount = (ledger.payload.reward as { amount: number }).amount;
    assert.ok(Math.abs(amount - 1.6) < 0.01, `reward ${amount}`);
    s.close();
  });

  it('a ledger row keeps why the dispatch ended early and the downtime: the database, `wallbox ledger` and MQTT agree', (t) => {
    const s = openStore(dbIn(tempDir(t)));
    const rec = record('down-1', { status: 'completed', reason: 'stopped', downtimeS: 41.6, exportedWh: 700, startedMs: T0, endedMs: T0 + 600_000 });
    const runtimeMsg = runtimeLedgerMessage(rec);
    const [queued] = s.settleDispatch(rec, [runtimeMsg], T0 + 600_000).filter((q) => q.topic === 'ledger');
    const [row] = s.ledger();
    assert.equal(row.reason, 'stopped');
    assert.equal(row.downtimeS, 41.6);
    const sent = queued.payload as Record<string, unknown>;
    assert.equal(sent.reason, 'stopped');
    assert.equal(sent.downtimeS, 42);
    assert.equal(sent.start, '2026-11-23T16:00:00Z');
    assert.equal(sent.end, '2026-11-23T16:10:00Z');
    const csv = formatLedgerCsv(s.ledger()).split('\r\n');
    assert.match(csv[0], /,reason,downtimeS$/);
    assert.match(csv[1], /^down-1,completed,2026-11-23T16:00:00Z,2026-11-23T16:10:00Z,700,.*,stopped,42$/);
    assert.match(formatLedgerTable(s.ledger()), /completed \(stopped, down 42 s\)/);
    // a dispatch that ended by its own time has neither
    s.settleDispatch(record('plain-1', { status: 'completed', exportedWh: 100, startedMs: T0, endedMs: T0 + 60_000 }), [], T0 + 60_000);
    const plain = s.ledger().find((r) => r.dispatchId === 'plain-1')!;
    assert.equal(plain.reason, null);
    assert.equal(plain.downtimeS, null);
    s.close();
  });

  it('no tariff: no reward in the message, none in the row', (t) => {
    const s = openStore(dbIn(tempDir(t)));
    const [, l] = s.settleDispatch(record('d1', { status: 'completed', exportedWh: 10 }), [responseMsg('d1', 'completed')], T0);
    assert.equal(l.payload.reward, undefined);
    assert.equal(s.ledger()[0].rewardAmount, null);
    s.close();
  });

  it('totals run per local day and month', (t) => {
    const s = openStore(dbIn(tempDir(t)), { reward, timezone: 'America/New_York' });
    const day = 86_400_000;
    // T0 = 11:00 local on 2026-11-23
    const ends = [T0, T0 + 3_600_000, T0 + 14 * 3_600_000 /* 01:00 local next day */, T0 + 10 * day /* December */];
    ends.forEach((end, i) => s.settleDispatch(record(`d${i}`, { status: 'completed', startedMs: end - 60_000, endedMs: end, exportedWh: 1000 * (i + 1) }), [responseMsg(`d${i}`, 'completed')], end));
    assert.deepEqual(s.ledger().map((r) => r.day), ['2026-11-23', '2026-11-23', '2026-11-24', '2026-12-03']);
    const nov23 = s.totals(T0 + 1000);
    assert.equal(nov23.day.exportedWh, 3000);
    assert.equal(nov23.month.exportedWh, 6000);
    assert.equal(nov23.all.exportedWh, 10000);
    assert.equal(nov23.all.rewards[0].amount, 2);
    assert.equal(s.totals(T0 + 10 * day).month.dispatches, 1);
    // running totals agree with the rows
    assert.equal(s.ledger().reduce((a, r) => a + r.exportedWh, 0), nov23.all.exportedWh);
    s.close();
  });
});

describe('interrupted dispatches', () => {
  it('finds an open dispatch after a crash with the energy of the last checkpoint, settles it once as interrupted', (t) => {
    const path = dbIn(tempDir(t));
    const s = openStore(path, { reward, storage: { meterCheckpointS: 5 } });
    const r = record('d1', { status: 'active', startedMs: T0 });
    s.recordDispatch(record('d1'), T0 - 1000);
    s.recordDispatch(r, T0);
    for (let i = 1; i <= 20; i++) {
      const cp: MeterCheckpoint<{ exportedWh: number }> = { atMs: T0 + i * 1000, meter: { exportedWh: 500 + 2 * i }, dispatches: [{ id: 'd1', exportedWh: 2 * i, importedWh: 0, carSideWh: -2.1 * i }] };
      s.saveMeterState(cp);
    }
    s.db.close(); // kill -9: nothing flushed beyond what was already written

    const again = openStore(path, { reward });
    const cp = again.loadMeterState<{ exportedWh: number }>();
    // written every 5 s of checkpoint time: the last one before the kill is at most 5 s old
    assert.equal(cp?.atMs, T0 + 16_000);
    assert.equal(cp?.meter.exportedWh, 532);
    const open = again.interruptedDispatches();
    assert.equal(open.length, 1);
    assert.equal(open[0].interrupted, true);
    assert.equal(open[0].started, true);
    assert.equal(open[0].fromCheckpoint, true);
    assert.equal(open[0].record.exportedWh, 32);
    assert.equal(open[0].energyAtMs, T0 + 16_000);
    // the runtime adds what the counters moved since the checkpoint (here 11 Wh), then settles
    const settled = { ...open[0].record, exportedWh: open[0].record.exportedWh + 11, endedMs: T0 + 30_000 };
    const q = again.settleDispatch(settled, [responseMsg('d1', 'completed', { reason: 'interrupted' })], T0 + 30_000, { interrupted: true });
    assert.equal(q[1].payload.interrupted, true);
    assert.equal(again.ledger()[0].interrupted, true);
    assert.equal(again.ledger()[0].exportedWh, 43);
    assert.ok(again.events().some((e) => e.kind === 'dispatch_interrupted'));
    assert.deepEqual(again.interruptedDispatches(), []);
    assert.deepEqual(again.settleDispatch(settled, [], T0 + 40_000, { interrupted: true }), q.filter((m) => m.class === 'ledger'));
    again.close();
  });

  it('a dispatch completed but killed before its settlement is returned as not interrupted', (t) => {
    const path = dbIn(tempDir(t));
    const s = openStore(path);
    s.recordDispatch(record('d1', { status: 'completed', startedMs: T0, endedMs: T0 + 1000, exportedWh: 2 }), T0 + 1000);
    s.recordDispatch(record('d2', { status: 'rejected', reason: 'floor' }), T0 + 1000);
    s.db.close();
    const again = openStore(path);
    const open = again.interruptedDispatches();
    assert.deepEqual(open.map((o) => [o.record.id, o.interrupted, o.record.exportedWh, o.fromCheckpoint]), [['d1', false, 2, false]]);
    again.close();
  });
});

describe('ledger command', () => {
  function seeded(t: { after: (fn: () => void) => void }): string {
    const path = dbIn(tempDir(t));
    const s = openStore(path, { reward });
    s.settleDispatch(record('a1', { status: 'completed', startedMs: T0, endedMs: T0 + 60_000, exportedWh: 1000.25, carSideWh: -1052.9 }), [responseMsg('a1', 'completed')], T0 + 60_000);
    s.settleDispatch(record('b2', { status: 'cancelled', startedMs: T0 + 86_400_000, endedMs: T0 + 86_460_000, exportedWh: 500 }), [responseMsg('b2', 'cancelled')], T0 + 86_460_000, { interrupted: true });
    s.close();
    return path;
  }

  it('prints CSV with a header', (t) => {
    const out: string[] = [];
    assert.equal(runLedgerCommand({ dbPath: seeded(t), csv: true }, (s) => out.push(s)), 0);
    const lines = out.join('').split('\r\n');
    assert.equal(lines[0], 'dispatchId,status,start,end,exportedWh,importedWh,carSideWh,rewardAmount,currency,interrupted,settledAt,reason,downtimeS');
    assert.equal(lines[1], 'a1,completed,2026-11-23T16:00:00Z,2026-11-23T16:01:00Z,1000.25,0,-1052.9,0.2001,EUR,false,2026-11-23T16:01:00Z,,');
    assert.match(lines[2], /^b2,cancelled,.*,true,/);
    assert.equal(lines.length, 3); // the caller ends the last line
  });

  it('--since filters by end of delivery; a table by default', (t) => {
    const path = seeded(t);
    const out: string[] = [];
    assert.equal(runLedgerCommand({ dbPath: path, csv: false, since: '2026-11-24', timezone: 'UTC' }, (s) => out.push(s)), 0);
    const text = out.join('');
    assert.match(text, /b2 \(interrupted\)/);
    assert.doesNotMatch(text, /a1/);
    assert.match(text, /total \(1\)/);
    const csv: string[] = [];
    runLedgerCommand({ dbPath: path, csv: true, since: '2026-11-23T16:01:00.001Z' }, (s) => csv.push(s));
    assert.equal(csv.join('').split('\r\n').length, 2);
  });

  it('an invalid --since is named, exit code 2', (t) => {
    for (const since of ['yesterday', '2026-13-01', '2026-02-30', '2026-11-23T18:00']) {
      const out: string[] = [];
      assert.equal(runLedgerCommand({ dbPath: seeded(t), csv: false, since }, (s) => out.push(s)), 2);
      assert.match(out.join(''), new RegExp(`invalid --since "${since}"`));
    }
  });

  it('a missing database is a clear error, exit code 1', (t) => {
    const out: string[] = [];
    assert.equal(runLedgerCommand({ dbPath: dbIn(tempDir(t), 'none.db'), csv: false }, (s) => out.push(s)), 1);
    assert.match(out.join(''), /no database at .*none\.db/);
  });

  it('reads totals for wallbox status beside a running store', (t) => {
    const path = dbIn(tempDir(t));
    const s = openStore(path, { reward });
    s.settleDispatch(record('d1', { status: 'completed', startedMs: T0, endedMs: T0 + 60_000, exportedWh: 2000 }), [responseMsg('d1', 'completed')], T0 + 60_000);
    const tot = readStatusTotals(path, { nowMs: T0 + 120_000, timezone: 'UTC' });
    assert.equal(tot.day.exportedWh, 2000);
    assert.deepEqual(tot.all.rewards, [{ amount: 0.4, currency: 'EUR' }]);
    assert.equal(Object.hasOwn(tot.day, 'fromMs'), false);
    s.close();
  });

  it('formatLedgerCsv of no rows is just the header', () => {
    assert.equal(formatLedgerCsv([]).split('\r\n')[0].split(',').length, 13);
  });

  it('the CLI does not write to the file (read-only open)', (t) => {
    const path = seeded(t);
    runLedgerCommand({ dbPath: path, csv: true }, () => {});
    const db = new Database(path, { readonly: true });
    assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
    db.close();
  });
});
