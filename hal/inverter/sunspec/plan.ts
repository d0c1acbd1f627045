/**
 * Read planning: cover the registers a tick needs in as few requests as the 125-register limit allows.
 */
import { MAX_READ_REGISTERS } from './codec.ts';

export interface RegisterSpan {
  address: number;
  count: number;
}

/**
 * Merge spans into reads of at most `max` registers. Each span is kept whole (a span holds values with
 * their scale factors, which must come from one read); the registers between two merged spans are read
 * too, which is cheaper on a bus than another request. Spans longer than `max` are cut into pieces.
 * Greedy over spans sorted by address, which gives the fewest reads for whole spans.
 */
export function planReads(spans: readonly RegisterSpan[], max = MAX_READ_REGISTERS): RegisterSpan[] {
  const pieces: RegisterSpan[] = [];
  for (const s of spans) {
    if (s.count <= 0) continue;
    for (let a = s.address; a < s.address + s.count; a += max) pieces.push({ address: a, count: Math.min(max, s.address + s.count - a) });
  }
  pieces.sort((x, y) => x.address - y.address);
  const out: RegisterSpan[] = [];
  for (const p of pieces) {
    const cur = out[out.length - 1];
    const end = p.address + p.count;
    if (cur && end - cur.address <= max) {
      cur.count = Math.max(cur.count, end - cur.address);
    } else {
      out.push({ ...p });
    }
  }
  return out;
}
