/**
 * Small HTTP helpers for the page's server: bounded JSON bodies, answers with the security headers every
 * response carries, cookies, and a per-address request budget.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

/** Largest request body accepted (a settings change is a few hundred bytes). */
export const MAX_BODY_BYTES = 16 * 1024;

export class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly extra: Record<string, unknown> = {}, readonly headers: Record<string, string | number> = {}) {
    super(message);
  }
}

/** Only the page's own files may run or load (no inline script, no third party), and it cannot be framed. */
const SECURITY_HEADERS: Record<string, string> = {
  'Content-Security-Policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

export function send(res: ServerResponse, status: number, body: string | Buffer, type: string, headers: Record<string, string | number> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, { ...SECURITY_HEADERS, 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

export function sendJson(res: ServerResponse, status: number, value: unknown, headers: Record<string, string | number> = {}): void {
  send(res, status, JSON.stringify(value), 'application/json; charset=utf-8', { 'Cache-Control': 'no-store', ...headers });
}

export function securityHeaders(): Record<string, string> {
  return { ...SECURITY_HEADERS };
}

/**
 * Reads a JSON object body: `application/json` only (415 otherwise: a form post from another site cannot
 * be JSON without a CORS preflight, which this server never grants), at most MAX_BODY_BYTES (413).
 */
export async function readJsonObject(req: IncomingMessage): Promise<Record<string, unknown>> {
  const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  if (type !== 'application/json') throw new HttpError(415, `send JSON (Content-Type: application/json), not ${type || 'nothing'}`);
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > MAX_BODY_BYTES) throw new HttpError(413, `the body is ${declared} bytes, more than the ${MAX_BODY_BYTES} accepted`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, `the body is more than the ${MAX_BODY_BYTES} bytes accepted`);
    chunks.push(chunk as Buffer);
  }
  let v: unknown;
  try {
    v = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (e) {
    throw new HttpError(400, `the body is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new HttpError(400, 'the body must be a JSON object');
  for (const k of Object.keys(v)) if (k === '__proto__' || k === 'constructor' || k === 'prototype') throw new HttpError(400, `${k}: not allowed as a key`);
  return v as Record<string, unknown>;
}

export function cookie(req: IncomingMessage, name: string): string | undefined {
  const header = req.headers.cookie;
  if (!header || header.length > 4096) return undefined;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

/**
 * The host names this page answers to (DNS rebinding: a web page on another site whose name is made to
 * resolve to the board would otherwise be "same origin" with this page and could read it). An address
 * (IPv4, or IPv6 in brackets) is always answered: a rebinding attack needs a name. Names: `localhost`,
 * the board's hostname and `<hostname>.local` (mDNS), the name in `ui.listen`, and `ui.allowedHosts`.
 * The port is not compared: a proxy in front may use another.
 */
export function hostAllowed(hostHeader: string | undefined, names: ReadonlySet<string>): boolean {
  // HTTP/1.0 clients may omit it; every browser sends it
  if (hostHeader === undefined) return true;
  const h = hostHeader.trim().toLowerCase();
  if (/^\[[0-9a-f:.]+\](:\d+)?$/.test(h)) return true;
  const name = h.replace(/:\d+$/, '');
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(name)) return true;
  return names.has(name.replace(/\.$/, ''));
}

/** The names {@link hostAllowed} answers to, from the board's hostname, `ui.listen` and `ui.allowedHosts`. */
export function allowedHostNames(hostname: string, listen: string | null, extra: readonly string[]): Set<string> {
  const names = new Set(['localhost', hostname.toLowerCase(), `${hostname.toLowerCase()}.local`, ...extra.map((n) => n.toLowerCase())]);
  const listenHost = listen?.replace(/:\d+$/, '').toLowerCase();
  if (listenHost) names.add(listenHost);
  return names;
}

/**
 * A write must come from the page itself: a browser names the page's origin in `Origin` (and
 * `Sec-Fetch-Site: same-origin`); a request naming another origin is refused whatever its cookie.
 * Clients that send neither (curl, scripts on the board) are not browsers and carry no ambient cookie.
 */
export function sameOrigin(req: IncomingMessage): boolean {
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') return false;
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  const host = req.headers.host;
  return host !== undefined && (origin === `http://${host}` || origin === `https://${host}`);
}

/** A token bucket per client address: `burst` requests at once, `perS` a second after that. */
export class RequestBudget {
  private readonly buckets = new Map<string, { tokens: number; atMs: number }>();
  constructor(private readonly burst: number, private readonly perS: number, private readonly nowMs: () => number, private readonly maxAddresses = 1024) {}

  /** True when the request may go on; false: answer 429. */
  take(address: string): boolean {
    const now = this.nowMs();
    let b = this.buckets.get(address);
    if (!b) {
      if (this.buckets.size >= this.maxAddresses) {
        // drop the full buckets first (addresses that went quiet): they hold no state worth keeping
        for (const [k, v] of this.buckets) if (Math.min(this.burst, v.tokens + ((now - v.atMs) / 1000) * this.perS) >= this.burst) this.buckets.delete(k);
        if (this.buckets.size >= this.maxAddresses) this.buckets.delete(this.buckets.keys().next().value as string);
      }
      b = { tokens: this.burst, atMs: now };
      this.buckets.set(address, b);
    }
    b.tokens = Math.min(this.burst, b.tokens + (Math.max(0, now - b.atMs) / 1000) * this.perS);
    b.atMs = now;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }
}
