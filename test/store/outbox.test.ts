import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { openStore } from '../../src/store/index.ts';
import { dbIn, ledgerMsg, record, responseMsg, stateMsg, T0, tempDir } from './helpers.ts';

describe('outbox', () => {
  it('stamps ts and seq into envelope and payload, stores only QoS 1, oldest first', (t) => {
    const s = openStore(dbIn(tempDir(t)));
    const q = s.outbox.enqueue(
      [{ topic: 'state', payload: { mode: 'idle' }, qos: 0, retain: false, class: 'state' }, { topic: 'event', payload: { kind: 'x' }, qos: 1, retain: false, class: 'event' }],
      T0,
    );
    assert.equal(q.length, 2);
    assert.equal(q[0].ts, '2026-11-23T16:00:00Z');
    assert.equal(q[0].payload.seq, q[0].seq);
    assert.equal(q[1].seq, q[0].seq + 1);
    assert.equal(q[0].rowId, undefined);
    assert.equal(q[1].rowId, q[1].seq);
    assert.equal(s.outbox.size(), 1);
    const p = s.outbox.pending(10);
    assert.deepEqual(p.map((m) => m.payload), [{ kind: 'x', ts: '2026-11-23T16:00:00Z', seq: q[1].seq }]);
    s.close();
  });

  it('seq is strictly increasing across restarts, also when blocks run out', (t) => {
    const path = dbIn(tempDir(t));
    let last = 0;
    for (let run = 0; run < 5; run++) {
      const s = openStore(path, { seqBlock: 3 });
      for (let i = 0; i < 7; i++) {
        const [m] = s.outbox.enqueue([{ topic: 'state', payload: {}, qos: 0, retain: false, class: 'state' }], T0 + i);
        assert.ok(m.seq > last, `seq ${m.seq} after ${last}`);
        last = m.seq;
      }
      // no close on odd runs: as after kill -9
      if (run % 2 === 0) s.close();
      else s.db.close();
    }
  });

  it('ack removes a row at once from pending and from the file with the next batch', (t) => {
    const path = dbIn(tempDir(t));
    const s = openStore(path);
    const q = s.outbox.enqueue([stateMsg(1), stateMsg(2), stateMsg(3)], T0);
    s.outbox.ack(q[1].rowId!);
    s.outbox.ack(q[1].rowId!); // twice is harmless
    s.outbox.ack(99999); // unknown is harmless
    assert.equal(s.outbox.size(), 2);
    assert.deepEqual(s.outbox.pending(10).map((m) => m.seq), [q[0].seq, q[2].seq]);
    assert.deepEqual(s.outbox.pending(1).map((m) => m.seq), [q[0].seq]);
    s.close();
    const again = openStore(path);
    assert.deepEqual(again.outbox.pending(10).map((m) => m.seq), [q[0].seq, q[2].seq]);
    again.close();
  });

  it('an ack not yet written is redelivered after a crash (at least once)', (t) => {
    const path = dbIn(tempDir(t));
    const s = openStore(path);
    const q = s.outbox.enqueue([stateMsg(1)], T0);
    s.outbox.ack(q[0].rowId!);
    s.db.close(); // killed before the batch
    const again = openStore(path);
    assert.deepEqual(again.outbox.pending(10).map((m) => m.seq), [q[0].seq]);
    again.close();
  });

  it('when full, drops the oldest state rows first, then flex/status/event, never ledger or response', (t) => {
    const s = openStore(dbIn(tempDir(t)), { storage: { outboxMaxRows: 5 } });
    const r = record('d1', { status: 'completed', exportedWh: 1 });
    s.outbox.enqueue([responseMsg('d1', 'accepted'), stateMsg(1), { topic: 'event', payload: {}, qos: 1, retain: false, class: 'event' }, stateMsg(2)], T0);
    s.outbox.enqueue([stateMsg(3), stateMsg(4)], T0 + 1);
    assert.equal(s.outbox.size(), 5);
    assert.deepEqual(s.outbox.pending(10).map((m) => m.class), ['response', 'event', 'state', 'state', 'state']);
    s.outbox.enqueue([responseMsg('d2', 'accepted'), ledgerMsg(r), responseMsg('d3', 'accepted'), responseMsg('d4', 'accepted')], T0 + 2);
    const classes = s.outbox.pending(100).map((m) => m.class);
    assert.equal(classes.filter((c) => c === 'state').length, 0);
    assert.equal(classes.filter((c) => c === 'event').length, 0);
    assert.equal(classes.filter((c) => c === 'response').length, 4);
    assert.equal(classes.filter((c) => c === 'ledger').length, 1);
    // ledger and response alone exceed the bound: kept
    assert.equal(s.outbox.size(), 5);
    s.outbox.enqueue([responseMsg('d5', 'accepted')], T0 + 3);
    assert.equal(s.outbox.size(), 6);
    assert.deepEqual(s.outbox.dropped, { state: 4, event: 1 });
    s.close();
  });

  it('bad messages are refused with what is wrong', (t) => {
    const s = openStore(dbIn(tempDir(t)));
    assert.throws(() => s.outbox.enqueue([{ topic: '', payload: {}, qos: 1, retain: false, class: 'event' }], T0), /topic must be a non-empty string/);
    assert.throws(() => s.outbox.enqueue([{ topic: 'x', payload: {}, qos: 2 as 1, retain: false, class: 'event' }], T0), /qos must be 0 or 1/);
    assert.throws(() => s.outbox.enqueue([{ topic: 'x', payload: {}, qos: 1, retain: false, class: 'nope' as 'event' }], T0), /unknown class/);
    assert.throws(() => s.outbox.enqueue([{ topic: 'ledger', payload: {}, qos: 0, retain: false, class: 'ledger' }], T0), /ledger messages must be QoS 1/);
    assert.throws(() => s.outbox.enqueue([stateMsg(1)], Number.NaN), /nowMs/);
    assert.throws(() => s.outbox.pending(-1), /limit/);
    assert.equal(s.outbox.size(), 0);
    s.close();
  });

  it('bad storage settings are named', (t) => {
    const dir = tempDir(t);
    assert.throws(() => openStore(dbIn(dir), { storage: { outboxMaxRows: 0 } }), /storage\.outboxMaxRows must be a positive integer/);
    assert.throws(() => openStore(dbIn(dir), { storage: { sampleFlushS: -1 } }), /storage\.sampleFlushS/);
    assert.throws(() => openStore(dbIn(dir), { timezone: 'Mars/Olympus' }), /not an IANA time zone/);
  });
});
