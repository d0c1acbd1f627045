/**
 * SunSpec codec driven by the model definitions in ./models (verbatim SunSpec JSON).
 *
 * Lays each model out as register offsets from its ID register, decodes every SunSpec point type with its
 * "not implemented" sentinel (which becomes `undefined`, never a number), applies scale factors, and
 * encodes values for writes. No I/O: the driver, the simulated server and the tests share it.
 */
import { readFileSync } from 'node:fs';

export type PointType =
  | 'int16' | 'uint16' | 'int32' | 'uint32' | 'int64' | 'uint64'
  | 'acc16' | 'acc32' | 'acc64'
  | 'enum16' | 'enum32' | 'bitfield16' | 'bitfield32'
  | 'sunssf' | 'string' | 'pad' | 'float32' | 'count';

export interface Symbol_ {
  name: string;
  value: number;
}

/** A point as the model JSON declares it (the fields the codec uses). */
export interface PointDef {
  name: string;
  type: PointType;
  size: number;
  sf?: string;
  units?: string;
  access?: 'R' | 'RW';
  mandatory?: 'M' | 'O';
  static?: 'S' | 'D';
  symbols?: Symbol_[];
  value?: number | string;
}

interface GroupDef {
  name: string;
  label?: string;
  type: string;
  count?: number | string;
  points: PointDef[];
  groups?: GroupDef[];
}

/** A point placed in its model: `offset` is in registers from the model's ID register (ID = 0, L = 1). */
export interface LaidPoint {
  /** Point name; points of sub-groups are `Group.Point` (e.g. `PFWInj.PF`). */
  name: string;
  offset: number;
  def: PointDef;
}

export interface ModelLayout {
  id: number;
  /** L as the model defines it (registers after ID and L). */
  length: number;
  label: string;
  points: LaidPoint[];
  byName: Map<string, LaidPoint>;
}

/** Models this package carries definitions for. */
export const KNOWN_MODEL_IDS = [1, 101, 102, 103, 124, 201, 202, 203, 204, 211, 212, 213, 214, 701, 702, 703, 704, 713, 802] as const;

/** Largest register count one read may ask for (Modbus FC 3). */
export const MAX_READ_REGISTERS = 125;
/** Largest register count one write may carry (Modbus FC 16). */
export const MAX_WRITE_REGISTERS = 123;

/** Scale factors outside this range are not valid SunSpec exponents (the spec allows -10..10). */
export const SF_MIN = -10;
export const SF_MAX = 10;

const layouts = new Map<number, ModelLayout>();

/** Lay out a model definition: a group's points first, then its sub-groups, in order (pysunspec2 rule). */
export function layoutModel(json: { id: number; group: GroupDef }): ModelLayout {
  const points: LaidPoint[] = [];
  let offset = 0;
  // the top group's points carry no prefix; a sub-group's are named Group.Point (Group[n].Point when repeated)
  const walk = (g: GroupDef, path: string | null): void => {
    const count = g.count ?? 1;
    if (typeof count !== 'number') throw new Error(`model ${json.id}: group ${g.name} repeats by point ${count}, which this codec does not lay out`);
    for (let i = 0; i < count; i++) {
      const p = path === null ? '' : count > 1 ? `${path}${g.name}[${i + 1}].` : `${path}${g.name}.`;
      for (const pt of g.points) {
        points.push({ name: p + pt.name, offset, def: pt });
        offset += pt.size;
      }
      for (const sub of g.groups ?? []) walk(sub, p);
    }
  };
  walk(json.group, null);
  const top = json.group;
  const byName = new Map(points.map((p) => [p.name, p]));
  return { id: json.id, length: offset - 2, label: top.label ?? top.name, points, byName };
}

/** The layout of a known model, loaded from ./models on first use; undefined for models we carry no file for. */
export function modelLayout(id: number): ModelLayout | undefined {
  const cached = layouts.get(id);
  if (cached) return cached;
  if (!(KNOWN_MODEL_IDS as readonly number[]).includes(id)) return undefined;
  const json = JSON.parse(readFileSync(new URL(`./models/model_${id}.json`, import.meta.url), 'utf8'));
  const l = layoutModel(json);
  layouts.set(id, l);
  return l;
}

