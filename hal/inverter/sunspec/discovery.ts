/**
 * SunSpec discovery: find the `SunS` marker, walk the model chain to the end model, and record where
 * each model sits. Tolerates any base, any model order, unknown models and the legacy model 1 of L = 65.
 */
import { ModbusError } from './transport.ts';

/** Candidate bases, in the order SunSpec clients probe them (0-based PDU addresses). */
export const DEFAULT_BASES = [40000, 0, 50000] as const;
/** 'SunS' as two registers. */
export const SUNS_MARKER = [0x5375, 0x6e53] as const;
export const END_MODEL_ID = 0xffff;
/** A chain longer than this is taken as a device that never ends it. */
const MAX_MODELS = 200;

export interface DiscoveredModel {
  id: number;
  /** Address of the model's ID register. */
  address: number;
  /** L as the device reports it. */
  length: number;
}

export interface DeviceMap {
  base: number;
  models: DiscoveredModel[];
}

export type ReadFn = (address: number, count: number) => Promise<number[]>;

export class DiscoveryError extends Error {
  constructor(message: string, cause?: unknown) {
    super(message, { cause });
    this.name = 'DiscoveryError';
  }
}

/**
 * Probe the bases (the configured one only, when given) and walk the chain.
 * Rejects with a {@link DiscoveryError} saying what was tried and what was found.
 */
export async function discover(read: ReadFn, opts: { base?: number | null } = {}): Promise<DeviceMap> {
  const bases = opts.base !== undefined && opts.base !== null ? [opts.base] : [...DEFAULT_BASES];
  const tried: string[] = [];
  let base: number | undefined;
  for (const b of bases) {
    try {
      const r = await read(b, 2);
      if (r[0] === SUNS_MARKER[0] && r[1] === SUNS_MARKER[1]) {
        base = b;
        break;
      }
      tried.push(`${b}: ${hex(r[0])} ${hex(r[1])}`);
    } catch (e) {
      // no answer at all is not a missing marker: report the communication failure as it is
      if (e instanceof ModbusError && e.code !== 'exception') throw e;
      tried.push(`${b}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  if (base === undefined) throw new DiscoveryError(`no SunSpec 'SunS' marker found (tried ${tried.join('; ')})`);

  const models: DiscoveredModel[] = [];
  let addr = base + 2;
  for (let i = 0; i <= MAX_MODELS; i++) {
    if (i === MAX_MODELS) throw new DiscoveryError(`SunSpec model chain at base ${base} has more than ${MAX_MODELS} models without an end model`);
    if (addr > 0xffff) throw new DiscoveryError(`SunSpec model chain at base ${base} runs past register 65535 without an end model`);
    let id: number;
    let length: number | undefined;
    try {
      const hdr = await read(addr, Math.min(2, 0x10000 - addr));
      id = hdr[0];
      length = hdr[1];
    } catch (e) {
      if (!(e instanceof ModbusError && e.code === 'exception')) throw wrap(e, addr);
      // some devices return nothing after the end model's ID; ask for the ID alone
      try {
        id = (await read(addr, 1))[0];
      } catch (e2) {
        throw wrap(e2, addr);
      }
    }
    if (id === END_MODEL_ID) break;
    if (length === undefined) {
      try {
        length = (await read(addr + 1, 1))[0];
      } catch (e) {
        throw wrap(e, addr + 1);
      }
    }
    if (id === 0 && length === 0) throw new DiscoveryError(`SunSpec model chain at base ${base} breaks at ${addr}: ID 0, L 0 (no end model 0xFFFF)`);
    models.push({ id, address: addr, length });
    addr += 2 + length;
  }
  return { base, models };
}

function wrap(e: unknown, addr: number): Error {
  if (e instanceof ModbusError && e.code !== 'exception') return e;
  return new DiscoveryError(`SunSpec model chain unreadable at register ${addr}: ${e instanceof Error ? e.message : String(e)}`, e);
}

function hex(n: number | undefined): string {
  return n === undefined ? '-' : `0x${n.toString(16).padStart(4, '0')}`;
}

export function findModel(map: DeviceMap, id: number): DiscoveredModel | undefined {
  return map.models.find((m) => m.id === id);
}
