/**
 * The web page's cost (issue 13 figures), on the production build as systemd runs it:
 * - page weight: bytes transferred on a first load (the HTML, what it references, the first API answers
 *   and the first live status event), gzip as a browser asks for it, and uncompressed;
 * - the daemon's RSS and CPU % of one core over BENCH_WEB_S seconds (default 60) each: the page served but
 *   nobody looking; one real browser (Debian's headless Chromium) with the page open and streaming; and the
 *   most live streams the default config allows (8) open at once.
 * The simulated inverter lives in this process, as in bench/daemon.ts, so the daemon's figures compare.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request, type IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../src/config/load.ts';
import { freePort } from '../test/helpers/broker.ts';
import { SimSite } from '../hal/sim/site.ts';
import { startSimSunspecServer } from '../hal/sim/sunspec-server.ts';
import { systemClock } from '../hal/system-clock.ts';
import { runIfMain } from './stats.ts';

const CLK_TCK = 100; // Linux USER_HZ
const MAX_STREAMS = 8;

function procStats(pid: number): { cpuTicks: number; rssKb: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return { cpuTicks: Number(fields[11]) + Number(fields[12]), rssKb: rss ? Number(rss[1]) : NaN };
}

/** RSS (median and max of one reading a second) and CPU of `pid` over `seconds`. */
async function measure(pid: number, seconds: number): Promise<{ rssMb: number; maxRssMb: number; cpuPct: number }> {
  const a = procStats(pid);
  const t0 = process.hrtime.bigint();
  const rss: number[] = [a.rssKb];
  const timer = setInterval(() => {
    try {
      rss.push(procStats(pid).rssKb);
    } catch {
      // exited
    }
  }, 1000);
  await new Promise((r) => setTimeout(r, seconds * 1000));
  clearInterval(timer);
  const b = procStats(pid);
  rss.push(b.rssKb);
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  const sorted = rss.sort((x, y) => x - y);
  return { rssMb: sorted[Math.floor(sorted.length / 2)] / 1024, maxRssMb: sorted[sorted.length - 1] / 1024, cpuPct: ((b.cpuTicks - a.cpuTicks) / CLK_TCK / s) * 100 };
}

/** One GET: status, header bytes and body bytes as they came over the wire. */
function get(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: IncomingHttpHeaders; wireBytes: number; body: Buffer }> {
  return new Promise((res, rej) => {
    const req = request({ host: '127.0.0.1', port, path, headers, agent: false }, (r) => {
      const chunks: Buffer[] = [];
      r.on('data', (c: Buffer) => chunks.push(c));
      r.on('end', () => {
        const body = Buffer.concat(chunks);
        const headerBytes = r.rawHeaders.reduce((n, h) => n + Buffer.byteLength(h) + 2, 0) + 20;
        res({ status: r.statusCode ?? 0, headers: r.headers, wireBytes: headerBytes + body.length, body });
      });
    });
    req.on('error', rej);
    req.end();
  });
}

/** A live stream held open; resolves with its first event's size once it arrives. */
function openStream(port: number): { first: Promise<number>; close: () => void } {
  let close = () => {};
  const first = new Promise<number>((res, rej) => {
    const req = request({ host: '127.0.0.1', port, path: '/api/stream', agent: false }, (r) => {
      if (r.statusCode !== 200) return rej(new Error(`stream answered ${r.statusCode}`));
      let buf = '';
      let done = false;
      r.setEncoding('utf8');
      r.on('data', (d: string) => {
        buf += d;
        const i = buf.indexOf('\n\nevent: status');
        const end = i >= 0 ? buf.indexOf('\n\n', i + 2) : -1;
        if (!done && end >= 0) {
          done = true;
          res(Buffer.byteLength(buf.slice(0, end + 2)));
        }
      });
    });
    req.on('error', () => {});
    close = () => req.destroy();
    req.end();
  });
  return { first, close: () => close() };
}

