/**
 * `wallbox run`: the long-running process systemd starts. Loads and watches the config, builds the
 * hardware, runs the loop, serves local status, tells systemd it is ready and alive, and stops in a
 * bounded time with the power at zero first.
 *
 * Exit codes (docs/install.md): 0 stopped by a signal; 78 (EX_CONFIG, sysexits.h) the config cannot work
 * (missing, unreadable, invalid): the unit's `RestartPreventExitStatus=78` keeps systemd from restarting
 * it every few seconds until someone fixes the file; 1 anything else that stops it from starting (the
 * storage directory cannot be made, a simulator's port is taken), which systemd does restart.
 */
import { mkdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { systemClock } from '../hal/system-clock.ts';
import { ConfigError, loadConfigFile, localConfigPath } from './config/load.ts';
import { changedKeys, classifyChanges, effectiveConfig } from './config/reload.ts';
import { ConfigFileWatcher, configFingerprint } from './config/watch.ts';
import type { Config } from './config/types.ts';
import { Runtime, type RuntimeStatus } from './runtime.ts';
import { buildHardware, type BuildOptions, type Hardware } from './wiring.ts';
import { serveStatus, statusSocketPath } from './status-socket.ts';
import { openStore, type Store } from './store/index.ts';
import { createUplink, type Uplink } from './uplink/client.ts';
import type { RewardSettings } from './store/reward.ts';
import { createNotifier, statusMessage } from './sd-notify.ts';
import { listOverrides, zoneOf } from './homeowner/overrides.ts';
import { HomeAssistantLink } from './homeassistant/link.ts';

export const VERSION = '0.1.0';

/** sysexits.h EX_CONFIG: the unit file names it in RestartPreventExitStatus. */
export const EXIT_CONFIG = 78;
export const EXIT_FAILURE = 1;

/**
 * Time bounds on the way out (ms). The whole stop stays inside STOP_BUDGET_MS, well under the unit's
 * TimeoutStopSec=20, so systemd never has to SIGKILL a process that may be holding the contactor line.
 */
export const STOP_BUDGET_MS = 10_000;
// the runtime's own stop bounds each of its steps by two port-call bounds (control.portCallTimeoutMs,
// 1.5 s by default): zero the setpoint, then the contactor; it gets the largest share
const STOP_STEP_MS = { runtime: 6500, store: 1000, uplink: 1500, hardware: 800, statusSocket: 200 } as const;

export interface DaemonOptions {
  configPath?: string;
  /** Print one status line per second (npm start). */
  statusLines: boolean;
  env?: NodeJS.ProcessEnv;
  /** Hardware build options (tests: a GPIO stand-in). */
  build?: BuildOptions;
  /** Least severity logged (`wallbox run --log-level`, WALLBOX_LOG_LEVEL); default info. */
  logLevel?: 'debug' | 'info' | 'warn' | 'error';
}

type Level = 'debug' | 'info' | 'warn' | 'error';
const LEVEL_RANK: Record<Level, number> = { debug: 0, info: 1, warn: 2, error: 3 };
let minLevel: Level = 'info';

function log(level: Level, msg: string): void {
  if (LEVEL_RANK[level] < LEVEL_RANK[minLevel]) return;
  const line = `${new Date().toISOString()} ${level.padEnd(5)} ${msg}\n`;
  (level === 'info' || level === 'debug' ? process.stdout : process.stderr).write(line);
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

/** The one line `systemctl status wallbox` shows. */
function systemdStatus(s: RuntimeStatus): string {
  return `${s.mode}; SoC ${s.socPct === null ? '--' : `${s.socPct.toFixed(0)} %`}; ${s.powerW} W; grid ${s.grid}${s.reasons.length ? `; ${s.reasons[0]}` : ''}`;
}

/**
 * Feeds systemd's watchdog only while the control loop really ticks: a loop stuck in an await that never
 * settles stops the pings, and systemd restarts the service (WatchdogSec in the unit).
 */
export class WatchdogGate {
  private lastTicks = -1;
  /** Whether to ping now, given the loop's tick count. */
  shouldPing(ticks: number): boolean {
    const advanced = ticks !== this.lastTicks;
    this.lastTicks = ticks;
    return advanced;
  }
}

/** Runs `fn`, giving up (without waiting further) after `ms`; never rejects. Says which step failed. */
async function bounded(step: string, ms: number, fn: () => Promise<unknown> | unknown): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      Promise.resolve().then(fn),
      new Promise<void>((_, rej) => {
        timer = setTimeout(() => rej(new Error(`did not finish within ${ms} ms`)), ms);
      }),
    ]);
  } catch (e) {
    log('warn', `stop: ${step}: ${(e as Error)?.message ?? String(e)}`);
  } finally {
    clearTimeout(timer);
  }
}

