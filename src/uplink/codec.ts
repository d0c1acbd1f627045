/**
 * Dispatch payload codec (contract §1.1): bytes from the broker in, a validated DispatchCommand or a
 * rejection naming the field out. Pure: no I/O, no clock (time comes in `ctx.nowMs`), so the scenario
 * simulator runs the same validation as the device. Never throws, whatever the bytes.
 */
import type { KeyObject } from 'node:crypto';
import type { DispatchCommand, DispatchRequest, ReplyRoute } from '../control/types.ts';
import { canonicalJson } from './canonical.ts';
import { signedBody, verifySignature, type ReplayMemory } from './signing.ts';

/** Payload versions this device understands (`v`, optional; absent means 1). */
export const SUPPORTED_VERSIONS: readonly number[] = [1];
export const DEFAULT_MAX_PAYLOAD_BYTES = 4096;
export const DEFAULT_MAX_DISPATCH_AGE_S = 300;
export const DEFAULT_MAX_FUTURE_SKEW_S = 60;
/** Largest |powerW| accepted at all; the core then bounds it by every real limit. */
export const MAX_ABS_POWER_W = 1_000_000;
export const MAX_DURATION_S = 86_400;
/** A dispatch may be scheduled at most this far ahead; the core keeps scheduled dispatches in memory. */
export const MAX_START_AHEAD_S = 7 * 86_400;
export const ID_PATTERN = /^[A-Za-z0-9._:-]{1,64}$/;
/** A rejected payload's `id`, when it was a string, is echoed back cut to this many characters. */
export const MAX_ECHOED_ID_CHARS = 128;

const DISPATCH_KEYS = new Set(['id', 'powerW', 'start', 'durationS', 'expiresAt', 'v', 'issuedAt', 'sig']);
const CANCEL_KEYS = new Set(['id', 'cancel', 'v', 'issuedAt', 'sig']);

/**
 * Why a payload was refused. `invalid` names the field; `signature` and `replay` only occur when signed
 * dispatch is on (docs/mqtt.md lists them with the core's reason codes).
 */
export type CodecReason = 'invalid' | 'signature' | 'replay';

export interface ParseContext {
  nowMs: number;
  /** Where the message came from: `device` (own topic) or `group:<name>`. */
  source: string;
  maxBytes?: number;
  /** Set to require an Ed25519 signature on every dispatch. */
  publicKey?: KeyObject;
  /**
   * Oldest `issuedAt` accepted, seconds before now (signed dispatch); also how long after it was issued
   * (`issuedAt`) or received a dispatch with neither `start` nor `expiresAt` may still start
   * (`uplink.maxDispatchAgeS`, default 300).
   */
  maxAgeS?: number;
  /** Newest `issuedAt` accepted, seconds after now (clock skew). */
  maxFutureSkewS?: number;
  /** Remembers signed messages per id and signature; without one only the age window protects against replay. */
  replay?: ReplayMemory;
  replyTo?: ReplyRoute;
}

export type ParseResult =
  | { ok: true; command: DispatchCommand }
  | { ok: false; id: string | null; reason: CodecReason; field?: string; message: string };

type Fail = Extract<ParseResult, { ok: false }>;

function fail(id: string | null, reason: CodecReason, field: string | undefined, message: string): Fail {
  const f: Fail = { ok: false, id, reason, message };
  if (field !== undefined) f.field = field;
  return f;
}

/** Field names from the wire end up in responses and logs: keep them short and printable. */
function printable(name: string): string {
  if (name === '') return '""';
  const clean = name.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > 64 ? `${clean.slice(0, 61)}...` : clean;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return v.length > 40 ? `a string of ${v.length} chars` : JSON.stringify(v);
  if (typeof v === 'number') return String(v);
  return `a ${typeof v}`;
}

const ISO_UTC = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|\+00:00)$/;

/** ISO 8601 UTC (`Z` or `+00:00`) to epoch ms, rejecting impossible dates (Feb 30, hour 24). */
export function parseIsoUtcMs(s: string): number | undefined {
  const m = ISO_UTC.exec(s);
  if (!m) return undefined;
  const [y, mo, d, h, mi, se] = m.slice(1, 7).map(Number);
  const ms = m[7] ? Number(m[7].slice(0, 3).padEnd(3, '0')) : 0;
  if (y < 1970 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || se > 59) return undefined;
  const t = Date.UTC(y, mo - 1, d, h, mi, se, ms);
  const back = new Date(t);
  if (back.getUTCFullYear() !== y || back.getUTCMonth() !== mo - 1 || back.getUTCDate() !== d) return undefined;
  return t;
}

/** The normal form of a time in the canonical body, so equal instants compare equal. */
function normIso(ms: number): string {
  return new Date(ms).toISOString().replace(/\.000Z$/, 'Z');
}

function decodeUtf8(payload: Buffer): string | undefined {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(payload);
  } catch {
    return undefined;
  }
}

