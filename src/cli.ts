/**
 * The `wallbox` command (contract §3): run, status, config get/set, ledger, simulate.
 * Exit codes: 0 ok, 1 failure, 2 bad arguments, 78 bad config.
 */
import { writeFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ConfigError, getKey, loadConfig, localConfigPath, parseConfigValue, setLocalKey } from './config/load.ts';
import type { Config } from './config/types.ts';

const USAGE = `usage: wallbox <command> [options]

  run [--config FILE] [--status-lines]     run the daemon (what systemd starts)
  status [--json] [--config FILE]          mode, SoC, power, floors, dispatch, backup, energy and reward
  config get KEY [--config FILE]           print one config value (dotted key, e.g. vehicle.dischargeFloorPct)
  config set KEY VALUE [--config FILE]     validated, atomic edit of the local config
  ledger [--since DATE] [--csv] [--config FILE]
                                           the dispatch ledger
  simulate SCENARIO.json [--plot FILE.svg] [--json]
                                           run a scenario under the virtual clock
  ui password [--config FILE]              set the web page's password (docs/web.md)
`;

class UsageError extends Error {}

export interface CliIo {
  out: (s: string) => void;
  err: (s: string) => void;
  env: NodeJS.ProcessEnv;
}

const defaultIo: CliIo = { out: (s) => process.stdout.write(s + '\n'), err: (s) => process.stderr.write(s + '\n'), env: process.env };

function parse(args: string[], options: NonNullable<ParseArgsConfig['options']>) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

export async function main(argv: string[], io: CliIo = defaultIo): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'run': {
        const { values, positionals } = parse(rest, { config: { type: 'string' }, 'status-lines': { type: 'boolean' } });
        if (positionals.length) throw new UsageError(`run takes no arguments, got ${positionals.join(' ')}`);
        const { runDaemon } = await import('./daemon.ts');
        await runDaemon({ configPath: values.config as string | undefined, statusLines: Boolean(values['status-lines']), env: io.env });
        return typeof process.exitCode === 'number' ? process.exitCode : 0;
      }
      case 'status':
        return await statusCommand(rest, io);
      case 'config':
        return await configCommand(rest, io);
      case 'ledger':
        return await ledgerCommand(rest, io);
      case 'simulate':
        return await simulateCommand(rest, io);
      case 'ui':
        // `wallbox ui password`: the web page's password (src/ui/cli-password.ts)
        return await (await import('./ui/cli-password.ts')).uiCommand(rest, io);
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        io.out(USAGE);
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`wallbox: ${e.message}\n\n${USAGE}`);
      return 2;
    }
    if (e instanceof ConfigError) {
      io.err(`wallbox: ${e.message}`);
      return 78;
    }
    io.err(`wallbox: ${(e as Error).message}`);
    return 1;
  }
}

function configPathFrom(values: Record<string, unknown>, env: NodeJS.ProcessEnv): string {
  return (values.config as string | undefined) ?? localConfigPath(env);
}

async function configCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(args, { config: { type: 'string' } });
  const [sub, key, value, ...extra] = positionals;
  const path = configPathFrom(values, io.env);
  if (sub === 'get') {
    if (!key || value !== undefined) throw new UsageError('config get takes exactly one KEY');
    const cfg = loadConfig(path);
    const v = getKey(cfg, key);
    if (v === undefined) throw new ConfigError([`${key}: unknown key`], path);
    io.out(typeof v === 'string' ? v : JSON.stringify(v, null, 2));
    return 0;
  }
  if (sub === 'set') {
    if (!key || value === undefined || extra.length) throw new UsageError('config set takes KEY and VALUE (JSON or a plain string)');
    const merged = setLocalKey(path, key, parseConfigValue(value));
    io.out(`${key} = ${value} (written to ${path})`);
    io.out(await reloadAnswer(merged, key));
    return 0;
  }
  throw new UsageError(`config needs "get" or "set", got ${sub === undefined ? 'nothing' : `"${sub}"`}`);
}

