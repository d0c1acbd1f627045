/**
 * The local web page's server (docs/web.md): the page itself, a JSON API over the daemon's status and the
 * store, live updates by server-sent events, and the homeowner's settings and quick actions behind a login.
 * Plain `node:http`: a handful of routes need no framework. It listens only on `ui.listen` (the board's
 * LAN address or loopback); the aggregator's uplink is an outgoing MQTT client and nothing forwards to it.
 *
 * Bounds: connections (MAX_CONNECTIONS), headers (8 KiB), bodies (16 KiB), time to send a request (10 s),
 * requests per client address (a token bucket), login attempts (src/ui/auth.ts), live streams
 * (`ui.maxStreams`). Every request is answered or its connection closed; no handler error escapes.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { hostname } from 'node:os';
import type { Config } from '../config/types.ts';
import type { DispatchRecord } from '../control/types.ts';
import { clearOverride, listOverrides, OVERRIDE_KINDS, OverrideError, setOverride, zoneOf, type OverrideKind, type OverrideRequest } from '../homeowner/overrides.ts';
import { ConfigError } from '../config/load.ts';
import { loadAssets, type Asset } from './assets.ts';
import { Auth, passwordFilePath, sessionsFilePath } from './auth.ts';
import { plainFaults } from './faults.ts';
import { allowedHostNames, cookie, hostAllowed, HttpError, readJsonObject, RequestBudget, sameOrigin, send, sendJson, securityHeaders } from './http.ts';
import { RANGES, SEVERITIES, UiQueries, type RangeName, type Severity } from './queries.ts';
import { applySettings, settingFields, settingValues, UnknownSettingError } from './settings.ts';

export const MAX_CONNECTIONS = 128;
export const SESSION_COOKIE = 'wallbox_session';
/** Live status is pushed at most this often, and only when it changed; a comment line keeps idle streams open. */
const PUSH_EVERY_MS = 1000;
const KEEPALIVE_EVERY_MS = 15_000;
/** A stream whose client does not read (its socket buffer above this) is closed rather than buffered. */
const MAX_STREAM_BACKLOG_BYTES = 256 * 1024;

export interface ReloadAnswer {
  ok: boolean;
  applied: string[];
  restartNeeded: string[];
  problems?: string[];
}

export type UiLog = (level: 'info' | 'warn' | 'error', msg: string) => void;

export interface UiDeps {
  /** The config file the daemon runs (where settings are written). */
  configPath: string;
  /** The config in force in the running daemon. */
  config: () => Config;
  /** The daemon's status, as `wallbox status --json` shows it. */
  status: () => Promise<Record<string, unknown>>;
  /** The running dispatches (the control core's memory). */
  dispatches: () => readonly DispatchRecord[];
  clock: { nowMs(): number; wallMs(): number };
  /** Ask the daemon to reload the config file now; answers what it applied. */
  reload: (why: string) => Promise<ReloadAnswer>;
  log: UiLog;
  /** The ui/ directory (tests). */
  assetsDir?: string;
}

interface Stream {
  res: ServerResponse;
  token: string | undefined;
}

/** `config.ui` as the server takes it. */
export type UiSettings = Pick<NonNullable<Config['ui']>, 'publicRead' | 'maxStreams' | 'allowedHosts'> & { listen?: string | null };

/** The names the page answers to under these settings (http.ts `hostAllowed`). */
const hostNamesOf = (s: UiSettings): Set<string> => allowedHostNames(hostname(), s.listen ?? null, s.allowedHosts ?? []);

const round1 = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? Math.round(v * 10) / 10 : v);

/** A page server on one address. {@link UiHost} starts, moves and stops it as `ui` changes. */
export class UiServer {
  private readonly server: Server;
  private readonly auth: Auth;
  private readonly assets: Map<string, Asset>;
  private readonly budget: RequestBudget;
  private readonly queries: UiQueries;
  private readonly streams = new Set<Stream>();
  private readonly sockets = new Set<Socket>();
  private pushTimer?: NodeJS.Timeout;
  private lastPushed = '';
  private lastPushMs = 0;
  private pushing = false;
  private closed = false;
  private hostNames: Set<string>;

