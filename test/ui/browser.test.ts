/**
 * The page in a real browser: Debian's headless Chromium driven by playwright-core, against a running
 * daemon (`wallbox run`) on simulated hardware, its password set with `wallbox ui password`. Sees the SoC
 * and the floor; a write without a login is refused; logs in; moves the floor slider and the daemon's
 * `status` shows the new floor; an invalid value shows its error next to its field and leaves the config
 * file byte for byte; a quick action taken and ended; events newest first; earnings and the CSV; the
 * history chart. Screenshots go to test-artifacts/ui/.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../src/config/load.ts';
import { askStatus } from '../../src/status-socket.ts';
import { freePort } from '../helpers/broker.ts';
import { waitFor as poll } from '../helpers/wait.ts';

const waitFor = <T>(what: string, fn: () => Promise<T | undefined> | T | undefined, tries = 200, everyMs = 100): Promise<T> => poll(what, fn, tries, everyMs);

const CLI = join(PROJECT_ROOT, 'src/cli.ts');
const ARTIFACTS = join(PROJECT_ROOT, 'test-artifacts', 'ui');
const PASSWORD = 'plug it in 2026';

function chromiumPath(): string | undefined {
  for (const p of [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'].filter(Boolean) as string[]) if (existsSync(p)) return p;
  return undefined;
}

type Status = { socPct: number; floors: { dischargeFloorPct: number; effectiveFloorPct: number; backupFloorPct: number }; site: { gridPowerW: number | null } };

const browser = chromiumPath();

describe('web page in Chromium', { skip: browser ? false : 'Chromium is not installed (apt-get install chromium; .ci/run installs it)' }, () => {
  test('see SoC and floor, refuse a write without login, log in, move the floor, refuse an invalid value', async () => {
    const { chromium } = await import('playwright-core');
    const dir = mkdtempSync(join(tmpdir(), 'wallbox-ui-browser-'));
    const cfg = join(dir, 'local.json');
    const invPort = await freePort();
    const uiPort = await freePort();
    writeFileSync(cfg, JSON.stringify({
      deviceId: 'browser-test', storage: { path: join(dir, 'wallbox.db'), sampleFlushS: 2 }, uplink: { url: null },
      vehicle: { dischargeFloorPct: 40, v2gEnabled: true },
      simulation: { serveInverter: true, servePort: invPort }, inverter: { driver: 'sunspec', modbus: { host: '127.0.0.1', port: invPort } }, vehicleLink: { driver: 'sim' }, gpio: { driver: 'sim' },
      siteMeter: { driver: 'sim' },
      ui: { listen: `127.0.0.1:${uiPort}` },
    }, null, 2) + '\n');
    // the password as an installer sets it
    const pw = spawnSync(process.execPath, ['--import', 'tsx', CLI, 'ui', 'password', '--config', cfg], { cwd: PROJECT_ROOT, input: `${PASSWORD}\n`, encoding: 'utf8' });
    assert.equal(pw.status, 0, pw.stderr);
    assert.match(pw.stdout, /password set/);

    const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', CLI, 'run', '--config', cfg], { cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (out += d));
    const sock = join(dir, 'wallbox.sock');
    const base = `http://127.0.0.1:${uiPort}`;
    mkdirSync(ARTIFACTS, { recursive: true });
    // --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start; the page is our own, on loopback
    const b = await chromium.launch({ executablePath: browser, args: ['--no-sandbox'] });
    try {
      const status = () => askStatus(sock, { cmd: 'status' }, 1000) as Promise<Status>;
      await waitFor('daemon status', async () => ((await status()).socPct !== null ? true : undefined));
      await waitFor('web page', () => (/web page on http:\/\/127\.0\.0\.1:/.test(out) ? true : undefined));

      const ctx = await b.newContext({ viewport: { width: 390, height: 844 } });
      const page = await ctx.newPage();
      const pageErrors: string[] = [];
      page.on('pageerror', (e) => pageErrors.push(e.message));
      await page.goto(base);

      // reading is private by default: the login form is what a stranger sees
      await page.waitForSelector('#login-view:not([hidden])');
      await page.screenshot({ path: join(ARTIFACTS, '1-login.png') });
      const before = readFileSync(cfg, 'utf8');
      const anonymous = await page.evaluate(async () => {
        const r = await fetch('/api/settings', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ 'vehicle.dischargeFloorPct': 10 }) });
        return r.status;
      });
      assert.equal(anonymous, 401, 'a write without login is refused');
      assert.equal(readFileSync(cfg, 'utf8'), before);

      // a wrong password is said so, the right one opens the page
      await page.fill('#login-password', 'not the password');
      await page.click('#login-submit');
      await page.waitForSelector('#login-error:not(:empty)');
      assert.match(await page.textContent('#login-error') ?? '', /wrong password/);
      await page.fill('#login-password', PASSWORD);
      await page.click('#login-submit');
      await page.waitForSelector('#now:not([hidden])');

      // SoC and floor as the daemon has them
      await page.waitForFunction(() => document.querySelector('#soc-value')?.textContent !== '--');
      const s1 = await status();
      const shownSoc = Number(await page.textContent('#soc-value'));
      assert.ok(Math.abs(shownSoc - s1.socPct) < 1, `page SoC ${shownSoc} vs daemon ${s1.socPct}`);
      assert.equal(Number(await page.textContent('#floor-value')), s1.floors.effectiveFloorPct);
      assert.equal(s1.floors.dischargeFloorPct, 40);
      assert.ok(await page.isVisible('#gauge-floor'), 'the floor is drawn on the gauge');
      // the site meter's grid figure, in words, with the direction the daemon's status gives
      await page.waitForSelector('#meter-row:not([hidden])');
      const meterText = (await page.textContent('#meter')) ?? '';
      const gridW = (await status()).site.gridPowerW ?? NaN;
      assert.match(meterText, gridW >= 0 ? /^taking \d+\.\d kW from the grid$/ : /^giving \d+\.\d kW to the grid$/, `${meterText} (daemon: ${gridW} W)`);
      await page.waitForSelector('#live.ok');
      await page.screenshot({ path: join(ARTIFACTS, '2-now.png'), fullPage: true });

      // a quick action from the page: listed on the page with its end, V2G shown paused, then ended
      await page.fill('form[data-kind="pauseV2g"] input[name="until"]', '3h');
      await page.click('form[data-kind="pauseV2g"] button');
      await page.waitForSelector('#overrides [data-clear="pauseV2g"]');
      assert.match(await page.textContent('#overrides') ?? '', /V2G paused until \d{4}-\d{2}-\d{2} \d{2}:\d{2}/);
      await page.waitForFunction(() => document.querySelector('#v2g')?.textContent === 'paused');
      assert.equal(JSON.parse(readFileSync(cfg, 'utf8')).overrides.pauseV2g.by, 'ui');
      await page.screenshot({ path: join(ARTIFACTS, '2b-quick-action.png'), fullPage: true });
      await page.click('#overrides [data-clear="pauseV2g"]');
      await page.waitForFunction(() => document.querySelector('#overrides')?.children.length === 0);
      await page.waitForFunction(() => document.querySelector('#v2g')?.textContent === 'on');

      // move the floor slider and save: the running daemon takes it
      await page.click('#nav a[data-view="settings"]');
      const slider = page.locator('[data-key="vehicle.dischargeFloorPct"]');
      await slider.waitFor();
      assert.equal(await slider.inputValue(), '40');
      await slider.fill('55');
      await page.click('#settings-save');
      await page.waitForSelector('#settings-note:not(:empty)');
      assert.match(await page.textContent('#settings-note') ?? '', /Saved: Discharge floor/);
      await waitFor('daemon floor 55', async () => ((await status()).floors.dischargeFloorPct === 55 ? true : undefined));
      assert.equal(JSON.parse(readFileSync(cfg, 'utf8')).vehicle.dischargeFloorPct, 55, 'written to the config file');
      assert.equal(JSON.parse(readFileSync(cfg, 'utf8')).vehicle.v2gEnabled, true, 'the other keys of the section kept');

      // an invalid value: the backup floor above the discharge floor; its error beside it, the file unchanged
      const good = readFileSync(cfg, 'utf8');
      await page.locator('[data-key="vehicle.backupFloorPct"]').fill('70');
      await page.click('#settings-save');
      const err = page.locator('.err[data-for="vehicle.backupFloorPct"]');
      await err.waitFor({ state: 'visible' });
      const errText = (await err.textContent()) ?? '';
      assert.match(errText, /must not exceed the discharge floor \(70 > 55\)/);
      assert.match(errText, /Not saved/);
      assert.equal(readFileSync(cfg, 'utf8'), good, 'the config file is byte for byte unchanged');
      assert.equal((await status()).floors.backupFloorPct, 20);
      await page.screenshot({ path: join(ARTIFACTS, '3-settings-refused.png'), fullPage: true });

      // the Now view follows the new floor live
      await page.click('#nav a[data-view="now"]');
      await page.waitForFunction(() => document.querySelector('#floor-value')?.textContent === '55');

      // events: newest first, and the config change is among them
      await page.click('#nav a[data-view="events"]');
      await page.waitForSelector('#event-list li');
      const evs = await page.evaluate(async () => (await (await fetch('/api/events?limit=50')).json()).events as { n: number }[]);
      assert.ok(evs.length > 0);
      for (let i = 1; i < evs.length; i++) assert.ok(evs[i - 1].n > evs[i].n, 'newest first');
      await page.screenshot({ path: join(ARTIFACTS, '4-events.png'), fullPage: true });

      // earnings and the CSV download
      await page.click('#nav a[data-view="earnings"]');
      await page.waitForSelector('#months tbody tr');
      const csv = await page.evaluate(async () => (await fetch('/api/ledger.csv')).text());
      assert.match(csv.split('\r\n')[0], /dispatchId/);

      // history from the rollups (samples are flushed every 2 s in this config)
      await page.click('#nav a[data-view="history"]');
      await waitFor('history points', async () => {
        await page.click('#ranges button[data-range="24h"]');
        await page.waitForTimeout(300);
        const d = (await page.locator('#chart-soc path.line').getAttribute('d').catch(() => null)) ?? '';
        return /^M[\d.]+,[\d.]+L/.test(d) ? true : undefined;
      }, 40, 500);
      await page.screenshot({ path: join(ARTIFACTS, '5-history.png'), fullPage: true });

      // logged out, writes are refused again
      await page.click('#logout');
      const after = await page.evaluate(async () => (await fetch('/api/settings', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"vehicle.dischargeFloorPct": 10}' })).status);
      assert.equal(after, 401);
      assert.deepEqual(pageErrors, []);
    } finally {
      await b.close();
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)));
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
