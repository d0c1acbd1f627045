/**
 * `wallbox run`: the long-running process systemd starts. Loads and watches the config, builds the
 * hardware, runs the loop, serves local status, and stops cleanly (power to zero) on SIGTERM.
 */
import { watch, type FSWatcher } from 'node:fs';
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { spawn } from 'node:child_process';
import { systemClock } from '../hal/system-clock.ts';
import { ConfigError, loadConfig, localConfigPath } from './config/load.ts';
import type { Config } from './config/types.ts';
import { Runtime, type RuntimeStatus } from './runtime.ts';
import { buildHardware } from './wiring.ts';
import { serveStatus, statusSocketPath } from './status-socket.ts';
import { openStore, type Store } from './store/index.ts';
import { createUplink, type Uplink } from './uplink/client.ts';
import type { RewardSettings } from './store/reward.ts';

export const VERSION = '0.1.0';

export interface DaemonOptions {
  configPath?: string;
  /** Print one status line per second (npm start). */
  statusLines: boolean;
  env?: NodeJS.ProcessEnv;
}

type Level = 'info' | 'warn' | 'error';

function log(level: Level, msg: string): void {
  const line = `${new Date().toISOString()} ${level.padEnd(5)} ${msg}\n`;
  (level === 'info' ? process.stdout : process.stderr).write(line);
}

export function statusLine(s: RuntimeStatus): string {
  const soc = s.socPct === null ? '  --  ' : `${s.socPct.toFixed(1).padStart(5)}%`;
  const backup = s.backup?.active ? ` backup ${s.backup.phase}${s.backup.hoursLeft !== undefined && Number.isFinite(s.backup.hoursLeft) ? ` ${s.backup.hoursLeft.toFixed(1)} h left` : ''}${s.backup.shedTiers.length ? ` shed ${s.backup.shedTiers.join(',')}` : ''}` : '';
  return [
    `mode ${s.mode.padEnd(9)}`,
    `SoC ${soc} (${s.socSource})`,
    `power ${String(s.powerW).padStart(6)} W`,
    `setpoint ${String(s.setpointW).padStart(6)} W`,
    `floor ${s.floors ? s.floors.effectiveFloorPct.toFixed(1) : '--'}%`,
    `grid ${s.grid}`,
    `dispatch ${s.dispatchId ?? '-'}`,
  ].join(' | ') + backup + (s.reasons.length ? ` | ${s.reasons[0]}` : '');
}

/** systemd notification through systemd-notify (Node has no datagram Unix sockets). */
function sdNotify(env: NodeJS.ProcessEnv, state: string): void {
  if (!env.NOTIFY_SOCKET) return;
  const child = spawn('systemd-notify', [state], { stdio: 'ignore', env });
  child.on('error', () => {});
}

