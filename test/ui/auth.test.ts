/**
 * The page's login: scrypt hash on disk (never the password), sessions end with a new password and with
 * time and outlive a restart of the daemon (kept by the hash of their token, never the token), failures
 * from one address wait longer and longer, `wallbox ui password` refuses a short one.
 * Time is a hand-moved clock: no test waits for a lockout to pass.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { scryptSync } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Auth, FREE_FAILURES, hashPassword, passwordFilePath, sessionsFilePath, writePasswordFile } from '../../src/ui/auth.ts';
import { uiCommand } from '../../src/ui/cli-password.ts';

function dir(): { d: string; done: () => void } {
  const d = mkdtempSync(join(tmpdir(), 'wallbox-ui-auth-'));
  return { d, done: () => rmSync(d, { recursive: true, force: true }) };
}

test('the file holds a scrypt hash that RFC 7914 scrypt reproduces, not the password; readable by owner and group only', async () => {
  const { d, done } = dir();
  try {
    const path = join(d, 'ui-password.json');
    writePasswordFile(path, await hashPassword('kitchen lights'));
    const text = readFileSync(path, 'utf8');
    assert.doesNotMatch(text, /kitchen/);
    const rec = JSON.parse(text);
    // recomputed independently with the stored parameters
    const again = scryptSync('kitchen lights', Buffer.from(rec.salt, 'base64'), Buffer.from(rec.hash, 'base64').length, { N: rec.N, r: rec.r, p: rec.p, maxmem: 64 * 1024 * 1024 });
    assert.equal(again.toString('base64'), rec.hash);
    assert.equal(statSync(path).mode & 0o777, 0o640);
  } finally {
    done();
  }
});

test('login, sessions, a new password ends the old sessions, sessions expire', async () => {
  const { d, done } = dir();
  try {
    const path = join(d, 'ui-password.json');
    let now = 1_000_000;
    const auth = new Auth({ passwordPath: path, nowMs: () => now, wallMs: () => now, sessionMs: 60_000 });
    assert.equal((await auth.login('10.0.0.2', 'anything')).ok, false, 'no password set: nobody logs in');
    writePasswordFile(path, await hashPassword('first password'));
    const r = await auth.login('10.0.0.2', 'first password');
    assert.ok(r.ok);
    const token = (r as { token: string }).token;
    assert.ok(auth.check(token));
    assert.equal(auth.check(token + 'x'), false);
    now += 59_000;
    assert.ok(auth.check(token));
    now += 2000;
    assert.equal(auth.check(token), false, 'expired');
    const r2 = await auth.login('10.0.0.2', 'first password');
    const t2 = (r2 as { token: string }).token;
    assert.ok(auth.check(t2));
    // a new password (the file is replaced, so the change is seen whatever the file system's time stamps)
    writePasswordFile(path, await hashPassword('the second password'));
    assert.equal(auth.check(t2), false, 'the old password\'s sessions end');
    assert.equal((await auth.login('10.0.0.2', 'first password')).ok, false);
    assert.ok((await auth.login('10.0.0.2', 'the second password')).ok);
  } finally {
    done();
  }
});

test('failed logins: the address waits after a few, longer each time; other addresses are not locked out', async () => {
  const { d, done } = dir();
  try {
    const path = join(d, 'ui-password.json');
    writePasswordFile(path, await hashPassword('right one!'));
    let now = 5_000_000;
    const auth = new Auth({ passwordPath: path, nowMs: () => now });
    for (let i = 0; i < FREE_FAILURES - 1; i++) assert.equal((await auth.login('a', 'wrong')).ok, false);
    const fifth = await auth.login('a', 'wrong');
    assert.equal(fifth.ok, false);
    const wait1 = (fifth as { retryAfterS?: number }).retryAfterS!;
    assert.ok(wait1 >= 1);
    const locked = await auth.login('a', 'right one!');
    assert.equal(locked.ok, false);
    assert.equal((locked as { status: number }).status, 429);
    assert.ok((await auth.login('b', 'right one!')).ok, 'another address is not locked');
    now += wait1 * 1000;
    const sixth = await auth.login('a', 'wrong');
    const wait2 = (sixth as { retryAfterS?: number }).retryAfterS!;
    assert.equal(wait2, wait1 * 2, 'the wait doubles');
    now += wait2 * 1000;
    assert.ok((await auth.login('a', 'right one!')).ok, 'after the wait the right password works');
  } finally {
    done();
  }
});

test('wallbox ui password: stores the hash beside the database; a short password changes nothing', async () => {
  const { d, done } = dir();
  try {
    const cfg = join(d, 'local.json');
    writeFileSync(cfg, JSON.stringify({ deviceId: 'pw', storage: { path: join(d, 'data', 'wallbox.db') }, inverter: { modbus: { host: '127.0.0.1' } } }));
    const out: string[] = [];
    const err: string[] = [];
    const io = (pw: string) => ({ out: (s: string) => out.push(s), err: (s: string) => err.push(s), env: {}, readPassword: async () => pw });
    assert.equal(await uiCommand(['password', '--config', cfg], io('short')), 1);
    assert.match(err.join('\n'), /at least 8 characters.*nothing was changed/);
    assert.throws(() => statSync(passwordFilePath(join(d, 'data', 'wallbox.db'))));
    assert.equal(await uiCommand(['password', '--config', cfg], io('long enough pass')), 0);
    const path = passwordFilePath(join(d, 'data', 'wallbox.db'));
    assert.equal(path, join(d, 'data', 'ui-password.json'));
    const auth = new Auth({ passwordPath: path, nowMs: () => 0 });
    assert.ok((await auth.login('x', 'long enough pass')).ok);
    assert.equal(await uiCommand(['passwd', '--config', cfg], io('long enough pass')), 2);
  } finally {
    done();
  }
});

test('sessions outlive a restart: a new Auth on the same files knows the token; the file holds no token; logout, expiry and a new password end it; a garbage file is no sessions', async () => {
  const { d, done } = dir();
  try {
    const storage = join(d, 'wallbox.db');
    const path = passwordFilePath(storage);
    const sessionsPath = sessionsFilePath(storage);
    writePasswordFile(path, await hashPassword('garage door'));
    let wall = Date.parse('2026-12-01T20:00:00Z');
    // the monotonic clock starts again at each process; the calendar does not
    const auth = (mono = 0) => new Auth({ passwordPath: path, sessionsPath, nowMs: () => mono, wallMs: () => wall, sessionMs: 86_400_000 });
    const first = auth();
    const token = ((await first.login('10.0.0.9', 'garage door')) as { token: string }).token;
    const other = ((await first.login('10.0.0.9', 'garage door')) as { token: string }).token;
    const text = readFileSync(sessionsPath, 'utf8');
    assert.ok(!text.includes(token) && !text.includes(other), 'the file gives nobody a session');
    assert.equal(statSync(sessionsPath).mode & 0o777, 0o600);

    const restarted = auth(5);
    assert.ok(restarted.check(token), 'logged in after the restart');
    assert.ok(restarted.check(other));
    restarted.logout(other);
    assert.equal(auth(7).check(other), false, 'a logout holds across a restart');
    assert.ok(auth(7).check(token));

    wall += 86_400_000;
    assert.equal(auth(9).check(token), false, 'expired on the calendar, whatever the monotonic clock says');

    // a new password ends the kept sessions too
    wall = Date.parse('2026-12-02T21:00:00Z');
    const t3 = ((await auth().login('10.0.0.9', 'garage door')) as { token: string }).token;
    writePasswordFile(path, await hashPassword('another password'));
    assert.equal(auth().check(t3), false);

    for (const garbage of ['', 'not json', '{"sessions": 7}', JSON.stringify({ sessions: [{ id: 'x', expiresMs: 'soon' }, null, 5] }), 'x'.repeat(70 * 1024)]) {
      writeFileSync(sessionsPath, garbage);
      assert.equal(auth().check(t3), false, garbage.slice(0, 20));
    }
  } finally {
    done();
  }
});