export function requireLayout(id: number): ModelLayout {
  const l = modelLayout(id);
  if (!l) throw new Error(`no definition for SunSpec model ${id}`);
  return l;
}

// ---------------------------------------------------------------------------------------------
// Raw values

/** Registers each fixed-size type occupies. */
export function typeSize(type: PointType): number | undefined {
  switch (type) {
    case 'int16': case 'uint16': case 'acc16': case 'enum16': case 'bitfield16': case 'sunssf': case 'pad': case 'count':
      return 1;
    case 'int32': case 'uint32': case 'acc32': case 'enum32': case 'bitfield32': case 'float32':
      return 2;
    case 'int64': case 'uint64': case 'acc64':
      return 4;
    default:
      return undefined;
  }
}

function toBig(regs: readonly number[], n: number): bigint {
  let v = 0n;
  for (let i = 0; i < n; i++) v = (v << 16n) | BigInt(regs[i] & 0xffff);
  return v;
}

/**
 * Decode one point's registers (high word first) to its raw value: a number, a string, or `undefined`
 * for the type's "not implemented" sentinel (pysunspec2 mb.py).
 */
export function decodeRaw(type: PointType, regs: readonly number[]): number | string | undefined {
  const r0 = regs[0] & 0xffff;
  switch (type) {
    case 'int16':
    case 'sunssf':
      return r0 === 0x8000 ? undefined : r0 >= 0x8000 ? r0 - 0x10000 : r0;
    case 'uint16':
    case 'enum16':
    case 'bitfield16':
      return r0 === 0xffff ? undefined : r0;
    case 'count':
      return r0;
    case 'acc16':
      return r0 === 0 ? undefined : r0;
    case 'pad':
      return undefined;
    case 'int32': {
      const v = ((r0 << 16) | (regs[1] & 0xffff)) >>> 0;
      return v === 0x80000000 ? undefined : v >= 0x80000000 ? v - 0x100000000 : v;
    }
    case 'uint32':
    case 'enum32':
    case 'bitfield32': {
      const v = ((r0 << 16) | (regs[1] & 0xffff)) >>> 0;
      return v === 0xffffffff ? undefined : v;
    }
    case 'acc32': {
      const v = ((r0 << 16) | (regs[1] & 0xffff)) >>> 0;
      return v === 0 ? undefined : v;
    }
    case 'float32': {
      const v = ((r0 << 16) | (regs[1] & 0xffff)) >>> 0;
      if (v === 0x7fc00000) return undefined;
      const b = Buffer.alloc(4);
      b.writeUInt32BE(v);
      const f = b.readFloatBE(0);
      return Number.isNaN(f) ? undefined : f;
    }
    case 'int64': {
      const v = BigInt.asIntN(64, toBig(regs, 4));
      return v === -(1n << 63n) ? undefined : Number(v);
    }
    case 'uint64': {
      const v = toBig(regs, 4);
      return v === 0xffffffffffffffffn ? undefined : Number(v);
    }
    case 'acc64': {
      const v = toBig(regs, 4);
      return v === 0n ? undefined : Number(v);
    }
    case 'string': {
      let s = '';
      for (const r of regs) s += String.fromCharCode((r >> 8) & 0xff, r & 0xff);
      const nul = s.indexOf('\0');
      const t = (nul >= 0 ? s.slice(0, nul) : s).trimEnd();
      return t.length === 0 ? undefined : t;
    }
    default:
      throw new Error(`unknown SunSpec type ${String(type)}`);
  }
}

/** The registers of a type's "not implemented" sentinel, `size` registers long. */
export function sentinelRegs(type: PointType, size: number): number[] {
  const out = new Array<number>(size).fill(0);
  switch (type) {
    case 'int16': case 'sunssf':
      out[0] = 0x8000; break;
    case 'uint16': case 'enum16': case 'bitfield16':
      out[0] = 0xffff; break;
    case 'int32':
      out[0] = 0x8000; break;
    case 'uint32': case 'enum32': case 'bitfield32':
      out[0] = 0xffff; out[1] = 0xffff; break;
    case 'float32':
      out[0] = 0x7fc0; break;
    case 'int64':
      out[0] = 0x8000; break;
    case 'uint64':
      out.fill(0xffff); break;
    default:
      // acc*, string, pad, count: all zero
      break;
  }
  return out;
}

