/**
 * The page's login: one password, set on the board with `wallbox ui password` and kept as a scrypt hash
 * (RFC 7914, node:crypto) in the data directory beside the database; sessions kept beside it by the
 * SHA-256 of their token (never the token), so a restart of the daemon logs nobody out and the file gives
 * nobody a session; failed logins limited per client address and in total, so guessing is slow.
 */
import { chownSync, closeSync, fsyncSync, openSync, readFileSync, renameSync, statSync, writeSync } from 'node:fs';
import { createHash, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import { writeFileAtomic } from '../config/load.ts';

/** scrypt cost: N = 2^14, r = 8 (16 MiB, about 0.1 s on a Raspberry Pi 4), RFC 7914's interactive figures. */
export const SCRYPT = { N: 16384, r: 8, p: 1, keyLen: 32 } as const;
/** Longest password accepted (scrypt takes any length; this bounds the work an attacker can ask for). */
export const MAX_PASSWORD_CHARS = 256;
export const MIN_PASSWORD_CHARS = 8;

export interface PasswordRecord {
  scheme: 'scrypt';
  N: number;
  r: number;
  p: number;
  salt: string;
  hash: string;
}

/** The password file: beside the database (the data directory the service may write). */
export function passwordFilePath(storagePath: string): string {
  return join(dirname(resolve(storagePath)), 'ui-password.json');
}

/** The sessions file, beside the password file: SHA-256 of each token, its expiry and its password's hash. */
export function sessionsFilePath(storagePath: string): string {
  return join(dirname(resolve(storagePath)), 'ui-sessions.json');
}

function derive(password: string, salt: Buffer, rec: Pick<PasswordRecord, 'N' | 'r' | 'p'>, keyLen: number): Promise<Buffer> {
  return new Promise((res, rej) =>
    scrypt(password, salt, keyLen, { N: rec.N, r: rec.r, p: rec.p, maxmem: 64 * 1024 * 1024 }, (e, key) => (e ? rej(e) : res(key))),
  );
}

/** Problems with a new password, in the homeowner's words (empty: fine). */
export function passwordProblems(password: string): string[] {
  if (password.length < MIN_PASSWORD_CHARS) return [`the password must have at least ${MIN_PASSWORD_CHARS} characters (it has ${password.length})`];
  if (password.length > MAX_PASSWORD_CHARS) return [`the password may have at most ${MAX_PASSWORD_CHARS} characters`];
  return [];
}

export async function hashPassword(password: string): Promise<PasswordRecord> {
  const salt = randomBytes(16);
  const key = await derive(password, salt, SCRYPT, SCRYPT.keyLen);
  return { scheme: 'scrypt', N: SCRYPT.N, r: SCRYPT.r, p: SCRYPT.p, salt: salt.toString('base64'), hash: key.toString('base64') };
}

/** Writes the record atomically, readable by the owner and group only; owned like its directory when run as root. */
export function writePasswordFile(path: string, rec: PasswordRecord): void {
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w', 0o640);
  try {
    writeSync(fd, JSON.stringify(rec) + '\n');
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  // `sudo wallbox ui password` runs as root: the service user must still read the file
  if (process.getuid?.() === 0) {
    try {
      const st = statSync(dirname(path));
      chownSync(tmp, st.uid, st.gid);
    } catch {
      // a file system without owners: the mode is what there is
    }
  }
  renameSync(tmp, path);
}

function parseRecord(text: string): PasswordRecord | undefined {
  try {
    const v = JSON.parse(text) as Partial<PasswordRecord>;
    const int = (x: unknown, lo: number, hi: number) => typeof x === 'number' && Number.isInteger(x) && x >= lo && x <= hi;
    if (v.scheme !== 'scrypt' || !int(v.N, 1024, 1 << 20) || (v.N! & (v.N! - 1)) !== 0 || !int(v.r, 1, 32) || !int(v.p, 1, 4)) return undefined;
    if (typeof v.salt !== 'string' || typeof v.hash !== 'string' || Buffer.from(v.hash, 'base64').length < 16) return undefined;
    return v as PasswordRecord;
  } catch {
    return undefined;
  }
}

export type LoginResult = { ok: true; token: string } | { ok: false; status: 401 | 429 | 503; message: string; retryAfterS?: number };

interface Session {
  /** Calendar time (a restart of the daemon must not end it; 30 days dwarf any clock step). */
  expiresMs: number;
  /** The password hash it was opened with: a new password ends the sessions of the old one. */
  passwordHash: string;
}

interface Attempts {
  failures: number;
  lockedUntilMs: number;
  lastMs: number;
}

export interface AuthOptions {
  passwordPath: string;
  /** Where sessions are kept across restarts (`sessionsFilePath`); absent: in memory only. */
  sessionsPath?: string;
  /** Monotonic milliseconds (Clock.nowMs): the login limits. */
  nowMs: () => number;
  /** Calendar milliseconds (Clock.wallMs): session expiry, which outlives the process; default Date.now. */
  wallMs?: () => number;
  sessionMs?: number;
  maxSessions?: number;
}

/** Failures from one address before it waits; the wait doubles with each further failure, up to 15 min. */
export const FREE_FAILURES = 5;
const FIRST_LOCK_MS = 30_000;
const MAX_LOCK_MS = 15 * 60_000;
/** Failures from all addresses together in one minute before every login waits (many addresses guessing). */
export const GLOBAL_FAILURES_PER_MIN = 30;
const MAX_TRACKED_ADDRESSES = 1024;

export class Auth {
  private readonly sessions = new Map<string, Session>();
  private readonly attempts = new Map<string, Attempts>();
  private globalFailures: number[] = [];
  private verifying = 0;
  private cached?: { ino: number; mtimeMs: number; size: number; rec: PasswordRecord | undefined };
  private readonly sessionMs: number;
  private readonly maxSessions: number;

  constructor(private readonly opts: AuthOptions) {
    this.sessionMs = opts.sessionMs ?? 30 * 86_400_000;
    this.maxSessions = opts.maxSessions ?? 32;
    this.loadSessions();
  }

  private wall(): number {
    return (this.opts.wallMs ?? Date.now)();
  }

  /** Sessions the last run kept; a file that is missing, too large or not one is no sessions (never a throw). */
  private loadSessions(): void {
    const path = this.opts.sessionsPath;
    if (!path) return;
    let list: unknown;
    try {
      if (statSync(path).size > 64 * 1024) return;
      list = (JSON.parse(readFileSync(path, 'utf8')) as { sessions?: unknown }).sessions;
    } catch {
      return;
    }
    if (!Array.isArray(list)) return;
    const now = this.wall();
    for (const v of list.slice(-this.maxSessions)) {
      if (!v || typeof v !== 'object') continue;
      const e = v as { id?: unknown; expiresMs?: unknown; passwordHash?: unknown };
      if (typeof e.id !== 'string' || !/^[A-Za-z0-9_-]{43}$/.test(e.id) || typeof e.passwordHash !== 'string' || e.passwordHash.length > 200) continue;
      if (typeof e.expiresMs !== 'number' || !Number.isFinite(e.expiresMs) || e.expiresMs <= now || e.expiresMs > now + this.sessionMs) continue;
      this.sessions.set(e.id, { expiresMs: e.expiresMs, passwordHash: e.passwordHash });
    }
  }

  /** Keep the sessions for the next run: written whole and renamed, readable by the service only. */
  private saveSessions(): void {
    const path = this.opts.sessionsPath;
    if (!path) return;
    try {
      writeFileAtomic(path, JSON.stringify({ sessions: [...this.sessions].map(([id, s]) => ({ id, ...s })) }) + '\n', 0o600);
    } catch {
      // a data directory that cannot be written: the sessions still hold in memory until the next restart
    }
  }

  /** The stored password, re-read when the file changes (a new password needs no restart). */
  password(): PasswordRecord | undefined {
    let st;
    try {
      st = statSync(this.opts.passwordPath);
    } catch {
      this.cached = undefined;
      return undefined;
    }
    // the file is replaced by a rename (a new inode) whenever the password is set
    if (!this.cached || this.cached.ino !== st.ino || this.cached.mtimeMs !== st.mtimeMs || this.cached.size !== st.size) {
      let rec: PasswordRecord | undefined;
      try {
        rec = st.size <= 4096 ? parseRecord(readFileSync(this.opts.passwordPath, 'utf8')) : undefined;
      } catch {
        rec = undefined;
      }
      this.cached = { ino: st.ino, mtimeMs: st.mtimeMs, size: st.size, rec };
    }
    return this.cached.rec;
  }

  passwordSet(): boolean {
    return this.password() !== undefined;
  }

  /** Whether `token` (the session cookie) is a live session of the current password. */
  check(token: string | undefined): boolean {
    if (!token) return false;
    const id = tokenId(token);
    const s = this.sessions.get(id);
    if (!s) return false;
    const rec = this.password();
    if (!rec || rec.hash !== s.passwordHash || this.wall() >= s.expiresMs) {
      this.sessions.delete(id);
      this.saveSessions();
      return false;
    }
    return true;
  }

  logout(token: string | undefined): void {
    if (token && this.sessions.delete(tokenId(token))) this.saveSessions();
  }

  sessionMaxAgeS(): number {
    return Math.floor(this.sessionMs / 1000);
  }

  async login(address: string, password: unknown): Promise<LoginResult> {
    const now = this.opts.nowMs();
    const rec = this.password();
    if (!rec) return { ok: false, status: 503, message: 'no password is set for this page: on the board, run `sudo wallbox ui password` (from a checkout: `npm run -s wallbox -- ui password`)' };
    const a = this.attempts.get(address);
    if (a && now < a.lockedUntilMs) return this.wait(a.lockedUntilMs - now, 'too many wrong passwords from this device');
    this.globalFailures = this.globalFailures.filter((t) => now - t < 60_000);
    if (this.globalFailures.length >= GLOBAL_FAILURES_PER_MIN) return this.wait(60_000 - (now - this.globalFailures[0]), 'too many wrong passwords');
    // one scrypt at a time: its 16 MiB and its CPU are bounded whatever arrives
    if (this.verifying > 0) return this.wait(1000, 'another login is being checked');
    if (typeof password !== 'string' || password.length === 0 || password.length > MAX_PASSWORD_CHARS) return this.fail(address, now, 'wrong password');
    this.verifying++;
    let good: boolean;
    try {
      const want = Buffer.from(rec.hash, 'base64');
      const got = await derive(password, Buffer.from(rec.salt, 'base64'), rec, want.length);
      good = timingSafeEqual(want, got);
    } finally {
      this.verifying--;
    }
    if (!good) return this.fail(address, now, 'wrong password');
    this.attempts.delete(address);
    return { ok: true, token: this.open(rec) };
  }

  private open(rec: PasswordRecord): string {
    const now = this.wall();
    for (const [t, s] of this.sessions) if (now >= s.expiresMs || s.passwordHash !== rec.hash) this.sessions.delete(t);
    // the oldest session goes first when too many are open (Map keeps insertion order)
    while (this.sessions.size >= this.maxSessions) this.sessions.delete(this.sessions.keys().next().value as string);
    const token = randomBytes(32).toString('base64url');
    this.sessions.set(tokenId(token), { expiresMs: now + this.sessionMs, passwordHash: rec.hash });
    this.saveSessions();
    return token;
  }

  private wait(ms: number, why: string): LoginResult {
    const s = Math.max(1, Math.ceil(ms / 1000));
    return { ok: false, status: 429, message: `${why}: try again in ${s} s`, retryAfterS: s };
  }

  private fail(address: string, now: number, message: string): LoginResult {
    this.globalFailures.push(now);
    let a = this.attempts.get(address);
    if (!a) {
      if (this.attempts.size >= MAX_TRACKED_ADDRESSES) {
        // forget the quietest address: the global limit still holds for everyone
        let oldest: string | undefined;
        let oldestMs = Infinity;
        for (const [k, v] of this.attempts) if (v.lastMs < oldestMs && now >= v.lockedUntilMs) [oldest, oldestMs] = [k, v.lastMs];
        if (oldest !== undefined) this.attempts.delete(oldest);
      }
      a = { failures: 0, lockedUntilMs: 0, lastMs: now };
      this.attempts.set(address, a);
    }
    // failures an hour apart are forgiven
    if (now - a.lastMs > 3_600_000) a.failures = 0;
    a.failures++;
    a.lastMs = now;
    if (a.failures >= FREE_FAILURES) {
      const lockMs = Math.min(MAX_LOCK_MS, FIRST_LOCK_MS * 2 ** (a.failures - FREE_FAILURES));
      a.lockedUntilMs = now + lockMs;
      return { ok: false, status: 401, message: `${message}; wait ${Math.ceil(lockMs / 1000)} s before the next try`, retryAfterS: Math.ceil(lockMs / 1000) };
    }
    return { ok: false, status: 401, message };
  }
}

/** What the sessions file and the map hold for a token: its SHA-256 (a 256-bit random token needs no salt). */
function tokenId(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}
