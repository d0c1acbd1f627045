import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import type { RuntimeStore } from '../../src/runtime.ts';
import type { OutboxStore } from '../../src/contract.ts';
import { openStore, type Store } from '../../src/store/index.ts';
import { dbIn, record, T0, tempDir } from './helpers.ts';

// the runtime and the uplink take the store through their own interfaces
const _asRuntimeStore = (s: Store): RuntimeStore => s;
const _asOutbox = (s: Store): OutboxStore => s.outbox;
void _asRuntimeStore;
void _asOutbox;

const sample = (atMs: number, exportedWh = 0) => ({ atMs, mode: 'idle', socPct: 60, powerW: 0, setpointW: 0, houseLoadW: 300, gridUp: true, importedWh: 0, exportedWh });

describe('store facade', () => {
  it('events are written at once and survive a kill', (t) => {
    const path = dbIn(tempDir(t));
    const s = openStore(path);
    s.recordEvent({ kind: 'fault', severity: 'alarm', message: 'inverter timeout' }, T0);
    s.db.close();
    const again = openStore(path);
    assert.deepEqual(again.events().map((e) => [e.kind, e.severity, e.message, e.atMs]), [['fault', 'alarm', 'inverter timeout', T0]]);
    assert.throws(() => again.recordEvent({ kind: 'x', severity: 'loud' as 'info', message: '' }, T0), /severity must be info, warning or alarm/);
    assert.throws(() => again.recordEvent({ kind: '', severity: 'info', message: '' }, T0), /kind must be a non-empty string/);
    again.close();
  });

  it('a status history row only when the status changes', (t) => {
    const s = openStore(dbIn(tempDir(t)));
    const r = record('d1');
    s.recordDispatch(r, T0);
    s.recordDispatch(r, T0 + 1);
    s.recordDispatch({ ...r, status: 'active', startedMs: T0 + 2 }, T0 + 2);
    s.recordDispatch({ ...r, status: 'active', startedMs: T0 + 2, exportedWh: 3 }, T0 + 3);
    s.recordDispatch({ ...r, status: 'curtailed', reason: 'floor', startedMs: T0 + 2, exportedWh: 4 }, T0 + 4);
    assert.deepEqual(s.dispatchStatusHistory('d1').map((c) => [c.status, c.reason, c.atMs]), [['accepted', null, T0], ['active', null, T0 + 2], ['curtailed', 'floor', T0 + 4]]);
    assert.equal(s.dispatch('d1')?.exportedWh, 4);
    assert.throws(() => s.recordDispatch({ ...r, id: 'bad id!' }, T0), /dispatch record id/);
    assert.throws(() => s.recordDispatch({ ...r, exportedWh: -1 }, T0), /exportedWh must be >= 0/);
    assert.throws(() => s.recordDispatch({ ...r, status: 'done' as 'active' }, T0), /unknown status/);
    s.close();
  });

  it('samples are buffered: nothing on disk until the flush interval, everything after close', (t) => {
    const path = dbIn(tempDir(t));
    const s = openStore(path, { storage: { sampleFlushS: 60 } });
    for (let i = 0; i < 60; i++) s.recordSample(sample(T0 + i * 1000, i));
    assert.equal(s.rollups('minute', 0, Number.MAX_SAFE_INTEGER).length, 0);
    assert.equal(s.samples(0, Number.MAX_SAFE_INTEGER).length, 60); // the buffer is readable
    s.recordSample(sample(T0 + 60_000, 60));
    assert.equal(s.rollups('minute', 0, Number.MAX_SAFE_INTEGER).length, 2);
    for (let i = 61; i < 70; i++) s.recordSample(sample(T0 + i * 1000, i));
    s.close();
    const again = openStore(path);
    const rows = again.rollups('minute', 0, Number.MAX_SAFE_INTEGER);
    assert.equal(rows.reduce((a, r) => a + r.samples, 0), 70);
    assert.equal(rows.reduce((a, r) => a + r.exportedWh, 0), 69);
    assert.equal(again.samples(0, Number.MAX_SAFE_INTEGER).length, 70);
    again.close();
  });

  it('meter checkpoints: bad input is named; the latest one is returned', (t) => {
    const s = openStore(dbIn(tempDir(t)));
    assert.equal(s.loadMeterState(), undefined);
    assert.throws(() => s.saveMeterState({ atMs: Number.NaN, meter: {}, dispatches: [] }), /atMs must be a finite epoch ms/);
    assert.throws(() => s.saveMeterState({ atMs: T0, meter: {}, dispatches: [{ id: 'd1', exportedWh: Number.NaN, importedWh: 0, carSideWh: 0 }] }), /needs id and finite/);
    s.saveMeterState({ atMs: T0, meter: { a: 1 }, dispatches: [] });
    s.saveMeterState({ atMs: T0 + 1000, meter: { a: 2 }, dispatches: [] });
    assert.deepEqual(s.loadMeterState(), { atMs: T0 + 1000, meter: { a: 2 }, dispatches: [] });
    s.close();
  });

  it('a clock stepped back keeps batches and checkpoints going', (t) => {
    const s = openStore(dbIn(tempDir(t)), { storage: { sampleFlushS: 10, meterCheckpointS: 5 } });
    const later = T0 + 3_600_000;
    s.recordSample(sample(later));
    for (let i = 0; i <= 10; i++) s.recordSample(sample(T0 + i * 1000)); // an hour back
    assert.equal(s.rollups('minute', 0, Number.MAX_SAFE_INTEGER).reduce((a, r) => a + r.samples, 0), 12);
    const cp = (atMs: number) => ({ atMs, meter: { atMs }, dispatches: [{ id: 'd1', exportedWh: 1, importedWh: 0, carSideWh: -1 }] });
    s.saveMeterState(cp(later));
    s.saveMeterState(cp(T0));
    s.db.close(); // killed: what is on disk is the checkpoint after the step
    const again = openStore(s.db.name);
    assert.equal(again.loadMeterState()?.atMs, T0);
    again.close();
  });

  it('atomically: one transaction; a relaxed one is made durable when a settlement or seq reservation joins it', (t) => {
    const s = openStore(dbIn(tempDir(t)), { seqBlock: 3 });
    const durableCommits = () => Number((s.db.prepare("SELECT value FROM meta WHERE key = 'durableCommits'").get() as { value: string } | undefined)?.value ?? 0);
    s.outbox.enqueue([{ topic: 'state', payload: {}, qos: 0, retain: false, class: 'state' }], T0); // first reservation
    const base = durableCommits();
    // a status change and an event: the caller's relaxed choice stands
    s.atomically(() => {
      s.recordDispatch(record('d1'), T0);
      s.recordEvent({ kind: 'mode', severity: 'info', message: 'x' }, T0);
    }, 'relaxed');
    assert.equal(durableCommits(), base);
    // a settlement inside a relaxed transaction: one extra durable commit
    s.atomically(() => s.settleDispatch(record('d1', { status: 'completed', exportedWh: 1 }), [], T0), 'relaxed');
    assert.equal(durableCommits(), base + 1);
    // inside a durable one: nothing extra
    s.atomically(() => s.settleDispatch(record('d2', { status: 'completed', exportedWh: 1 }), [], T0), 'durable');
    assert.equal(durableCommits(), base + 1);
    assert.equal(s.ledger().length, 2);
    s.close();
  });

  it('atomically: a throw writes nothing, and seq numbers handed out stay reserved', (t) => {
    const path = dbIn(tempDir(t));
    const s = openStore(path, { seqBlock: 2 });
    let lastSeq = 0;
    assert.throws(() => s.atomically(() => {
      s.recordDispatch(record('d1', { status: 'active', startedMs: T0 }), T0);
      const q = s.settleDispatch(record('d1', { status: 'completed', exportedWh: 5 }), [{ topic: 'dispatch/response', payload: { id: 'd1', status: 'completed' }, qos: 1, retain: false, class: 'response' }], T0);
      lastSeq = Math.max(...q.map((m) => m.seq));
      throw new Error('actuator exploded');
    }, 'relaxed'), /actuator exploded/);
    assert.equal(s.ledger().length, 0);
    assert.equal(s.outbox.size(), 0);
    assert.equal(s.dispatch('d1'), undefined);
    // QoS 0 messages (no rows) from the block reserved inside the rolled-back transaction
    const [state] = s.outbox.enqueue([{ topic: 'state', payload: {}, qos: 0, retain: false, class: 'state' }], T0);
    assert.ok(state.seq > lastSeq);
    s.db.close(); // killed
    const again = openStore(path, { seqBlock: 2 });
    const [next] = again.outbox.enqueue([{ topic: 'state', payload: {}, qos: 0, retain: false, class: 'state' }], T0);
    assert.ok(next.seq > state.seq, `seq ${next.seq} reused (${state.seq} was handed out)`);
    // the same settlement goes through afterwards, with a status history that starts again
    again.recordDispatch(record('d1', { status: 'active', startedMs: T0 }), T0);
    assert.equal(again.settleDispatch(record('d1', { status: 'completed', exportedWh: 5 }), [], T0).length, 1);
    assert.deepEqual(again.dispatchStatusHistory('d1').map((c) => c.status), ['active', 'completed']);
    again.close();
  });

  it('a closed store refuses writes clearly; close twice is harmless', (t) => {
    const s = openStore(dbIn(tempDir(t)));
    s.close();
    s.close();
    assert.throws(() => s.recordSample(sample(T0)), /store is closed/);
  });

  it('a path that cannot be a file is a clear error', (t) => {
    assert.throws(() => openStore(''), /storage\.path must be a non-empty file path/);
    assert.throws(() => openStore(tempDir(t)), /cannot open database/);
  });
});
