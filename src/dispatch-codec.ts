/** Dispatch body validation shared by the scenario runner (the uplink adds transport-level checks). */
import type { DispatchRequest } from './control/types.ts';

export type ParsedBody = { ok: true; request: DispatchRequest; body: string } | { ok: false; field: string; message: string };

const KEYS = new Set(['id', 'powerW', 'start', 'durationS', 'expiresAt']);

export function parseDispatchBody(o: Record<string, unknown>, nowMs: number): ParsedBody {
  void nowMs;
  for (const k of Object.keys(o)) if (!KEYS.has(k)) return { ok: false, field: k, message: 'unknown key' };
  if (typeof o.id !== 'string' || !/^[A-Za-z0-9._:-]{1,64}$/.test(o.id)) return { ok: false, field: 'id', message: 'must be 1-64 characters of [A-Za-z0-9._:-]' };
  if (typeof o.powerW !== 'number' || !Number.isFinite(o.powerW) || Math.abs(o.powerW) > 1_000_000) return { ok: false, field: 'powerW', message: 'must be a finite number within ±1000000' };
  if (typeof o.durationS !== 'number' || !Number.isInteger(o.durationS) || o.durationS < 1 || o.durationS > 86400) return { ok: false, field: 'durationS', message: 'must be an integer 1-86400' };
  const time = (k: 'start' | 'expiresAt'): number | undefined | null => {
    if (o[k] === undefined) return undefined;
    const ms = typeof o[k] === 'string' ? Date.parse(o[k] as string) : NaN;
    return Number.isNaN(ms) ? null : ms;
  };
  const startMs = time('start');
  if (startMs === null) return { ok: false, field: 'start', message: 'must be an ISO 8601 date-time' };
  const expiresAtMs = time('expiresAt');
  if (expiresAtMs === null) return { ok: false, field: 'expiresAt', message: 'must be an ISO 8601 date-time' };
  const request: DispatchRequest = { id: o.id, powerW: o.powerW, durationS: o.durationS, startMs, expiresAtMs };
  const body = JSON.stringify(Object.fromEntries(Object.entries(o).sort(([a], [b]) => a.localeCompare(b))));
  return { ok: true, request, body };
}
