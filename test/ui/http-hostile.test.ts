/**
 * The page's server against hostile HTTP: oversized bodies (413), wrong content types (415), path
 * traversal in asset URLs, unknown keys (400 naming the key), cross-site writes, writes without a login,
 * guessed passwords, too many live streams, malformed requests, a name the page does not answer to (DNS
 * rebinding), and 1,000 requests in a second: each
 * answered, bounded, and the server still serving afterwards.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { Agent, request } from 'node:http';
import { FREE_FAILURES } from '../../src/ui/auth.ts';
import { allowedHostNames, hostAllowed, MAX_BODY_BYTES } from '../../src/ui/http.ts';
import { hostname } from 'node:os';
import { MAX_CONNECTIONS } from '../../src/ui/server.ts';
import { http, JSON_HEADERS, login, startHarness, type Harness } from './helpers.ts';

describe('web page: hostile HTTP', () => {
  let h: Harness;
  let cookie: string;
  before(async () => {
    h = await startHarness();
    cookie = await login(h.port);
  });
  after(() => h.close());

  const fileText = () => readFileSync(h.cfgPath, 'utf8');

  test('an oversized body is refused with 413 before it is read, declared or not, and nothing is written', async () => {
    const before = fileText();
    const big = JSON.stringify({ 'vehicle.dischargeFloorPct': 55, pad: 'x'.repeat(MAX_BODY_BYTES) });
    const declared = await http(h.port, 'POST', '/api/settings', { headers: { ...JSON_HEADERS, Cookie: cookie }, body: big });
    assert.equal(declared.status, 413, declared.body);
    assert.match(String(declared.json().error), /more than the 16384/);
    // chunked: no Content-Length, the limit is counted as it arrives
    const chunked = await new Promise<number>((res, rej) => {
      const req = request({ host: '127.0.0.1', port: h.port, method: 'POST', path: '/api/settings', headers: { ...JSON_HEADERS, Cookie: cookie, 'Transfer-Encoding': 'chunked' }, agent: false }, (r) => {
        r.resume();
        res(r.statusCode ?? 0);
      });
      req.on('error', (e) => ((e as NodeJS.ErrnoException).code === 'ECONNRESET' || (e as NodeJS.ErrnoException).code === 'EPIPE' ? res(-1) : rej(e)));
      for (let i = 0; i < 40; i++) req.write('x'.repeat(1024));
      req.end();
    });
    assert.equal(chunked, 413);
    assert.equal(fileText(), before, 'the config file is unchanged');
  });

  test('wrong content types are refused with 415 (a cross-site form cannot post JSON)', async () => {
    for (const type of ['application/x-www-form-urlencoded', 'text/plain', 'multipart/form-data; boundary=x', undefined]) {
      const r = await http(h.port, 'POST', '/api/settings', { headers: { ...(type ? { 'Content-Type': type } : {}), Cookie: cookie }, body: 'vehicle.dischargeFloorPct=10' });
      assert.equal(r.status, 415, `${type}: ${r.body}`);
    }
    const login415 = await http(h.port, 'POST', '/api/login', { headers: { 'Content-Type': 'text/plain' }, body: '{"password":"x"}' });
    assert.equal(login415.status, 415);
  });

  test('path traversal in asset URLs reaches no file outside the page', async () => {
    const secret = readFileSync(h.cfgPath, 'utf8');
    const paths = [
      '/../package.json', '/..%2fpackage.json', '/%2e%2e/%2e%2e/etc/passwd', '/ui/../config/default.json', '/app.js/../../package.json',
      '/..\\..\\package.json', '/%2e%2e%5c%2e%2e%5cpackage.json', '//etc/passwd', '/app.js%00.html', '/.%2e/.%2e/src/ui/server.ts', '/index.html/..%2f..%2fconfig%2fdefault.json',
    ];
    for (const p of paths) {
      // raw request line: the client must not normalise the path first
      const raw = await new Promise<string>((res) => {
        const s = connect(h.port, '127.0.0.1', () => s.end(`GET ${p} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`));
        let out = '';
        s.on('data', (d) => (out += d));
        s.on('close', () => res(out));
        s.on('error', () => res(out));
      });
      const status = Number(/^HTTP\/1\.1 (\d+)/.exec(raw)?.[1]);
      assert.ok(status === 404 || status === 400 || status === 200, `${p}: ${raw.slice(0, 80)}`);
      assert.doesNotMatch(raw, /"name": "wallbox-runtime"|root:x:0|"deviceId": "ui-test"|class UiServer/, `${p} leaked a file`);
      if (status === 200) assert.ok(raw.includes('The wallbox page') || raw.includes('<!doctype html>'), `${p}: only a page asset may come back`);
      assert.ok(!raw.includes(secret));
    }
  });

  test('unknown keys are refused with 400 naming the key, and nothing is written', async () => {
    const before = fileText();
    const r = await http(h.port, 'POST', '/api/settings', { headers: { ...JSON_HEADERS, Cookie: cookie }, body: JSON.stringify({ 'vehicle.dischargeFloorPct': 60, 'uplink.url': 'mqtt://evil.example', 'vehicle.floorr': 3 }) });
    assert.equal(r.status, 400, r.body);
    assert.match(String(r.json().error), /uplink\.url/);
    assert.match(String(r.json().error), /vehicle\.floorr/);
    assert.deepEqual(r.json().unknown, ['uplink.url', 'vehicle.floorr']);
    const proto = await http(h.port, 'POST', '/api/settings', { headers: { ...JSON_HEADERS, Cookie: cookie }, body: '{"__proto__": {"polluted": true}}' });
    assert.equal(proto.status, 400);
    assert.match(String(proto.json().error), /__proto__/);
    const action = await http(h.port, 'POST', '/api/actions/set', { headers: { ...JSON_HEADERS, Cookie: cookie }, body: JSON.stringify({ kind: 'boost', power: 9 }) });
    assert.equal(action.status, 400);
    assert.match(String(action.json().error), /power/);
    const badJson = await http(h.port, 'POST', '/api/settings', { headers: { ...JSON_HEADERS, Cookie: cookie }, body: '{"vehicle.dischargeFloorPct": ' });
    assert.equal(badJson.status, 400);
    assert.equal(fileText(), before);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });

  test('writes need a login, and a cross-site request is refused even with the cookie', async () => {
    const before = fileText();
    const body = JSON.stringify({ 'vehicle.dischargeFloorPct': 20 });
    const anon = await http(h.port, 'POST', '/api/settings', { headers: JSON_HEADERS, body });
    assert.equal(anon.status, 401);
    const forged = await http(h.port, 'POST', '/api/settings', { headers: { ...JSON_HEADERS, Cookie: 'wallbox_session=' + 'A'.repeat(43) }, body });
    assert.equal(forged.status, 401);
    const cross = await http(h.port, 'POST', '/api/settings', { headers: { ...JSON_HEADERS, Cookie: cookie, Origin: 'http://evil.example', Host: `127.0.0.1:${h.port}` }, body });
    assert.equal(cross.status, 403);
    const crossSite = await http(h.port, 'POST', '/api/settings', { headers: { ...JSON_HEADERS, Cookie: cookie, 'Sec-Fetch-Site': 'cross-site' }, body });
    assert.equal(crossSite.status, 403);
    assert.equal(fileText(), before);
    // the same request from the page's own origin goes through
    const ok = await http(h.port, 'POST', '/api/settings', { headers: { ...JSON_HEADERS, Cookie: cookie, Origin: `http://127.0.0.1:${h.port}`, Host: `127.0.0.1:${h.port}`, 'Sec-Fetch-Site': 'same-origin' }, body });
    assert.equal(ok.status, 200, ok.body);
    assert.equal(JSON.parse(fileText()).vehicle.dischargeFloorPct, 20);
    // reading is private unless ui.publicRead
    assert.equal((await http(h.port, 'GET', '/api/status')).status, 401);
    assert.equal((await http(h.port, 'GET', '/api/events')).status, 401);
    assert.equal((await http(h.port, 'GET', '/api/ledger.csv')).status, 401);
    assert.equal((await http(h.port, 'GET', '/api/status', { headers: { Cookie: cookie } })).status, 200);
  });

  test('the session cookie is HttpOnly and SameSite=Strict', async () => {
    const r = await http(h.port, 'POST', '/api/login', { headers: JSON_HEADERS, body: JSON.stringify({ password: 'garage door 42' }) });
    const set = String(r.headers['set-cookie']?.[0]);
    assert.match(set, /HttpOnly/);
    assert.match(set, /SameSite=Strict/);
    assert.match(set, /Path=\//);
  });

  test('malformed requests are answered 400, unknown methods 405, unknown APIs 404', async () => {
    const raw = (text: string) =>
      new Promise<string>((res) => {
        const s = connect(h.port, '127.0.0.1', () => s.end(text));
        let out = '';
        s.on('data', (d) => (out += d));
        s.on('close', () => res(out));
        s.on('error', () => res(out));
      });
    assert.match(await raw('BLAH\r\n\r\n'), /^HTTP\/1\.1 400/);
    assert.match(await raw(`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`), /^HTTP\/1\.1 (400|431)/);
    assert.equal((await http(h.port, 'DELETE', '/api/settings', { headers: { Cookie: cookie } })).status, 405);
    assert.equal((await http(h.port, 'PUT', '/app.js')).status, 405);
    assert.equal((await http(h.port, 'GET', '/api/nothing-here')).status, 404);
    assert.equal((await http(h.port, 'GET', '/api/events?severity=catastrophe', { headers: { Cookie: cookie } })).status, 400);
    assert.equal((await http(h.port, 'GET', '/api/history?range=1y', { headers: { Cookie: cookie } })).status, 400);
    assert.equal((await http(h.port, 'GET', '/api/events?limit=100000', { headers: { Cookie: cookie } })).status, 400);
  });

  test('guessing the password: after a few failures the address waits, and the right password waits too', async () => {
    const g = await startHarness();
    try {
      const statuses: number[] = [];
      for (let i = 0; i < FREE_FAILURES + 2; i++) {
        const r = await http(g.port, 'POST', '/api/login', { headers: JSON_HEADERS, body: JSON.stringify({ password: `guess-${i}` }) });
        statuses.push(r.status);
      }
      assert.deepEqual(statuses.slice(0, FREE_FAILURES), Array(FREE_FAILURES).fill(401));
      assert.ok(statuses.slice(FREE_FAILURES).every((s) => s === 429), statuses.join(','));
      const right = await http(g.port, 'POST', '/api/login', { headers: JSON_HEADERS, body: JSON.stringify({ password: 'garage door 42' }) });
      assert.equal(right.status, 429, 'locked out: even the right password waits');
      assert.ok(Number(right.headers['retry-after']) >= 1);
      assert.equal(right.headers['set-cookie'], undefined);
    } finally {
      await g.close();
    }
  });

  test('live streams are bounded by ui.maxStreams; the next one is told to wait', async () => {
    const g = await startHarness({ maxStreams: 2, publicRead: true });
    const open: (() => void)[] = [];
    try {
      const stream = () =>
        new Promise<number>((res) => {
          const req = request({ host: '127.0.0.1', port: g.port, path: '/api/stream', agent: false }, (r) => {
            res(r.statusCode ?? 0);
            r.resume();
          });
          open.push(() => req.destroy());
          req.end();
        });
      assert.equal(await stream(), 200);
      assert.equal(await stream(), 200);
      assert.equal(await stream(), 503);
      open.shift()!();
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(await stream(), 200, 'a closed stream frees its place');
    } finally {
      for (const c of open) c();
      await g.close();
    }
  });

  test('1,000 requests in a second: every one answered (200 or 429), the server still serves after', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 50 });
    const t0 = Date.now();
    const results = await Promise.all(
      Array.from({ length: 1000 }, (_, i) =>
        new Promise<number>((res) => {
          const path = ['/api/session', '/', '/api/status', '/app.js', '/nope'][i % 5];
          const req = request({ host: '127.0.0.1', port: h.port, path, agent, headers: { Cookie: cookie } }, (r) => {
            r.resume();
            r.on('end', () => res(r.statusCode ?? 0));
          });
          req.on('error', () => res(-1));
          req.end();
        }),
      ),
    );
    agent.destroy();
    const counts = new Map<number, number>();
    for (const s of results) counts.set(s, (counts.get(s) ?? 0) + 1);
    assert.equal(counts.get(-1), undefined, `every request answered: ${JSON.stringify([...counts])}`);
    assert.ok([...counts.keys()].every((s) => [200, 404, 429].includes(s)), JSON.stringify([...counts]));
    assert.ok((counts.get(429) ?? 0) > 0, 'the request budget held');
    assert.ok(Date.now() - t0 < 30_000);
    // the budget refills: a person coming back a little later is served
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal((await http(h.port, 'GET', '/api/session')).status, 200);
  });

  test(`more connections than MAX_CONNECTIONS (${MAX_CONNECTIONS}) at once: extra ones are closed, the server keeps serving`, async () => {
    const sockets = await Promise.all(
      Array.from({ length: MAX_CONNECTIONS + 40 }, () => new Promise<ReturnType<typeof connect>>((res) => {
        const s = connect(h.port, '127.0.0.1', () => res(s));
        s.on('error', () => res(s));
      })),
    );
    await new Promise((r) => setTimeout(r, 300));
    for (const s of sockets) s.destroy();
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal((await http(h.port, 'GET', '/api/session')).status, 200);
  });
});

describe('web page: the names it answers to (DNS rebinding)', () => {
  test('a public page read through a name of another site is refused with 421; its addresses, localhost, the board\'s names and ui.allowedHosts are served', async (t) => {
    const h = await startHarness({ publicRead: true, allowedHosts: ['wallbox.home.arpa'] });
    t.after(() => h.close());
    const get = (host: string) => http(h.port, 'GET', '/api/status', { headers: { Host: host } });
    // a page on attacker.example whose DNS now points at the board: same origin to the browser
    const rebound = await get(`attacker.example:${h.port}`);
    assert.equal(rebound.status, 421);
    assert.match(rebound.body, /does not answer to the name attacker\.example/);
    assert.match(rebound.body, /ui\.allowedHosts/);
    assert.equal((await get(`evil.localhost.attacker.example`)).status, 421);
    for (const ok of [`127.0.0.1:${h.port}`, '192.168.1.50', '[::1]:8080', `localhost:${h.port}`, 'LOCALHOST', hostname(), `${hostname()}.local`, 'wallbox.home.arpa:80', 'wallbox.home.arpa.']) {
      assert.equal((await get(ok)).status, 200, ok);
    }
    // the page itself (assets), not only the API
    assert.equal((await http(h.port, 'GET', '/', { headers: { Host: 'attacker.example' } })).status, 421);
  });

  test('hostAllowed alone: names, ports, brackets, no Host', () => {
    const names = allowedHostNames('wallbox-7', '192.168.1.50:8080', ['garage.lan']);
    assert.ok(hostAllowed(undefined, names), 'HTTP/1.0 without Host');
    for (const h of ['wallbox-7', 'WALLBOX-7.local:8080', 'garage.lan', '10.0.0.1', '[fe80::1]:80', 'localhost']) assert.ok(hostAllowed(h, names), h);
    for (const h of ['garage.lan.attacker.example', 'wallbox-7.attacker.example', '1.2.3.4.nip.io', '[::1].evil', '']) assert.ok(!hostAllowed(h, names), h);
    assert.ok(allowedHostNames('pi', 'wallbox.lan:8080', []).has('wallbox.lan'), 'the name in ui.listen');
  });
});