/** Encode a raw value into `size` registers, high word first; throws when it does not fit the type. */
export function encodeRaw(type: PointType, raw: number | string | undefined, size = typeSize(type) ?? 1): number[] {
  if (raw === undefined) return sentinelRegs(type, size);
  if (type === 'string') {
    const s = String(raw);
    if (s.length > size * 2) throw new RangeError(`string of ${s.length} chars does not fit ${size} registers`);
    const out: number[] = [];
    for (let i = 0; i < size; i++) out.push(((s.charCodeAt(2 * i) || 0) & 0xff) << 8 | ((s.charCodeAt(2 * i + 1) || 0) & 0xff));
    return out;
  }
  if (typeof raw !== 'number' || !Number.isFinite(raw)) throw new RangeError(`${type}: ${String(raw)} is not a finite number`);
  if (type === 'float32') {
    const b = Buffer.alloc(4);
    b.writeFloatBE(raw);
    return [b.readUInt16BE(0), b.readUInt16BE(2)];
  }
  if (!Number.isInteger(raw)) throw new RangeError(`${type}: ${raw} is not an integer`);
  const [lo, hi] = rawRange(type);
  if (raw < lo || raw > hi) throw new RangeError(`${type}: ${raw} is outside ${lo}..${hi}`);
  const n = typeSize(type) ?? 1;
  let v = BigInt.asUintN(16 * n, BigInt(raw));
  const out = new Array<number>(n);
  for (let i = n - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffffn);
    v >>= 16n;
  }
  return out;
}

/** The range a raw value may take without being the sentinel. */
export function rawRange(type: PointType): [number, number] {
  switch (type) {
    case 'int16': return [-32767, 32767];
    case 'sunssf': return [SF_MIN, SF_MAX];
    case 'uint16': case 'enum16': case 'bitfield16': return [0, 0xfffe];
    case 'acc16': return [1, 0xffff];
    case 'count': return [0, 0xffff];
    case 'pad': return [0, 0];
    case 'int32': return [-0x7fffffff, 0x7fffffff];
    case 'uint32': case 'enum32': case 'bitfield32': return [0, 0xfffffffe];
    case 'acc32': return [1, 0xffffffff];
    case 'int64': return [-Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER];
    case 'uint64': return [0, Number.MAX_SAFE_INTEGER];
    case 'acc64': return [1, Number.MAX_SAFE_INTEGER];
    default: return [-Infinity, Infinity];
  }
}

// ---------------------------------------------------------------------------------------------
// Points with scale factors

/** Something wrong with a value the device sent: the point, where it is, and why. */
export interface ValueIssue {
  model: number;
  point: string;
  /** Register offset of the point from the model's ID register. */
  offset: number;
  raw: number | string;
  reason: string;
}

export interface DecodedPoints {
  /** Scaled values by point name; a point that is not implemented (or whose SF is not) is absent. */
  values: Record<string, number | string | undefined>;
  /** Raw values before scaling (enum and bitfield values are the same either way). */
  raws: Record<string, number | string | undefined>;
  issues: ValueIssue[];
}

/** Round away float noise from raw x 10^sf so 1234 x 10^-1 reads 123.4, not 123.40000000000001. */
export function scale(raw: number, sf: number): number {
  if (sf === 0) return raw;
  const v = raw * 10 ** sf;
  return sf < 0 ? Number(v.toFixed(-sf)) : v;
}

/** Check a decoded raw value against what the model declares: enum symbols and SF exponent range. */
export function checkRaw(lp: LaidPoint, raw: number | string): string | undefined {
  const t = lp.def.type;
  if ((t === 'enum16' || t === 'enum32') && lp.def.symbols && lp.def.symbols.length > 0) {
    if (!lp.def.symbols.some((s) => s.value === raw)) return `enum value ${raw} is not one of ${lp.def.symbols.map((s) => `${s.value} ${s.name}`).join(', ')}`;
  }
  if (t === 'sunssf' && typeof raw === 'number' && (raw < SF_MIN || raw > SF_MAX)) return `scale factor ${raw} is outside ${SF_MIN}..${SF_MAX}`;
  return undefined;
}