export async function runDaemon(opts: DaemonOptions): Promise<void> {
  const env = opts.env ?? process.env;
  const cfgPath = opts.configPath ? resolve(opts.configPath) : localConfigPath(env);
  let config: Config;
  try {
    config = loadConfig(cfgPath);
  } catch (e) {
    log('error', (e as Error).message);
    process.exitCode = 78; // EX_CONFIG: systemd shows it; nothing was started
    return;
  }
  mkdirSync(dirname(resolve(config.storage.path)), { recursive: true });

  const clock = systemClock;
  let store: Store;
  try {
    store = openStore(config.storage.path, { timezone: config.timezone, reward: config.reward as RewardSettings, storage: config.storage });
  } catch (e) {
    log('error', `storage ${config.storage.path}: ${(e as Error).message}`);
    process.exitCode = 1;
    return;
  }
  const hw = await buildHardware(config, clock, (m) => log('info', m));
  for (const line of hw.describe) log('info', line);

  let runtime: Runtime | undefined;
  const uplinkLog = { info: (_o: object, m: string) => log('info', `uplink: ${m}`), warn: (o: object, m: string) => log('warn', `uplink: ${m} ${JSON.stringify(o)}`), error: (o: object, m: string) => log('error', `uplink: ${m} ${JSON.stringify(o)}`) };
  const uplink: Uplink | undefined = config.uplink.url
    ? createUplink({ config, outbox: store.outbox, clock, log: uplinkLog, version: VERSION, onCommand: (cmd) => runtime?.submit(cmd) })
    : undefined;

  runtime = new Runtime({
    ports: hw.ports,
    config,
    store,
    uplink,
    log: (level, msg) => log(level, msg),
    onTick: (plan) => hw.statusLed?.setStatus(plan.mode === 'fault' ? 'fault' : plan.mode === 'backup' ? 'backup' : 'ok'),
    onEvent: (e) => log(e.severity === 'info' ? 'info' : e.severity === 'warning' ? 'warn' : 'error', `[${e.kind}] ${e.message}`),
    version: VERSION,
  });
  const rt = runtime;

  process.on('unhandledRejection', (reason) => log('error', `unhandled rejection: ${(reason as Error)?.stack ?? String(reason)}`));

  await rt.start();
  await uplink?.start();

  const socketPath = statusSocketPath(config.storage.path);
  let statusServer: Awaited<ReturnType<typeof serveStatus>> | undefined;
  try {
    statusServer = await serveStatus(socketPath, (req) => {
      if (req.cmd === 'status') {
        const totals = store.totals(clock.nowMs());
        return { ...rt.status(), deviceId: config.deviceId, version: VERSION, uplink: uplink ? { connected: uplink.connected(), outbox: store.outbox.size() } : null, totals };
      }
      return { error: `unknown request ${JSON.stringify(req.cmd)}` };
    });
  } catch (e) {
    log('warn', `status socket not available: ${(e as Error).message}`);
  }

  // config reload: SIGHUP and file changes; an invalid file is refused and the last good config stays
  const reload = (why: string) => {
    try {
      const next = loadConfig(cfgPath);
      config = next;
      rt.applyConfig(next);
      const u = uplink?.reconfigure(next.uplink);
      if (u?.restartNeeded.length) rt.emit({ kind: 'config', severity: 'warning', message: `uplink changes that take effect after a restart: ${u.restartNeeded.join(', ')}` });
      log('info', `config reloaded (${why})`);
    } catch (e) {
      const problems = e instanceof ConfigError ? e.problems.join('; ') : (e as Error).message;
      rt.emit({ kind: 'config', severity: 'warning', message: `config refused, keeping the last good one: ${problems}` });
    }
  };
  let watcher: FSWatcher | undefined;
  let reloadTimer: NodeJS.Timeout | undefined;
  const watchConfig = () => {
    try {
      watcher = watch(dirname(cfgPath), (_event, name) => {
        if (name && resolve(dirname(cfgPath), name.toString()) !== cfgPath) return;
        clearTimeout(reloadTimer);
        reloadTimer = setTimeout(() => reload('file changed'), 200);
      });
      watcher.on('error', () => {});
    } catch {
      // no directory to watch yet: SIGHUP still works
    }
  };
  watchConfig();
  process.on('SIGHUP', () => reload('SIGHUP'));

  let statusTimer: NodeJS.Timeout | undefined;
  if (opts.statusLines) statusTimer = setInterval(() => process.stdout.write(statusLine(rt.status()) + '\n'), 1000);

  // the watchdog is fed only while the control loop is really ticking
  let lastTicks = -1;
  const watchdogUs = Number(env.WATCHDOG_USEC ?? 0);
  const watchdogTimer = watchdogUs > 0
    ? setInterval(() => {
        const t = rt.status().ticks;
        if (t !== lastTicks) sdNotify(env, 'WATCHDOG=1');
        lastTicks = t;
      }, Math.max(1000, watchdogUs / 2000))
    : undefined;
  sdNotify(env, 'READY=1');
  log('info', `wallbox ${VERSION} running as ${config.deviceId}; config ${cfgPath}`);

  await new Promise<void>((resolveStop) => {
    let stopping = false;
    const stop = async (sig: string) => {
      if (stopping) return;
      stopping = true;
      log('info', `${sig}: stopping (power to zero)`);
      sdNotify(env, 'STOPPING=1');
      clearInterval(statusTimer);
      clearInterval(watchdogTimer);
      clearTimeout(reloadTimer);
      watcher?.close();
      statusServer?.close();
      await uplink?.stop();
      await rt.stop();
      await hw.close();
      store.close();
      resolveStop();
    };
    process.once('SIGTERM', () => void stop('SIGTERM'));
    process.once('SIGINT', () => void stop('SIGINT'));
  });
}