/**
 * Ask the running daemon to reload now and say what it really did with the change: applied, or needing a
 * restart (by key), or that no daemon is running. Never claims more than the daemon answered.
 */
async function reloadAnswer(cfg: Config, key: string): Promise<string> {
  const { askStatus, statusSocketPath } = await import('./status-socket.ts');
  let r: { ok?: boolean; applied?: string[]; restartNeeded?: string[]; problems?: string[]; error?: string };
  try {
    r = (await askStatus(statusSocketPath(cfg.storage.path), { cmd: 'reload' }, 5000)) as typeof r;
  } catch (e) {
    return `no running daemon answered (${(e as Error).message}): the change takes effect when it starts`;
  }
  if (r.error) return `the daemon did not reload: ${r.error}`;
  if (!r.ok) return `the daemon refused the file and keeps its last good config: ${(r.problems ?? []).join('; ')}`;
  const restart = (r.restartNeeded ?? []).filter((k) => k === key || k.startsWith(`${key}.`) || key.startsWith(`${k}.`));
  if (restart.length) return `the running daemon keeps the old value until a restart (sudo systemctl restart wallbox): ${restart.join(', ')} needs a restart`;
  const applied = (r.applied ?? []).filter((k) => k === key || k.startsWith(`${key}.`) || key.startsWith(`${k}.`));
  if (applied.length) return `applied by the running daemon: ${applied.join(', ')}`;
  return 'the running daemon already had this value';
}

async function statusCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(args, { json: { type: 'boolean' }, config: { type: 'string' } });
  if (positionals.length) throw new UsageError(`status takes no arguments, got ${positionals.join(' ')}`);
  const cfg = loadConfig(configPathFrom(values, io.env));
  const { askStatus, statusSocketPath } = await import('./status-socket.ts');
  const status = (await askStatus(statusSocketPath(cfg.storage.path), { cmd: 'status' })) as Record<string, unknown>;
  if (values.json) {
    io.out(JSON.stringify(status, null, 2));
    return 0;
  }
  const { formatStatus } = await import('./status-format.ts');
  io.out(formatStatus(status));
  return 0;
}

async function ledgerCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(args, { since: { type: 'string' }, csv: { type: 'boolean' }, config: { type: 'string' } });
  if (positionals.length) throw new UsageError(`ledger takes no arguments, got ${positionals.join(' ')}`);
  const cfg = loadConfig(configPathFrom(values, io.env));
  const ledgerModule = './store/ledger-command.ts';
  const mod = (await import(ledgerModule).catch(() => undefined)) as
    | { runLedgerCommand: (a: { dbPath: string; since?: string; csv: boolean; timezone?: string | null }, out: (s: string) => void) => number }
    | undefined;
  if (!mod) throw new Error('the ledger store is not part of this build');
  return mod.runLedgerCommand({ dbPath: cfg.storage.path, since: values.since as string | undefined, csv: Boolean(values.csv), timezone: cfg.timezone }, io.out);
}

async function simulateCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(args, { plot: { type: 'string' }, json: { type: 'boolean' } });
  if (positionals.length !== 1) throw new UsageError('simulate takes exactly one SCENARIO.json');
  const { loadScenarioFile, runScenario, formatSummary } = await import('./simulate.ts');
  const scenario = loadScenarioFile(positionals[0]);
  const result = await runScenario(scenario, { name: positionals[0] });
  if (values.plot) {
    const { plotSvg } = await import('./plot.ts');
    writeFileSync(values.plot as string, await plotSvg(result.samples, scenario.description ?? positionals[0]));
  }
  io.out(values.json ? JSON.stringify(result.summary) : formatSummary(result.summary) + (values.plot ? `\nplot         ${values.plot}` : ''));
  return 0;
}

const invokedDirectly = process.argv[1] && /cli\.(ts|js|mjs)$/.test(process.argv[1]);
if (invokedDirectly) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e) => {
      process.stderr.write(`wallbox: ${(e as Error).stack ?? e}\n`);
      process.exitCode = 1;
    },
  );
}