/**
 * Decode the named points of one model from its registers. `regAt(offset)` gives the register at that
 * offset from the model's ID register, or undefined when it was not read (or lies beyond the device's L).
 * Each value's scale factor comes from the same registers, as SunSpec requires.
 */
export function decodePoints(layout: ModelLayout, regAt: (offset: number) => number | undefined, names: readonly string[]): DecodedPoints {
  const values: Record<string, number | string | undefined> = {};
  const raws: Record<string, number | string | undefined> = {};
  const issues: ValueIssue[] = [];
  const rawOf = (lp: LaidPoint): number | string | undefined => {
    if (lp.name in raws) return raws[lp.name];
    const regs: number[] = [];
    for (let i = 0; i < lp.def.size; i++) {
      const r = regAt(lp.offset + i);
      if (r === undefined) {
        raws[lp.name] = undefined;
        return undefined;
      }
      regs.push(r);
    }
    const raw = decodeRaw(lp.def.type, regs);
    raws[lp.name] = raw;
    if (raw !== undefined) {
      const why = checkRaw(lp, raw);
      if (why) issues.push({ model: layout.id, point: lp.name, offset: lp.offset, raw, reason: why });
    }
    return raw;
  };
  for (const name of names) {
    const lp = layout.byName.get(name);
    if (!lp) throw new Error(`model ${layout.id} has no point ${name}`);
    const raw = rawOf(lp);
    if (raw === undefined || typeof raw === 'string' || !lp.def.sf) {
      values[name] = raw;
      continue;
    }
    const sfPoint = layout.byName.get(lp.def.sf);
    if (!sfPoint) throw new Error(`model ${layout.id}: point ${name} names scale factor ${lp.def.sf}, which the model lacks`);
    const sf = rawOf(sfPoint);
    // a value whose scale factor is not implemented or invalid has no defined magnitude
    values[name] = typeof sf === 'number' && sf >= SF_MIN && sf <= SF_MAX ? scale(raw, sf) : undefined;
  }
  return { values, raws, issues };
}

/** Encode a scaled value of a point for writing, given its scale factor; rounds to the point's resolution. */
export function encodePoint(lp: LaidPoint, value: number | string | undefined, sf = 0): number[] {
  if (value === undefined || typeof value === 'string') return encodeRaw(lp.def.type, value, lp.def.size);
  const raw = lp.def.sf ? Math.round(value / 10 ** sf) : Math.round(value);
  return encodeRaw(lp.def.type, raw, lp.def.size);
}

/** Names of the set bits of a bitfield value, by the point's symbols; unnamed bits appear as `BIT<n>`. */
export function bitNames(lp: LaidPoint, raw: number | undefined): string[] {
  if (raw === undefined) return [];
  const out: string[] = [];
  const bits = lp.def.type === 'bitfield32' ? 32 : 16;
  for (let b = 0; b < bits; b++) {
    if (Math.floor(raw / 2 ** b) % 2 === 1) out.push(lp.def.symbols?.find((s) => s.value === b)?.name ?? `BIT${b}`);
  }
  return out;
}

/** The symbol name of an enum value. */
export function enumName(lp: LaidPoint, raw: number | undefined): string | undefined {
  if (raw === undefined) return undefined;
  return lp.def.symbols?.find((s) => s.value === raw)?.name;
}

/**
 * The smallest offset range [first, endExclusive) covering the named points and their scale factors, or
 * only the scale factors the model does not mark static when those are read once and kept.
 */
export function spanOf(layout: ModelLayout, names: readonly string[], withScaleFactors: 'all' | 'non-static' = 'all'): [number, number] {
  let first = Infinity;
  let end = -Infinity;
  const add = (lp: LaidPoint): void => {
    first = Math.min(first, lp.offset);
    end = Math.max(end, lp.offset + lp.def.size);
  };
  for (const n of names) {
    const lp = layout.byName.get(n);
    if (!lp) throw new Error(`model ${layout.id} has no point ${n}`);
    add(lp);
    const sf = lp.def.sf ? layout.byName.get(lp.def.sf)! : undefined;
    if (sf && (withScaleFactors === 'all' || sf.def.static !== 'S')) add(sf);
  }
  return [first, end];
}