interface Stoppable {
  runtime?: Runtime;
  store?: Store;
  uplink?: Uplink;
  hw?: Hardware;
  statusServer?: { close(): unknown };
  ui?: { close(): Promise<void>; apply(c: Config): Promise<void> };
  ha?: HomeAssistantLink;
}

export async function runDaemon(opts: DaemonOptions): Promise<void> {
  const env = opts.env ?? process.env;
  minLevel = opts.logLevel ?? (['debug', 'info', 'warn', 'error'].includes(env.WALLBOX_LOG_LEVEL ?? '') ? (env.WALLBOX_LOG_LEVEL as Level) : 'info');
  // a stop we asked for: the uplink's disconnect on the way out is expected, not a warning
  let stopping = false;
  const cfgPath = opts.configPath ? resolve(opts.configPath) : localConfigPath(env);
  const notifier = createNotifier(env, (m) => log('warn', m));
  const parts: Stoppable = {};
  const timers: { status?: NodeJS.Timeout; watchdog?: NodeJS.Timeout; sdStatus?: NodeJS.Timeout } = {};
  let watcher: ConfigFileWatcher | undefined;

  // Signals are taken from the first line on: a SIGTERM during start-up still runs the stop sequence
  // (power to zero first) on whatever has been built, instead of the default action killing the process.
  let stopSignal: string | undefined;
  let wakeStop: () => void = () => {};
  const stopRequested = new Promise<void>((r) => (wakeStop = r));
  const onSignal = (sig: string) => {
    if (stopSignal) return;
    stopSignal = sig;
    wakeStop();
  };
  const onTerm = () => onSignal('SIGTERM');
  const onInt = () => onSignal('SIGINT');
  process.on('SIGTERM', onTerm);
  process.on('SIGINT', onInt);
  // SIGHUP from the first line on too: its default action ends the process (a `systemctl reload` or an
  // installer's `kill -HUP` during a start killed it). Until the reload path exists it changes nothing: the
  // config is read as the start goes on, and a change after that read is seen by the watcher's first look.
  let reloadOnHup: (() => void) | undefined;
  const onHup = () => (reloadOnHup ? reloadOnHup() : log('info', stopping ? 'SIGHUP while stopping: nothing to reload' : 'SIGHUP during start-up: the config is read as the start goes on'));
  process.on('SIGHUP', onHup);
  const onRejection = (reason: unknown) => log('error', `unhandled rejection: ${(reason as Error)?.stack ?? String(reason)}`);
  process.on('unhandledRejection', onRejection);

  /** Await a start-up step unless a stop arrives first (the step then finishes, or not, on its own). */
  const unlessStopped = async <T>(p: Promise<T>): Promise<T | undefined> => {
    const r = await Promise.race([p.then((v) => ({ v })), stopRequested.then(() => undefined)]);
    return r?.v;
  };

  const shutdown = async (why: string): Promise<void> => {
    const deadline = setTimeout(() => {
      log('error', `stop took longer than ${STOP_BUDGET_MS} ms; exiting now`);
      process.exit(process.exitCode ?? EXIT_FAILURE);
    }, STOP_BUDGET_MS);
    deadline.unref();
    stopping = true;
    reloadOnHup = undefined;
    log('info', parts.runtime ? `${why}: stopping (power to zero)` : `${why}: stopping`);
    notifier.notify('STOPPING=1');
    for (const t of Object.values(timers)) clearInterval(t);
    watcher?.stop();
    // 1. power to zero and the contactor where the islanding rules want it (the runtime's own stop)
    // 0. the web page takes no more changes
    if (parts.ui) await bounded('web page', STOP_STEP_MS.statusSocket, () => parts.ui!.close());
    if (parts.runtime) await bounded('runtime (power to zero, contactor)', STOP_STEP_MS.runtime, () => parts.runtime!.stop());
    // 2. everything the last ticks wrote, durably; a store that cannot close (read-only file system) is logged
    if (parts.store) await bounded('store flush and close', STOP_STEP_MS.store, () => parts.store!.close());
    // 3. the uplink's and Home Assistant's goodbye (retained offline) and disconnect, side by side
    await Promise.all([
      parts.uplink && bounded('uplink goodbye', STOP_STEP_MS.uplink, () => parts.uplink!.stop()),
      parts.ha && bounded('home assistant goodbye', STOP_STEP_MS.uplink, () => parts.ha!.stop()),
    ]);
    // 4. simulators, GPIO lines, the status socket
    if (parts.hw) await bounded('hardware close', STOP_STEP_MS.hardware, () => parts.hw!.close());
    await bounded('status socket', STOP_STEP_MS.statusSocket, () => parts.statusServer?.close());
    notifier.close();
    process.off('SIGTERM', onTerm);
    process.off('SIGINT', onInt);
    process.off('SIGHUP', onHup);
    process.off('unhandledRejection', onRejection);
    clearTimeout(deadline);
    // a connection attempt that never answered (a broker port that does not speak MQTT) may still hold the
    // event loop: the steps above are done, so leave even then
    setTimeout(() => process.exit(process.exitCode ?? 0), 500).unref();
  };

  // ---- config: the file must exist and be valid; otherwise nothing starts (exit 78) ----
  let config: Config;
  // what the file was before it was read: the watcher reports any change after this moment (config/watch.ts)
  const loadedFingerprint = await configFingerprint(cfgPath);
  try {
    config = await loadConfigFile(cfgPath);
  } catch (e) {
    log('error', e instanceof ConfigError ? e.message : `config ${cfgPath}: ${(e as Error).message}`);
    log('error', `exit ${EXIT_CONFIG} (bad config): fix ${cfgPath}; systemd does not restart the service for this exit code`);
    process.exitCode = EXIT_CONFIG;
    await shutdown('bad config');
    return;
  }
  if (stopSignal) return shutdown(stopSignal);

  const clock = systemClock;
  try {
    await mkdir(dirname(resolve(config.storage.path)), { recursive: true });
    parts.store = openStore(config.storage.path, { timezone: config.timezone, reward: config.reward as RewardSettings, storage: config.storage, nowMs: () => clock.nowMs() });
  } catch (e) {
    log('error', `storage ${resolve(config.storage.path)}: ${(e as Error).message}`);
    process.exitCode = EXIT_FAILURE;
    await shutdown('storage unavailable');
    return;
  }
  const store = parts.store;

  try {
    const hw = await unlessStopped(buildHardware(config, clock, (m) => log('info', m), opts.build));
    if (!hw) return shutdown(stopSignal ?? 'stop');
    parts.hw = hw;
  } catch (e) {
    const msg = (e as Error)?.message ?? String(e);
    log('error', `cannot start the hardware: ${msg}${/EADDRINUSE/.test(msg) ? ' (another wallbox or simulator is running? stop it, or choose another simulation.servePort)' : ''}`);
    process.exitCode = /ConfigError/.test((e as Error)?.name ?? '') ? EXIT_CONFIG : EXIT_FAILURE;
    await shutdown('start-up failed');
    return;
  }
  const hw = parts.hw;
  for (const line of hw.describe) log('info', line);

  const uplinkLog = { info: (_o: object, m: string) => log('info', `uplink: ${m}`), warn: (o: object, m: string) => log(stopping ? 'info' : 'warn', `uplink: ${m} ${JSON.stringify(o)}`), error: (o: object, m: string) => log('error', `uplink: ${m} ${JSON.stringify(o)}`) };
  let runtime: Runtime | undefined;
  const uplink: Uplink | undefined = config.uplink.url
    ? createUplink({
        config, outbox: store.outbox, clock, log: uplinkLog, version: VERSION, onCommand: (cmd) => runtime?.submit(cmd),
        replay: store.replay, liveDispatches: () => runtime?.liveDispatchCount() ?? 0,
      })
    : undefined;
  parts.uplink = uplink;

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
  parts.runtime = rt;

  // ports opened and the first plan applied (a port that cannot open leaves the runtime in fault, retrying)
  await unlessStopped(rt.start().catch((e) => log('error', `runtime start: ${(e as Error)?.message ?? String(e)}`)));
  if (stopSignal) return shutdown(stopSignal);
  // the uplink connects in the background; start() does not wait for a broker
  void uplink?.start().catch((e) => log('error', `uplink: ${(e as Error)?.message ?? String(e)}`));

  // ---- reload: SIGHUP, file changes, `wallbox config set` through the status socket ----
  let running = config;
  let lastRestartNote = '';
  const rewardLive = typeof (store as unknown as { setReward?: unknown }).setReward === 'function';
  interface ReloadResult { ok: boolean; applied: string[]; restartNeeded: string[]; problems?: string[] }
  let reloadChain: Promise<unknown> = Promise.resolve();
  const reload = (why: string): Promise<ReloadResult> => {
    const r = reloadChain.then(() => reloadNow(why));
    reloadChain = r.catch(() => {});
    return r;
  };
  const reloadNow = async (why: string): Promise<ReloadResult> => {
    let next: Config;
    // what this read sees is the watcher's new baseline: a `config set` or a SIGHUP is not reloaded a second
    // time as "file changed" (the fingerprint is taken before the read, so a later write is still seen)
    watcher?.accept(await configFingerprint(cfgPath));
    try {
      next = await loadConfigFile(cfgPath);
    } catch (e) {
      const problems = e instanceof ConfigError ? e.problems : [(e as Error).message];
      rt.emit({ kind: 'config', severity: 'warning', message: `config ${cfgPath} refused (${why}), keeping the last good one: ${problems.join('; ')}` });
      return { ok: false, applied: [], restartNeeded: [], problems };
    }
    try {
      const changed = changedKeys(running, next);
      const { live, restart } = classifyChanges(changed, running, { uplinkRunning: uplink !== undefined, rewardLive });
      let applied = live;
      const restartNeeded = [...restart];
      if (live.some((k) => k.startsWith('uplink.')) && uplink) {
        const u = uplink.reconfigure(next.uplink);
        const refused = u.restartNeeded.map((k) => `uplink.${k}`);
        restartNeeded.push(...refused.filter((k) => !restartNeeded.includes(k)));
        applied = applied.filter((k) => !refused.includes(k));
      }
      if (applied.some((k) => k.startsWith('reward.')) && rewardLive)
        (store as unknown as { setReward(r: RewardSettings): void }).setReward(next.reward as RewardSettings);
      running = effectiveConfig(running, next, restartNeeded);
      config = running;
      if (applied.length) rt.applyConfig(running);
      if (applied.some((k) => k.startsWith('ui.'))) void parts.ui?.apply(running);
      // Home Assistant: reconnect or remove on its own keys; otherwise it says the new values at once
      if (applied.length) void parts.ha?.applyConfig(running).catch((e) => log('warn', `home assistant: ${(e as Error)?.message ?? e}`));
      const note = restartNeeded.join(', ');
      if (restartNeeded.length && note !== lastRestartNote)
        rt.emit({ kind: 'config', severity: 'warning', message: `config changes that take effect only after a restart (systemctl restart wallbox): ${note}` });
      lastRestartNote = note;
      log('info', applied.length ? `config reloaded (${why}): applied ${applied.join(', ')}` : `config reloaded (${why}): nothing to apply`);
      return { ok: true, applied, restartNeeded };
    } catch (e) {
      // the loop must not die of a reload: keep what runs and say so
      rt.emit({ kind: 'config', severity: 'warning', message: `config reload (${why}) failed, keeping the last good one: ${(e as Error)?.message ?? String(e)}` });
      return { ok: false, applied: [], restartNeeded: [], problems: [(e as Error)?.message ?? String(e)] };
    }
  };

  // watched before the status socket answers: once `status` answers, an edit of the file is seen (a change
  // made before the watch began is caught by the watcher's first look against the fingerprint taken at load)
  reloadOnHup = () => void reload('SIGHUP');
  watcher = new ConfigFileWatcher({ path: cfgPath, baseline: loadedFingerprint, onChange: () => void reload('file changed'), warn: (m) => log('warn', m) });
  watcher.start();

  const socketPath = statusSocketPath(config.storage.path);
  // the status answer, also read by the web page
  let answerLocal: ((req: { cmd?: unknown }) => Promise<unknown>) | undefined;
  try {
    parts.statusServer = await serveStatus(socketPath, (answerLocal = async (req) => {
      if (req.cmd === 'status') {
        let totals: unknown = null;
        try {
          totals = store.totals(clock.wallMs());
        } catch (e) {
          totals = { error: (e as Error).message };
        }
        const faults = [hw.ports.inverter, hw.ports.vehicle, hw.ports.gridSense, hw.ports.relays, hw.ports.estop]
          .map((p) => (p ? p.state().fault : undefined))
          .filter((f): f is NonNullable<typeof f> => f !== undefined)
          .map((f) => f.message);
        return {
          ...rt.status(), deviceId: running.deviceId, version: VERSION, faults,
          uplink: uplink ? { connected: uplink.connected(), outbox: store.outbox.size() } : null, totals,
          config: { path: cfgPath, restartNeeded: lastRestartNote ? lastRestartNote.split(', ') : [] },
          timezone: zoneOf(running), overrides: listOverrides(running, clock.wallMs()), vehicleConnected: hw.ports.vehicle.state().connected,
          homeassistant: parts.ha && running.homeassistant?.url ? { connected: parts.ha.connected(), url: running.homeassistant.url } : null,
        };
      }
      if (req.cmd === 'reload') return reload('wallbox config set');
      return { error: `unknown request ${JSON.stringify(req.cmd)}` };
    }));
  } catch (e) {
    log('warn', `status socket not available: ${(e as Error).message}`);
  }

  // ---- the local web page (src/ui, docs/web.md): served while ui.listen is set, moved or stopped on a reload ----
  try {
    const { UiHost } = await import('./ui/host.ts');
    const ui = new UiHost({
      configPath: cfgPath, config: () => running, clock, reload, log,
      status: async () => (await answerLocal!({ cmd: 'status' })) as Record<string, unknown>,
      dispatches: () => rt.memorySnapshot().dispatches,
    });
    parts.ui = ui;
    await ui.apply(running);
  } catch (e) {
    log('warn', `web page not available: ${(e as Error)?.message ?? String(e)}`);
  }

  // ---- Home Assistant (src/homeassistant, docs/homeassistant.md): discovery and commands on a local broker ----
  if (running.homeassistant?.url) log('info', `home assistant: ${running.homeassistant.enabled ? 'discovery' : 'removal'} on ${running.homeassistant.url}`);
  parts.ha = new HomeAssistantLink({
    config: () => running, configPath: cfgPath, version: VERSION, reload, log, emit: (e) => rt.emit(e), wallMs: () => clock.wallMs(),
    status: async () => (await answerLocal!({ cmd: 'status' })) as Record<string, unknown>,
  });
  parts.ha.start();


  if (opts.statusLines) timers.status = setInterval(() => process.stdout.write(statusLine(rt.status()) + '\n'), 1000);

  // the watchdog is fed only while the control loop is really ticking
  const watchdogUs = Number(env.WATCHDOG_USEC ?? 0);
  if (notifier.enabled && Number.isFinite(watchdogUs) && watchdogUs > 0) {
    const gate = new WatchdogGate();
    timers.watchdog = setInterval(() => {
      if (gate.shouldPing(rt.status().ticks)) notifier.notify('WATCHDOG=1');
    }, Math.max(200, Math.floor(watchdogUs / 2000)));
  }
  let lastSdStatus = '';
  const sendSdStatus = () => {
    const line = systemdStatus(rt.status());
    if (line !== lastSdStatus) notifier.notify(statusMessage(line));
    lastSdStatus = line;
  };
  if (notifier.enabled) timers.sdStatus = setInterval(sendSdStatus, 5000);
  // READY only now: ports opened (or in fault with the cause), the first safe plan applied, status served
  notifier.notify(`READY=1\n${statusMessage(systemdStatus(rt.status()))}`);
  log('info', `wallbox ${VERSION} running as ${config.deviceId}; config ${cfgPath}`);

  await stopRequested;
  await shutdown(stopSignal ?? 'stop');
}