  constructor(private readonly deps: UiDeps, private settings: UiSettings) {
    const cfg = deps.config();
    this.hostNames = hostNamesOf(settings);
    this.auth = new Auth({ passwordPath: passwordFilePath(cfg.storage.path), sessionsPath: sessionsFilePath(cfg.storage.path), nowMs: () => deps.clock.nowMs(), wallMs: () => deps.clock.wallMs() });
    this.assets = loadAssets(deps.assetsDir);
    // a page load is about ten requests; a person never comes near 100 at once or 20 a second for long
    this.budget = new RequestBudget(100, 20, () => deps.clock.nowMs());
    this.queries = new UiQueries(cfg.storage.path);
    this.server = createServer({ maxHeaderSize: 8192, requestTimeout: 30_000, headersTimeout: 10_000, keepAliveTimeout: 5000 }, (req, res) => {
      void this.handle(req, res).catch((e) => {
        this.deps.log('warn', `web page: ${req.method} ${String(req.url).slice(0, 100)}: ${(e as Error)?.message ?? String(e)}`);
        if (!res.headersSent) sendJson(res, 500, { error: 'internal error' });
        else res.destroy();
      });
    });
    this.server.maxConnections = MAX_CONNECTIONS;
    this.server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
    });
    this.server.on('clientError', (_e, socket) => {
      // malformed request line, headers too large, a request sent too slowly: answer when still possible
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      else socket.destroy();
    });
  }

  reconfigure(settings: UiSettings): void {
    this.settings = settings;
    this.hostNames = hostNamesOf(settings);
    // streams opened under public reading end when it is switched off (they reconnect and need a login)
    if (!settings.publicRead) for (const s of [...this.streams]) if (!this.auth.check(s.token)) this.endStream(s);
    while (this.streams.size > settings.maxStreams) this.endStream(this.streams.values().next().value as Stream);
  }

  async listen(listen: string): Promise<{ host: string; port: number }> {
    const { host, port } = parseListen(listen);
    await new Promise<void>((res, rej) => {
      this.server.once('error', rej);
      this.server.listen(port, host, () => {
        this.server.off('error', rej);
        res();
      });
    });
    const a = this.server.address();
    return { host, port: typeof a === 'object' && a ? a.port : port };
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.pushTimer);
    for (const s of [...this.streams]) this.endStream(s);
    await new Promise<void>((res) => {
      this.server.close(() => res());
      for (const s of this.sockets) s.destroy();
    });
    this.queries.close();
  }

  // ---------------------------------------------------------------------------------------------

  private address(req: IncomingMessage): string {
    return req.socket.remoteAddress ?? 'unknown';
  }

  private token(req: IncomingMessage): string | undefined {
    const t = cookie(req, SESSION_COOKIE);
    return t && /^[A-Za-z0-9_-]{20,100}$/.test(t) ? t : undefined;
  }

  private loggedIn(req: IncomingMessage): boolean {
    return this.auth.check(this.token(req));
  }

  private requireRead(req: IncomingMessage): void {
    if (!this.settings.publicRead && !this.loggedIn(req)) throw new HttpError(401, 'log in to see this page', { login: true });
  }

  /** Writes: the page's own origin, JSON, and a live session. */
  private requireWrite(req: IncomingMessage): void {
    if (!sameOrigin(req)) throw new HttpError(403, 'refused: the request does not come from this page');
    if (!this.loggedIn(req)) throw new HttpError(401, 'log in to change settings', { login: true });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (this.closed) return void res.destroy();
    if (!this.budget.take(this.address(req))) {
      req.resume();
      return sendJson(res, 429, { error: 'too many requests: slow down' }, { 'Retry-After': 1 });
    }
    if (!hostAllowed(req.headers.host, this.hostNames)) {
      req.resume();
      return sendJson(res, 421, { error: `this page does not answer to the name ${String(req.headers.host).slice(0, 100)}: open it by the board's address or name, or add the name to ui.allowedHosts` });
    }
    let path: string;
    let query: URLSearchParams;
    try {
      const url = new URL(req.url ?? '/', 'http://page.invalid');
      path = url.pathname;
      query = url.searchParams;
    } catch {
      return sendJson(res, 400, { error: 'bad URL' });
    }
    const method = req.method ?? 'GET';
    try {
      if (!path.startsWith('/api/')) return this.serveAsset(req, res, path, method);
      const route = ROUTES[`${method} ${path}`];
      if (!route) {
        const allowed = Object.keys(ROUTES).filter((k) => k.endsWith(` ${path}`)).map((k) => k.split(' ')[0]);
        if (allowed.length) throw new HttpError(405, `${method} is not allowed here (${allowed.join(', ')})`, {}, { Allow: allowed.join(', ') });
        throw new HttpError(404, `no such API: ${path.slice(0, 100)}`);
      }
      await route.call(this, req, res, query);
    } catch (e) {
      req.resume();
      if (e instanceof HttpError) {
        if (e.status === 413) res.setHeader('Connection', 'close');
        return sendJson(res, e.status, { error: e.message, ...e.extra }, e.headers);
      }
      throw e;
    }
  }

  private serveAsset(req: IncomingMessage, res: ServerResponse, path: string, method: string): void {
    if (method !== 'GET' && method !== 'HEAD') throw new HttpError(405, `${method} is not allowed here`, {}, { Allow: 'GET, HEAD' });
    const a = this.assets.get(path);
    if (!a) throw new HttpError(404, 'not found');
    const cache = { ETag: a.etag, 'Cache-Control': 'no-cache', Vary: 'Accept-Encoding' };
    if (req.headers['if-none-match'] === a.etag) {
      res.writeHead(304, { ...securityHeaders(), ...cache });
      return void res.end();
    }
    const gz = /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
    const body = gz ? a.gzip : a.body;
    if (method === 'HEAD') {
      res.writeHead(200, { ...securityHeaders(), ...cache, 'Content-Type': a.type, 'Content-Length': body.length, ...(gz ? { 'Content-Encoding': 'gzip' } : {}) });
      return void res.end();
    }
    send(res, 200, body, a.type, { ...cache, ...(gz ? { 'Content-Encoding': 'gzip' } : {}) });
  }

  // --- routes --------------------------------------------------------------------------------------

  session(req: IncomingMessage, res: ServerResponse): void {
    const loggedIn = this.loggedIn(req);
    sendJson(res, 200, { loggedIn, passwordSet: this.auth.passwordSet(), publicRead: this.settings.publicRead, canRead: loggedIn || this.settings.publicRead });
  }

  async login(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!sameOrigin(req)) throw new HttpError(403, 'refused: the request does not come from this page');
    const body = await readJsonObject(req);
    const unknown = Object.keys(body).filter((k) => k !== 'password');
    if (unknown.length) throw new HttpError(400, `unknown key ${unknown.join(', ')}: send {"password": "..."}`);
    const r = await this.auth.login(this.address(req), body.password);
    if (!r.ok) return sendJson(res, r.status, { error: r.message }, r.retryAfterS ? { 'Retry-After': r.retryAfterS } : {});
    this.deps.log('info', `web page: logged in from ${this.address(req)}`);
    sendJson(res, 200, { loggedIn: true }, { 'Set-Cookie': `${SESSION_COOKIE}=${r.token}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${this.auth.sessionMaxAgeS()}` });
  }

  logout(req: IncomingMessage, res: ServerResponse): void {
    if (!sameOrigin(req)) throw new HttpError(403, 'refused: the request does not come from this page');
    this.auth.logout(this.token(req));
    sendJson(res, 200, { loggedIn: false }, { 'Set-Cookie': `${SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0` });
  }

  async statusRoute(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.requireRead(req);
    sendJson(res, 200, await this.nowPayload());
  }

  /** The "Now" view: the daemon's status with what the page draws from it. */
  async nowPayload(): Promise<Record<string, unknown>> {
    const s = await this.deps.status();
    const cfg = this.deps.config();
    const zone = zoneOf(cfg);
    const nowMs = this.deps.clock.nowMs();
    const wallMs = this.deps.clock.wallMs();
    const id = typeof s.dispatchId === 'string' ? s.dispatchId : null;
    const d = id ? this.deps.dispatches().find((r) => r.id === id) : undefined;
    const floors = (s.floors ?? null) as Record<string, unknown> | null;
    return {
      mode: s.mode, grid: s.grid, socPct: round1(s.socPct), socSource: s.socSource, socAgeS: s.socAgeS,
      powerW: s.powerW, setpointW: s.setpointW,
      floors: floors && Object.fromEntries(Object.entries(floors).map(([k, v]) => [k, round1(v)])),
      targetSocPct: cfg.vehicle.targetSocPct, departureTime: cfg.vehicle.departureTime, departureAt: s.departureAt, departureAtRisk: s.departureAtRisk,
      v2gEnabled: cfg.vehicle.v2gEnabled,
      dispatch: d
        ? {
            id: d.id, status: d.status, reason: d.reason ?? null, requestedW: d.request.powerW, acceptedW: d.acceptedW ?? null,
            remainingS: Math.max(0, Math.round((d.endMs - nowMs) / 1000)), endsAt: new Date(wallMs + (d.endMs - nowMs)).toISOString(),
            exportedWh: round1(d.exportedWh), importedWh: round1(d.importedWh),
          }
        : null,
      site: s.site ?? null,
      backup: s.backup, reasons: s.reasons, faults: plainFaults(s),
      overrides: listOverrides(cfg, wallMs),
      totals: s.totals, uplink: s.uplink ? { connected: (s.uplink as { connected?: unknown }).connected } : null,
      restartNeeded: (s.config as { restartNeeded?: unknown } | undefined)?.restartNeeded ?? [],
      deviceId: s.deviceId, version: s.version, timezone: zone, currency: cfg.reward.currency, at: new Date(wallMs).toISOString(),
    };
  }

  stream(req: IncomingMessage, res: ServerResponse): void {
    this.requireRead(req);
    if (this.streams.size >= this.settings.maxStreams)
      throw new HttpError(503, `${this.settings.maxStreams} live views are open already: close one (another phone or tab) and reload`, {}, { 'Retry-After': 30 });
    res.writeHead(200, { ...securityHeaders(), 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-store', 'X-Accel-Buffering': 'no' });
    res.write('retry: 5000\n\n');
    const s: Stream = { res, token: this.token(req) };
    this.streams.add(s);
    req.socket.setTimeout(0);
    const end = () => this.streams.delete(s);
    res.once('close', end);
    // the first picture at once, then changes
    void this.nowPayload().then((p) => this.write(s, `event: status\ndata: ${JSON.stringify(p)}\n\n`), () => {});
    this.pushTimer ??= setInterval(() => void this.push(), PUSH_EVERY_MS);
  }

  private write(s: Stream, text: string): void {
    if (s.res.destroyed || s.res.writableEnded) return void this.streams.delete(s);
    if (s.res.writableLength > MAX_STREAM_BACKLOG_BYTES) return this.endStream(s);
    s.res.write(text);
  }

  private endStream(s: Stream): void {
    this.streams.delete(s);
    s.res.end();
  }

  private async push(): Promise<void> {
    if (this.streams.size === 0) {
      clearInterval(this.pushTimer);
      this.pushTimer = undefined;
      this.lastPushed = '';
      return;
    }
    if (this.pushing) return;
    this.pushing = true;
    try {
      const now = this.deps.clock.nowMs();
      if (!this.settings.publicRead) for (const s of [...this.streams]) if (!this.auth.check(s.token)) this.endStream(s);
      const p = await this.nowPayload();
      const { at: _at, ...changing } = p;
      const key = JSON.stringify(changing);
      if (key !== this.lastPushed) {
        this.lastPushed = key;
        this.lastPushMs = now;
        const msg = `event: status\ndata: ${JSON.stringify(p)}\n\n`;
        for (const s of [...this.streams]) this.write(s, msg);
      } else if (now - this.lastPushMs >= KEEPALIVE_EVERY_MS) {
        this.lastPushMs = now;
        for (const s of [...this.streams]) this.write(s, ': still here\n\n');
      }
    } catch (e) {
      this.deps.log('warn', `web page: live update: ${(e as Error)?.message ?? String(e)}`);
    } finally {
      this.pushing = false;
    }
  }

  settingsGet(req: IncomingMessage, res: ServerResponse): void {
    this.requireRead(req);
    sendJson(res, 200, { fields: settingFields(), values: settingValues(this.deps.config()) });
  }

  async settingsPost(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.requireWrite(req);
    const changes = await readJsonObject(req);
    if (Object.keys(changes).length === 0) throw new HttpError(400, 'nothing to change: send {"vehicle.dischargeFloorPct": 60, ...}');
    let r;
    try {
      r = applySettings(this.deps.configPath, changes);
    } catch (e) {
      if (e instanceof UnknownSettingError) throw new HttpError(400, e.message, { unknown: e.keys });
      throw e;
    }
    if (!r.ok) {
      const n = Object.keys(r.fields).length;
      return sendJson(res, 422, {
        fields: r.fields, general: r.general, values: settingValues(this.deps.config()),
        error: `${n ? `${n === 1 ? 'one value was' : `${n} values were`} refused` : r.general.join('; ')}: nothing was saved, the settings file was not changed`,
      });
    }
    const reload = await this.deps.reload('web page');
    this.deps.log('info', `web page: settings changed from ${this.address(req)}: ${r.changed.join(', ') || 'no value differed'}`);
    sendJson(res, 200, { saved: Object.keys(changes), changed: r.changed, reload, values: settingValues(r.config) });
  }

  async actionSet(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.requireWrite(req);
    const body = await readJsonObject(req);
    const allowed = ['kind', 'targetSocPct', 'socPct', 'until'];
    const unknown = Object.keys(body).filter((k) => !allowed.includes(k));
    if (unknown.length) throw new HttpError(400, `unknown key ${unknown.join(', ')}: a quick action takes ${allowed.join(', ')}`, { unknown });
    if (!OVERRIDE_KINDS.includes(body.kind as OverrideKind)) throw new HttpError(400, `kind: one of ${OVERRIDE_KINDS.join(', ')}`);
    if (body.until !== undefined && typeof body.until !== 'string') throw new HttpError(400, 'until: a time like 07:00, a day like friday, or a duration like 4h');
    try {
      const { view } = setOverride(this.deps.configPath, body as unknown as OverrideRequest, { nowMs: this.deps.clock.wallMs(), by: 'ui', config: this.deps.config() });
      const reload = await this.deps.reload('web page quick action');
      this.deps.log('info', `web page: quick action ${view.label} until ${view.untilLocal}`);
      sendJson(res, 200, { override: view, reload });
    } catch (e) {
      if (e instanceof OverrideError) throw new HttpError(422, e.problems.join('; '));
      if (e instanceof ConfigError) throw new HttpError(422, `${e.problems.join('; ')}; the file was not changed`);
      throw e;
    }
  }

  async actionClear(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.requireWrite(req);
    const body = await readJsonObject(req);
    const unknown = Object.keys(body).filter((k) => k !== 'kind');
    if (unknown.length) throw new HttpError(400, `unknown key ${unknown.join(', ')}: send {"kind": "boost"}`, { unknown });
    if (!OVERRIDE_KINDS.includes(body.kind as OverrideKind)) throw new HttpError(400, `kind: one of ${OVERRIDE_KINDS.join(', ')}`);
    try {
      clearOverride(this.deps.configPath, body.kind as OverrideKind, { nowMs: this.deps.clock.wallMs() });
    } catch (e) {
      if (e instanceof OverrideError || e instanceof ConfigError) throw new HttpError(422, e instanceof ConfigError ? e.problems.join('; ') : e.message);
      throw e;
    }
    const reload = await this.deps.reload('web page quick action');
    sendJson(res, 200, { cleared: body.kind, reload });
  }

  ledger(req: IncomingMessage, res: ServerResponse): void {
    this.requireRead(req);
    sendJson(res, 200, { rows: this.queries.ledger(200), months: this.queries.months(36), timezone: zoneOf(this.deps.config()) });
  }

  ledgerCsv(req: IncomingMessage, res: ServerResponse): void {
    this.requireRead(req);
    const day = new Date(this.deps.clock.wallMs()).toISOString().slice(0, 10);
    send(res, 200, this.queries.ledgerCsv(), 'text/csv; charset=utf-8', { 'Cache-Control': 'no-store', 'Content-Disposition': `attachment; filename="wallbox-ledger-${day}.csv"` });
  }

  history(req: IncomingMessage, res: ServerResponse, q: URLSearchParams): void {
    this.requireRead(req);
    const range = q.get('range') ?? '24h';
    if (!(range in RANGES)) throw new HttpError(400, `range: one of ${Object.keys(RANGES).join(', ')}`);
    const cfg = this.deps.config();
    const nowMs = this.deps.clock.nowMs();
    const r = RANGES[range as RangeName];
    sendJson(res, 200, {
      range, fromMs: nowMs - r.spanMs, toMs: nowMs, pointMs: r.pointMs,
      points: this.queries.history(range as RangeName, nowMs), floorPct: cfg.vehicle.dischargeFloorPct, timezone: zoneOf(cfg),
    });
  }

  events(req: IncomingMessage, res: ServerResponse, q: URLSearchParams): void {
    this.requireRead(req);
    const sev = (q.get('severity') ?? '').split(',').filter(Boolean);
    const bad = sev.filter((s) => !SEVERITIES.includes(s as Severity));
    if (bad.length) throw new HttpError(400, `severity: ${bad.join(', ')} is not one of ${SEVERITIES.join(', ')}`);
    const limit = Number(q.get('limit') ?? 100);
    if (!Number.isInteger(limit) || limit < 1 || limit > 500) throw new HttpError(400, 'limit: a whole number from 1 to 500');
    const before = q.get('before');
    const beforeN = before === null ? undefined : Number(before);
    if (beforeN !== undefined && !(Number.isInteger(beforeN) && beforeN > 0)) throw new HttpError(400, 'before: an event number');
    sendJson(res, 200, { events: this.queries.events({ severities: sev as Severity[], limit, beforeN }), timezone: zoneOf(this.deps.config()) });
  }
}

type Route = (this: UiServer, req: IncomingMessage, res: ServerResponse, q: URLSearchParams) => void | Promise<void>;
const ROUTES: Record<string, Route> = {
  'GET /api/session': UiServer.prototype.session,
  'POST /api/login': UiServer.prototype.login,
  'POST /api/logout': UiServer.prototype.logout,
  'GET /api/status': UiServer.prototype.statusRoute,
  'GET /api/stream': UiServer.prototype.stream,
  'GET /api/settings': UiServer.prototype.settingsGet,
  'POST /api/settings': UiServer.prototype.settingsPost,
  'POST /api/actions/set': UiServer.prototype.actionSet,
  'POST /api/actions/clear': UiServer.prototype.actionClear,
  'GET /api/ledger': UiServer.prototype.ledger,
  'GET /api/ledger.csv': UiServer.prototype.ledgerCsv,
  'GET /api/history': UiServer.prototype.history,
  'GET /api/events': UiServer.prototype.events,
};

/** `host:port` or `[v6]:port` (config/schema.json checks the form). */
export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(listen);
  if (!m) throw new Error(`ui.listen: "${listen}" is not host:port`);
  const port = Number(m[3]);
  // 0 (any free port) is for tests; the schema asks a config for 1 to 65535
  if (!(port >= 0 && port <= 65535)) throw new Error(`ui.listen: port ${port} is not 1 to 65535`);
  return { host: m[1] ?? m[2], port };
}