export async function main(): Promise<void> {
  const cli = join(PROJECT_ROOT, 'dist/src/cli.js');
  if (!existsSync(join(PROJECT_ROOT, 'dist/src/ui/server.js'))) {
    console.log('building dist/ (npm run build)');
    execFileSync('npm', ['run', '--silent', 'build'], { cwd: PROJECT_ROOT, stdio: 'inherit' });
  }
  const seconds = Number(process.env.BENCH_WEB_S ?? 60);
  const dir = mkdtempSync(join(tmpdir(), 'wallbox-bench-web-'));
  const site = new SimSite({ clock: systemClock, vehicle: { capacityWh: 60000, socPct: 70, maxChargeW: 11000, maxDischargeW: 11000 }, inverter: { ratedW: 11000, efficiency: 0.95 }, houseLoadW: 600, sheddableLoadsW: [] });
  site.startPhysics(250);
  const inverterPort = await freePort();
  const inverter = await startSimSunspecServer({ port: inverterPort, host: '127.0.0.1', inverter: site.inverter, car: site.car, clock: systemClock });
  const uiPort = await freePort();
  const writeConfig = (name: string, ui: object | null) => {
    const p = join(dir, `${name}.json`);
    writeFileSync(p, JSON.stringify({
      deviceId: 'bench-web', timezone: 'UTC', storage: { path: join(dir, `${name}.db`) },
      inverter: { driver: 'sunspec', modbus: { host: '127.0.0.1', port: inverterPort } }, vehicleLink: { driver: 'sim' }, gpio: { driver: 'sim' },
      simulation: { serveInverter: false }, control: { tickS: 1 }, uplink: { url: null }, ...(ui ? { ui } : {}),
    }));
    return p;
  };
  const line = (what: string, m: Awaited<ReturnType<typeof measure>>) =>
    console.log(`${what} over ${seconds} s: RSS median ${m.rssMb.toFixed(1)} MB, max ${m.maxRssMb.toFixed(1)} MB; CPU ${m.cpuPct.toFixed(2)} % of one core`);
  let child: ChildProcess | undefined;
  try {
    // the baseline: the same daemon without the page (ui.listen null: its modules are not even loaded)
    const base = spawn(process.execPath, [cli, 'run', '--config', writeConfig('off', null)], { stdio: ['ignore', 'ignore', 'ignore'] });
    await new Promise((r) => setTimeout(r, 8000));
    line('daemon without the page (baseline)', await measure(base.pid!, seconds));
    const baseExit = new Promise((r) => base.once('exit', r));
    base.kill('SIGTERM');
    await baseExit;

    // reading public so the bench needs no login; the streams and the page are the same either way
    const cfg = writeConfig('on', { listen: `127.0.0.1:${uiPort}`, publicRead: true, maxStreams: MAX_STREAMS });
    child = spawn(process.execPath, [cli, 'run', '--config', cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
    for (let i = 0; i < 200; i++) {
      try {
        if ((await get(uiPort, '/api/session')).status === 200) break;
      } catch {
        // not yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    await new Promise((r) => setTimeout(r, 5000)); // warm-up

    // ---- page weight: what a first load transfers ----
    const gz = { 'Accept-Encoding': 'gzip, deflate, br' };
    const html = await get(uiPort, '/', gz);
    const htmlText = (await get(uiPort, '/')).body.toString('utf8');
    // what the HTML loads by itself (not the CSV link, which is a download on demand)
    const refs = [...htmlText.matchAll(/(?:src|href)="(\/[^"]*)"/g)].map((m) => m[1]).filter((p) => !p.startsWith('/api/'));
    let wire = html.wireBytes;
    let raw = (await get(uiPort, '/')).body.length;
    for (const ref of refs) {
      wire += (await get(uiPort, ref, gz)).wireBytes;
      raw += (await get(uiPort, ref)).body.length;
    }
    const api = [await get(uiPort, '/api/session', gz), await get(uiPort, '/api/status', gz)];
    const apiBytes = api.reduce((n, r) => n + r.wireBytes, 0);
    const s0 = openStream(uiPort);
    const streamBytes = await s0.first;
    s0.close();
    console.log(`page weight, first load: ${((wire + apiBytes + streamBytes) / 1024).toFixed(1)} KB transferred (static ${(wire / 1024).toFixed(1)} KB gzip for ${refs.length + 1} files, ${(raw / 1024).toFixed(1)} KB uncompressed; first API answers ${(apiBytes / 1024).toFixed(1)} KB; first live event ${(streamBytes / 1024).toFixed(1)} KB)`);

    const pid = child.pid!;
    line('daemon, page served, nobody looking', await measure(pid, seconds));

    const chromiumPath = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
    if (chromiumPath) {
      const { chromium } = await import('playwright-core');
      const browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox'] });
      try {
        const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
        await page.goto(`http://127.0.0.1:${uiPort}/`);
        await page.waitForSelector('#live.ok', { timeout: 30_000 });
        line('daemon, the page open in Chromium and streaming', await measure(pid, seconds));
      } finally {
        await browser.close();
      }
    } else console.log('(no Chromium: the page-open figure is left out; apt-get install chromium)');

    const streams = Array.from({ length: MAX_STREAMS }, () => openStream(uiPort));
    await Promise.all(streams.map((s) => s.first));
    line(`daemon, ${MAX_STREAMS} live streams open (ui.maxStreams)`, await measure(pid, seconds));
    for (const s of streams) s.close();
  } finally {
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child!.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    await inverter.close();
    site.stopPhysics();
    rmSync(dir, { recursive: true, force: true });
  }
}

runIfMain(import.meta.url, main);
