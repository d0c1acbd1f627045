/**
 * The codec against the exact SunSpec point tables (test/fixtures/sunspec/points/*.csv, generated from the
 * same model files): every point's offset, type, size and scale factor; every type; every sentinel;
 * scale factors of both signs; the model's declared enum and SF ranges.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import {
  decodePoints,
  decodeRaw,
  encodePoint,
  encodeRaw,
  KNOWN_MODEL_IDS,
  modelLayout,
  rawRange,
  requireLayout,
  scale,
  sentinelRegs,
  spanOf,
  bitNames,
  type PointType,
} from '../../hal/inverter/sunspec/codec.ts';
import { planReads } from '../../hal/inverter/sunspec/plan.ts';

interface Row {
  offset: number;
  name: string;
  type: PointType;
  size: number;
  sf: string;
  access: string;
  symbols: string;
}

const dir = new URL('../fixtures/sunspec/points/', import.meta.url);

function table(id: number): Row[] {
  const lines = readFileSync(new URL(`points_${id}.csv`, dir), 'utf8').trim().split('\n').slice(2);
  return lines
    .map((l) => l.split(','))
    .filter((c) => !c[1].startsWith('[group'))
    .map((c) => ({ offset: Number(c[0]), name: c[1], type: c[2] as PointType, size: Number(c[3]), sf: c[5], access: c[6], symbols: c[11] }));
}

const tables = readdirSync(dir)
  .map((f) => /^points_(\d+)\.csv$/.exec(f)?.[1])
  .filter((x): x is string => !!x)
  .map(Number)
  .sort((a, b) => a - b);

test('every model with a point table has a definition, and the other way round', () => {
  assert.deepEqual(tables, [...KNOWN_MODEL_IDS].sort((a, b) => a - b));
});

for (const id of tables) {
  test(`model ${id}: layout matches the point table (offset, type, size, SF, access) for every point`, () => {
    const layout = requireLayout(id);
    const rows = table(id);
    assert.equal(layout.points.length, rows.length);
    for (const [i, row] of rows.entries()) {
      const lp = layout.points[i];
      assert.equal(lp.name, row.name, `point ${i}`);
      assert.equal(lp.offset, row.offset, `${row.name} offset`);
      assert.equal(lp.def.type, row.type, `${row.name} type`);
      assert.equal(lp.def.size, row.size, `${row.name} size`);
      assert.equal(lp.def.sf ?? '', row.sf, `${row.name} sf`);
      assert.equal(lp.def.access ?? 'R', row.access || 'R', `${row.name} access`);
    }
    const last = rows[rows.length - 1];
    assert.equal(layout.length, last.offset + last.size - 2, 'L');
  });

  test(`model ${id}: every point's "not implemented" sentinel decodes to undefined, never a number`, () => {
    const layout = requireLayout(id);
    const regs = new Map<number, number>();
    for (const lp of layout.points) sentinelRegs(lp.def.type, lp.def.size).forEach((r, i) => regs.set(lp.offset + i, r));
    const names = layout.points.filter((p) => p.offset >= 2).map((p) => p.name);
    const d = decodePoints(layout, (o) => regs.get(o), names);
    for (const n of names) assert.equal(d.values[n], undefined, n);
    assert.deepEqual(d.issues, []);
  });

  test(`model ${id}: every point round-trips a value through encode and decode with its scale factor`, () => {
    const layout = requireLayout(id);
    const regs = new Map<number, number>();
    const expect: Record<string, number | string> = {};
    const sfs = new Set(layout.points.filter((p) => p.def.sf).map((p) => p.def.sf!));
    let k = 0;
    for (const lp of layout.points) {
      if (lp.offset < 2 || lp.def.type === 'pad') continue;
      let v: number | string;
      if (lp.def.type === 'sunssf') v = sfs.has(lp.name) ? ((k++ % 5) - 2) : 0;
      else if (lp.def.type === 'string') v = `${lp.name}-x`.slice(0, lp.def.size * 2);
      else if (lp.def.type.startsWith('enum')) v = lp.def.symbols?.[lp.def.symbols.length - 1].value ?? 1;
      else if (lp.def.type.startsWith('bitfield')) v = 0b101;
      else if (lp.def.type === 'int16' || lp.def.type === 'int32') v = -1234;
      else v = 4321;
      expect[lp.name] = v;
      encodeRaw(lp.def.type, v, lp.def.size).forEach((r, i) => regs.set(lp.offset + i, r));
    }
    const names = Object.keys(expect);
    const d = decodePoints(layout, (o) => regs.get(o), names);
    assert.deepEqual(d.issues, []);
    for (const n of names) {
      const lp = layout.byName.get(n)!;
      const raw = expect[n];
      const want = lp.def.sf && typeof raw === 'number' ? scale(raw, expect[lp.def.sf] as number) : raw;
      assert.equal(d.values[n], want, n);
      if (lp.def.sf && typeof raw === 'number') {
        // and back: encoding the scaled value with the same SF gives the same registers
        assert.deepEqual(encodePoint(lp, want as number, expect[lp.def.sf] as number), encodeRaw(lp.def.type, raw, lp.def.size), `${n} re-encode`);
      }
    }
  });
}

test('every SunSpec type: raw decode of typical, extreme and sentinel values (high word first)', () => {
  const cases: [PointType, number[], number | string | undefined][] = [
    ['int16', [0x0001], 1],
    ['int16', [0xffff], -1],
    ['int16', [0x7fff], 32767],
    ['int16', [0x8001], -32767],
    ['int16', [0x8000], undefined],
    ['uint16', [0xfffe], 65534],
    ['uint16', [0xffff], undefined],
    ['acc16', [0x0005], 5],
    ['acc16', [0x0000], undefined],
    ['enum16', [0x0003], 3],
    ['enum16', [0xffff], undefined],
    ['bitfield16', [0x8001], 0x8001],
    ['bitfield16', [0xffff], undefined],
    ['sunssf', [0xfffe], -2],
    ['sunssf', [0x0003], 3],
    ['sunssf', [0x8000], undefined],
    ['int32', [0xffff, 0xfffe], -2],
    ['int32', [0x0001, 0x0000], 65536],
    ['int32', [0x8000, 0x0000], undefined],
    ['uint32', [0x0001, 0x0002], 65538],
    ['uint32', [0xffff, 0xffff], undefined],
    ['acc32', [0x0000, 0x0007], 7],
    ['acc32', [0x0000, 0x0000], undefined],
    ['enum32', [0x0000, 0x0002], 2],
    ['enum32', [0xffff, 0xffff], undefined],
    ['bitfield32', [0x0001, 0x0010], 0x10010],
    ['bitfield32', [0xffff, 0xffff], undefined],
    ['int64', [0xffff, 0xffff, 0xffff, 0xfffb], -5],
    ['int64', [0x8000, 0, 0, 0], undefined],
    ['uint64', [0, 0, 0x0001, 0x0000], 65536],
    ['uint64', [0, 0x0001, 0, 0], 2 ** 32],
    ['uint64', [0xffff, 0xffff, 0xffff, 0xffff], undefined],
    ['acc64', [0, 0, 0, 9], 9],
    ['acc64', [0, 0, 0, 0], undefined],
    ['float32', [0x4048, 0x0000], 3.125],
    ['float32', [0x7fc0, 0x0000], undefined],
    ['string', [0x5375, 0x6e53], 'SunS'],
    ['string', [0x4142, 0x4300, 0x0000], 'ABC'],
    ['string', [0x0000, 0x0000], undefined],
    ['pad', [0x0000], undefined],
    ['pad', [0x8000], undefined],
  ];
  for (const [type, regs, want] of cases) assert.equal(decodeRaw(type, regs), want, `${type} ${regs.map((r) => r.toString(16)).join(' ')}`);
});

test('every SunSpec type: encode gives back the same registers, and refuses what does not fit', () => {
  const types: PointType[] = ['int16', 'uint16', 'acc16', 'enum16', 'bitfield16', 'sunssf', 'int32', 'uint32', 'acc32', 'enum32', 'bitfield32', 'int64', 'uint64', 'acc64'];
  for (const t of types) {
    const [lo, hi] = rawRange(t);
    for (const v of [lo, hi, Math.max(lo, Math.min(hi, 1))]) assert.equal(decodeRaw(t, encodeRaw(t, v)), v, `${t} ${v}`);
    assert.throws(() => encodeRaw(t, hi + 1), RangeError, `${t} above range`);
    assert.throws(() => encodeRaw(t, 1.5), RangeError, `${t} fraction`);
    assert.deepEqual(encodeRaw(t, undefined), sentinelRegs(t, encodeRaw(t, lo).length), `${t} sentinel`);
  }
  assert.deepEqual(encodeRaw('string', 'SunS', 3), [0x5375, 0x6e53, 0]);
  assert.throws(() => encodeRaw('string', 'too long', 2), RangeError);
});

test('scale factors of both signs, applied from the same read; an unimplemented or invalid SF hides the value', () => {
  const l = requireLayout(701);
  const w = l.byName.get('W')!.offset;
  const wsf = l.byName.get('W_SF')!.offset;
  const at = (wRaw: number, sfRaw: number) => (o: number) => (o === w ? wRaw : o === wsf ? sfRaw : undefined);
  assert.equal(decodePoints(l, at(12345, 0xfffe), ['W']).values.W, 123.45);
  assert.equal(decodePoints(l, at(0xffce, 0xffff), ['W']).values.W, -5); // -50 x 10^-1
  assert.equal(decodePoints(l, at(-32 & 0xffff, 2), ['W']).values.W, -3200);
  assert.equal(decodePoints(l, at(7, 3), ['W']).values.W, 7000);
  assert.equal(decodePoints(l, at(7, 0x8000), ['W']).values.W, undefined, 'SF not implemented');
  const bad = decodePoints(l, at(7, 11), ['W']);
  assert.equal(bad.values.W, undefined, 'SF out of range');
  assert.equal(bad.issues.length, 1);
  assert.match(bad.issues[0].reason, /scale factor 11 is outside -10\.\.10/);
  assert.equal(decodePoints(l, at(0x8000, 0), ['W']).values.W, undefined, 'value not implemented');
  // encode rounds to the point's resolution
  const wl = l.byName.get('W')!;
  assert.deepEqual(encodePoint(wl, -1234.56, -1), [(-12346) & 0xffff]);
  assert.deepEqual(encodePoint(wl, 15000, 1), [1500]);
});

test('an enum value the model does not declare is reported as an issue with the point and offset', () => {
  const l = requireLayout(701);
  const off = l.byName.get('InvSt')!.offset;
  const d = decodePoints(l, (o) => (o === off ? 42 : undefined), ['InvSt']);
  assert.equal(d.values.InvSt, 42);
  assert.equal(d.issues.length, 1);
  assert.deepEqual({ point: d.issues[0].point, offset: d.issues[0].offset, model: d.issues[0].model }, { point: 'InvSt', offset: 4, model: 701 });
  assert.match(d.issues[0].reason, /not one of 0 OFF/);
});

test('bitfield names come from the model symbols; unnamed bits are kept by number', () => {
  const alrm = requireLayout(701).byName.get('Alrm')!;
  assert.deepEqual(bitNames(alrm, (1 << 4) | (1 << 11) | (1 << 16) | (1 << 30)), ['GRID_DISCONNECT', 'AC_UNDER_VOLT', 'MANUFACTURER_ALRM', 'BIT30']);
  assert.deepEqual(bitNames(alrm, undefined), []);
});

test('sub-group points are named Group.Point and laid out after the top-level points', () => {
  const l = requireLayout(704);
  assert.equal(l.byName.get('PFWInj.PF')!.offset, 59);
  assert.equal(l.byName.get('PFWAbsRvrt.Ext')!.offset, 66);
  assert.equal(modelLayout(64001), undefined);
});

test('spans include each value with its scale factor; reads are planned within 125 registers', () => {
  const l = requireLayout(701);
  assert.deepEqual(spanOf(l, ['W', 'InvSt']), [4, 117]);
  assert.deepEqual(planReads([{ address: 100, count: 10 }, { address: 0, count: 5 }]), [{ address: 0, count: 110 }]);
  assert.deepEqual(planReads([{ address: 0, count: 100 }, { address: 120, count: 10 }]), [{ address: 0, count: 100 }, { address: 120, count: 10 }]);
  assert.deepEqual(planReads([{ address: 0, count: 300 }]), [{ address: 0, count: 125 }, { address: 125, count: 125 }, { address: 250, count: 50 }]);
  assert.deepEqual(planReads([{ address: 10, count: 5 }, { address: 12, count: 2 }]), [{ address: 10, count: 5 }]);
  for (const b of planReads([{ address: 0, count: 60 }, { address: 70, count: 60 }, { address: 130, count: 90 }])) assert.ok(b.count <= 125);
});
