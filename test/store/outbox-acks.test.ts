/**
 * Acknowledged rows leave the file with the next transaction that enqueues (fewer repeats after a
 * crash, no extra commit), and only once it commits.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { openStore } from '../../src/store/index.ts';
import { dbIn, responseMsg, T0, tempDir } from './helpers.ts';

it('acknowledged rows are deleted with the next enqueue, and stay acknowledged when that transaction rolls back', (t) => {
  const path = dbIn(tempDir(t));
  const s = openStore(path);
  const [a] = s.outbox.enqueue([responseMsg('a', 'accepted')], T0);
  s.outbox.ack(a.rowId!);
  assert.equal(s.outbox.size(), 0);
  assert.throws(() =>
    s.atomically(() => {
      s.outbox.enqueue([responseMsg('b', 'accepted')], T0 + 1);
      throw new Error('tick failed');
    }),
  );
  assert.equal(s.outbox.size(), 0, 'the acknowledged row came back after the rollback');
  assert.deepEqual(s.outbox.pending(10), []);
  s.outbox.enqueue([responseMsg('c', 'accepted')], T0 + 2);
  assert.deepEqual(s.outbox.pending(10).map((m) => m.payload.id), ['c']);
  // killed now: the acknowledged row is not sent again after the restart
  s.db.close();
  const again = openStore(path);
  assert.deepEqual(again.outbox.pending(10).map((m) => m.payload.id), ['c']);
  again.close();
});
