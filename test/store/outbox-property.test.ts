import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { MessageClass } from '../../src/contract.ts';
import { openStore } from '../../src/store/index.ts';
import { dbIn, T0, tempDir } from './helpers.ts';

const classes: MessageClass[] = ['state', 'flex', 'status', 'event', 'response', 'ledger'];
type Op = { kind: 'enqueue'; cls: MessageClass[]; qos: (0 | 1)[] } | { kind: 'ack'; pick: number } | { kind: 'restart'; clean: boolean };

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('enqueue' as const), cls: fc.array(fc.constantFrom(...classes), { minLength: 1, maxLength: 4 }), qos: fc.array(fc.constantFrom(0 as const, 1 as const), { minLength: 4, maxLength: 4 }) }),
  fc.record({ kind: fc.constant('ack' as const), pick: fc.nat(50) }),
  fc.record({ kind: fc.constant('restart' as const), clean: fc.boolean() }),
);

describe('outbox properties', () => {
  it('seq strictly increasing across restarts; ledger and response rows never dropped; pending in seq order', (t) => {
    const dir = tempDir(t);
    let run = 0;
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 60 }), (ops) => {
        const path = dbIn(dir, `p${run++}.db`);
        const open = () => openStore(path, { storage: { outboxMaxRows: 8 }, seqBlock: 4 });
        let s = open();
        let lastSeq = 0;
        const mustKeep = new Set<number>();
        try {
          for (const o of ops) {
            if (o.kind === 'enqueue') {
              const msgs = o.cls.map((c, i) => ({ topic: c, payload: { i }, qos: c === 'ledger' || c === 'response' ? (1 as const) : o.qos[i], retain: false, class: c }));
              for (const q of s.outbox.enqueue(msgs, T0)) {
                assert.ok(q.seq > lastSeq, `seq ${q.seq} after ${lastSeq}`);
                lastSeq = q.seq;
                if (q.class === 'ledger' || q.class === 'response') mustKeep.add(q.seq);
              }
            } else if (o.kind === 'ack') {
              const p = s.outbox.pending(100);
              if (p.length) {
                const row = p[o.pick % p.length];
                s.outbox.ack(row.rowId!);
                mustKeep.delete(row.seq);
              }
            } else {
              if (o.clean) s.close();
              else s.db.close();
              s = open();
              // unflushed acks are redelivered after a kill: they count as kept again
            }
            const pending = s.outbox.pending(1000);
            const seqs = pending.map((m) => m.seq);
            assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b));
            assert.equal(pending.length, s.outbox.size());
            for (const k of mustKeep) assert.ok(seqs.includes(k), `kept row ${k} missing`);
            const droppable = pending.filter((m) => m.class !== 'ledger' && m.class !== 'response').length;
            if (pending.length > 8) assert.equal(droppable, 0, 'over the bound while droppable rows remain');
          }
        } finally {
          s.close();
        }
      }),
      { numRuns: 150 },
    );
  });
});