/**
 * Validate one dispatch or cancel message. Order: size, UTF-8, JSON object, version, signature (when
 * required: an unsigned message is refused before its content is looked at), keys, fields, replay.
 */
export function parseDispatchPayload(payload: Buffer, ctx: ParseContext): ParseResult {
  try {
    return parse(payload, ctx);
  } catch (e) {
    // every path above is meant to return; this is the promise that nothing escapes
    return fail(null, 'invalid', 'payload', `unparseable: ${(e as Error)?.message ?? 'error'}`);
  }
}

function parse(payload: Buffer, ctx: ParseContext): ParseResult {
  const maxBytes = ctx.maxBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
  if (!Buffer.isBuffer(payload)) return fail(null, 'invalid', 'payload', 'payload is not bytes');
  if (payload.length > maxBytes) return fail(null, 'invalid', 'payload', `payload of ${payload.length} bytes exceeds the limit of ${maxBytes}`);
  if (payload.length === 0) return fail(null, 'invalid', 'payload', 'empty payload');
  const text = decodeUtf8(payload);
  if (text === undefined) return fail(null, 'invalid', 'payload', 'payload is not UTF-8');
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch {
    return fail(null, 'invalid', 'payload', 'payload is not JSON');
  }
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) return fail(null, 'invalid', 'payload', `payload must be a JSON object, got ${describe(obj)}`);
  const msg = obj as Record<string, unknown>;
  const validId = typeof msg.id === 'string' && ID_PATTERN.test(msg.id) ? msg.id : null;
  // the answer carries the id the payload had, even a bad one, so the aggregator can match it
  const id = validId ?? (typeof msg.id === 'string' ? msg.id.slice(0, MAX_ECHOED_ID_CHARS) : null);
  // JSON.parse keeps the last of two equal keys: a payload that says two things is refused, not guessed
  const dup = duplicateKey(text);
  if (dup !== undefined) return fail(id, 'invalid', printable(dup), 'duplicate key');

  if ('v' in msg && !(typeof msg.v === 'number' && SUPPORTED_VERSIONS.includes(msg.v)))
    return fail(id, 'invalid', 'v', `unsupported version ${describe(msg.v)}; this device speaks ${SUPPORTED_VERSIONS.join(', ')}`);

  let issuedAtMs: number | undefined;
  if ('issuedAt' in msg) {
    issuedAtMs = typeof msg.issuedAt === 'string' ? parseIsoUtcMs(msg.issuedAt) : undefined;
    if (issuedAtMs === undefined) return fail(id, 'invalid', 'issuedAt', `must be an ISO 8601 UTC time, got ${describe(msg.issuedAt)}`);
  }
  if (ctx.publicKey) {
    if (!('sig' in msg)) return fail(id, 'signature', 'sig', 'dispatch must be signed');
    if (!verifySignature(msg, ctx.publicKey)) return fail(id, 'signature', 'sig', 'signature does not verify');
    if (issuedAtMs === undefined) return fail(id, 'invalid', 'issuedAt', 'required on a signed dispatch');
    const maxAgeS = ctx.maxAgeS ?? DEFAULT_MAX_DISPATCH_AGE_S;
    const skewS = ctx.maxFutureSkewS ?? DEFAULT_MAX_FUTURE_SKEW_S;
    const ageS = (ctx.nowMs - issuedAtMs) / 1000;
    if (ageS > maxAgeS) return fail(id, 'replay', 'issuedAt', `issued ${Math.round(ageS)} s ago, older than ${maxAgeS} s`);
    if (-ageS > skewS) return fail(id, 'invalid', 'issuedAt', `issued ${Math.round(-ageS)} s in the future, more than ${skewS} s`);
  } else if ('sig' in msg && typeof msg.sig !== 'string') return fail(id, 'invalid', 'sig', `must be a string, got ${describe(msg.sig)}`);

  const isCancel = 'cancel' in msg;
  const allowed = isCancel ? CANCEL_KEYS : DISPATCH_KEYS;
  for (const k of Object.keys(msg)) {
    if (!allowed.has(k)) {
      const why = isCancel && DISPATCH_KEYS.has(k) ? 'not allowed in a cancel' : 'unknown key';
      return fail(id, 'invalid', printable(k), why);
    }
  }
  if (!('id' in msg)) return fail(null, 'invalid', 'id', 'required');
  if (validId === null) return fail(id, 'invalid', 'id', `must be 1-64 chars of [A-Za-z0-9._:-], got ${describe(msg.id)}`);

  let command: DispatchCommand;
  if (isCancel) {
    if (msg.cancel !== true) return fail(id, 'invalid', 'cancel', `must be true, got ${describe(msg.cancel)}`);
    command = { kind: 'cancel', id: validId, receivedMs: ctx.nowMs, source: ctx.source };
  } else {
    const maxAgeMs = (ctx.maxAgeS ?? DEFAULT_MAX_DISPATCH_AGE_S) * 1000;
    // an issuedAt ahead of our clock does not stretch the window
    const issuedOrReceivedMs = issuedAtMs === undefined ? ctx.nowMs : Math.min(issuedAtMs, ctx.nowMs);
    const r = dispatchFields(msg, validId, ctx.nowMs, issuedOrReceivedMs + maxAgeMs);
    if ('ok' in r) return r;
    command = { kind: 'dispatch', request: r.request, receivedMs: ctx.nowMs, source: ctx.source, body: r.body };
  }

  if (ctx.publicKey && ctx.replay && issuedAtMs !== undefined && typeof msg.sig === 'string') {
    const body = signedBody(msg);
    const verdict = ctx.replay.check(validId, issuedAtMs, body, msg.sig);
    if (verdict === 'replay') return fail(id, 'replay', 'issuedAt', 'older than a message already seen for this id');
    if (verdict === 'new') ctx.replay.remember(validId, issuedAtMs, body, msg.sig);
    ctx.replay.prune(ctx.nowMs - (ctx.maxAgeS ?? DEFAULT_MAX_DISPATCH_AGE_S) * 1000);
  }
  if (ctx.replyTo) command.replyTo = ctx.replyTo;
  return { ok: true, command };
}

