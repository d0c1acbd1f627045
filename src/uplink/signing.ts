/**
 * Signed dispatch (optional; on when `uplink.dispatchPublicKey` is set). A dispatch then carries
 * `issuedAt` (ISO 8601 UTC) and `sig`, an Ed25519 signature over the canonical JSON of every other
 * field. A broker, or anyone who can publish on it, can then neither forge a command nor replay an old one.
 */
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { canonicalJson } from './canonical.ts';

/** Ed25519 SubjectPublicKeyInfo DER prefix; a raw 32-byte key follows it. */
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/**
 * Parse a public key given as PEM (`-----BEGIN PUBLIC KEY-----`), as base64 of the raw 32-byte key, or as
 * base64 of the DER SubjectPublicKeyInfo. Throws with a plain message when it is none of these or not Ed25519.
 */
export function parsePublicKey(text: string): KeyObject {
  const t = text.trim();
  let key: KeyObject;
  if (t.startsWith('-----BEGIN')) key = createPublicKey({ key: t, format: 'pem' });
  else {
    if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(t)) throw new Error('dispatchPublicKey: not PEM and not base64');
    const raw = Buffer.from(t.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
    if (raw.length === 32) key = createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, raw]), format: 'der', type: 'spki' });
    else if (raw.length === 44) key = createPublicKey({ key: raw, format: 'der', type: 'spki' });
    else throw new Error(`dispatchPublicKey: base64 decodes to ${raw.length} bytes, expected a raw 32-byte Ed25519 key`);
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`dispatchPublicKey: ${key.asymmetricKeyType} key, expected Ed25519`);
  return key;
}

/**
 * `uplink.dispatchPublicKey` is the key itself (PEM or base64) or, when it is neither, the path of a file
 * holding one. Reads the file; throws naming the key and the cause.
 */
export function loadPublicKey(setting: string): KeyObject {
  const t = setting.trim();
  const looksInline = t.startsWith('-----BEGIN') || /^[A-Za-z0-9+/_-]{43}=?$/.test(t) || /^[A-Za-z0-9+/]{59}=?$/.test(t);
  if (looksInline) return parsePublicKey(t);
  let text: string;
  try {
    text = readFileSync(t, 'utf8');
  } catch (e) {
    throw new Error(`dispatchPublicKey: cannot read key file ${t}: ${(e as Error).message}`);
  }
  return parsePublicKey(text);
}

/** The bytes a dispatch signature covers: canonical JSON of the message without `sig`. */
export function signedBody(msg: Record<string, unknown>): string {
  const { sig: _sig, ...rest } = msg;
  return canonicalJson(rest);
}

/** Check `sig` (base64 or base64url of the 64-byte signature) over `signedBody(msg)`. Never throws. */
export function verifySignature(msg: Record<string, unknown>, key: KeyObject): boolean {
  const sig = msg.sig;
  if (typeof sig !== 'string' || !/^[A-Za-z0-9+/_-]{86}(==)?$/.test(sig)) return false;
  try {
    const bytes = Buffer.from(sig.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
    if (bytes.length !== 64) return false;
    return verify(null, Buffer.from(signedBody(msg), 'utf8'), key, bytes);
  } catch {
    return false;
  }
}

export type ReplayVerdict = 'new' | 'same' | 'replay';

/**
 * What the codec needs to refuse a replayed signed dispatch: what has been seen, per id and signature.
 * - an `issuedAt` older than one already seen for the id is `replay` (so after a signed cancel, the
 *   dispatch it cancelled can never come back, whatever the core remembers);
 * - otherwise the same (id, signature) again, or the same body at the same `issuedAt`, is `same`: a
 *   re-delivery, which the core answers idempotently;
 * - anything else is `new`.
 * The store's `SqliteReplayGuard` keeps it on disk so it survives restarts and kill -9; `ReplayGuard`
 * below keeps it in memory (tests, the simulator).
 */
export interface ReplayMemory {
  check(id: string, issuedAtMs: number, body: string, sig: string): ReplayVerdict;
  remember(id: string, issuedAtMs: number, body: string, sig: string): void;
  /** Forget entries issued before `oldestAcceptedMs`: the age check rejects those anyway. */
  prune(oldestAcceptedMs: number): void;
}

/** In-memory `ReplayMemory`, bounded to `maxEntries` ids (the least recently seen are forgotten first). */
export class ReplayGuard implements ReplayMemory {
  private readonly seen = new Map<string, { newestMs: number; sigs: Map<string, { issuedAtMs: number; body: string }> }>();

  constructor(private readonly maxEntries = 10_000) {}

  check(id: string, issuedAtMs: number, body: string, sig: string): ReplayVerdict {
    const prev = this.seen.get(id);
    if (!prev) return 'new';
    // checked first: after a cancel, the very dispatch it cancelled is a replay, not a re-delivery
    if (issuedAtMs < prev.newestMs) return 'replay';
    if (prev.sigs.has(sig)) return 'same';
    // a different body under the same id and issuedAt is the aggregator's own conflict, which the core
    // answers with duplicate_conflict; only an older issuedAt can be a replay
    for (const e of prev.sigs.values()) if (e.issuedAtMs === issuedAtMs && e.body === body) return 'same';
    return 'new';
  }

  /** Record an accepted message. */
  remember(id: string, issuedAtMs: number, body: string, sig: string): void {
    const prev = this.seen.get(id);
    this.seen.delete(id);
    const entry = prev ?? { newestMs: issuedAtMs, sigs: new Map() };
    entry.newestMs = Math.max(entry.newestMs, issuedAtMs);
    entry.sigs.set(sig, { issuedAtMs, body });
    this.seen.set(id, entry);
    // Map iteration is insertion order, so the first entries are the least recently recorded
    while (this.seen.size > this.maxEntries) {
      const first = this.seen.keys().next().value as string;
      this.seen.delete(first);
    }
  }

  prune(oldestAcceptedMs: number): void {
    for (const [id, e] of this.seen) if (e.newestMs < oldestAcceptedMs) this.seen.delete(id);
  }

  get size(): number {
    return this.seen.size;
  }
}