/**
 * `defaultExpiresAtMs` applies when the dispatch has neither `start` nor `expiresAt`: without it, one
 * queued for hours in the broker's session would run whenever it arrived (issue 15 §8). It is not part
 * of the canonical body, so a re-delivery is still the same dispatch.
 */
function dispatchFields(msg: Record<string, unknown>, id: string, nowMs: number, defaultExpiresAtMs: number): { request: DispatchRequest; body: string } | Fail {
  for (const k of ['powerW', 'durationS']) if (!(k in msg)) return fail(id, 'invalid', k, 'required');

  const p = msg.powerW;
  if (typeof p !== 'number' || !Number.isFinite(p)) return fail(id, 'invalid', 'powerW', `must be a number of W, got ${describe(p)}`);
  if (Math.abs(p) > MAX_ABS_POWER_W) return fail(id, 'invalid', 'powerW', `must be within ±${MAX_ABS_POWER_W} W, got ${p}`);
  // 0 is a valid request: hold the car at zero power for the duration
  const powerW = p === 0 ? 0 : p;

  const d = msg.durationS;
  if (typeof d !== 'number' || !Number.isInteger(d) || d < 1 || d > MAX_DURATION_S)
    return fail(id, 'invalid', 'durationS', `must be an integer from 1 to ${MAX_DURATION_S} s, got ${describe(d)}`);

  const request: DispatchRequest = { id, powerW, durationS: d };
  const canonical: Record<string, unknown> = { id, powerW, durationS: d };
  if ('start' in msg) {
    const startMs = typeof msg.start === 'string' ? parseIsoUtcMs(msg.start) : undefined;
    if (startMs === undefined) return fail(id, 'invalid', 'start', `must be an ISO 8601 UTC time, got ${describe(msg.start)}`);
    if (startMs - nowMs > MAX_START_AHEAD_S * 1000) return fail(id, 'invalid', 'start', `more than ${MAX_START_AHEAD_S / 86400} days ahead`);
    request.startMs = startMs;
    canonical.start = normIso(startMs);
  }
  if ('expiresAt' in msg) {
    const expiresAtMs = typeof msg.expiresAt === 'string' ? parseIsoUtcMs(msg.expiresAt) : undefined;
    if (expiresAtMs === undefined) return fail(id, 'invalid', 'expiresAt', `must be an ISO 8601 UTC time, got ${describe(msg.expiresAt)}`);
    // a past expiresAt is valid: the core answers it with status `expired`
    request.expiresAtMs = expiresAtMs;
    canonical.expiresAt = normIso(expiresAtMs);
  }
  if (request.startMs === undefined && request.expiresAtMs === undefined) request.expiresAtMs = defaultExpiresAtMs;
  return { request, body: canonicalJson(canonical) };
}

/**
 * The first key that occurs twice in one object of `text` (already known to be valid JSON), or
 * undefined. A small scanner: strings are skipped with their escapes, keys decoded with JSON.parse.
 */
export function duplicateKey(text: string): string | undefined {
  // per open container: the keys seen, or null for an array
  const stack: (Set<string> | null)[] = [];
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      const top = stack[stack.length - 1];
      if (expectKey && top) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (top.has(key)) return key;
        top.add(key);
        expectKey = false;
      }
      i = j;
    } else if (c === '{') {
      stack.push(new Set());
      expectKey = true;
    } else if (c === '[') {
      stack.push(null);
      expectKey = false;
    } else if (c === '}' || c === ']') {
      stack.pop();
      expectKey = false;
    } else if (c === ',') {
      expectKey = stack[stack.length - 1] !== null && stack.length > 0;
    }
  }
  return undefined;
}
