/**
 * The `wallbox` command (contract §3): run, status, config get/set, quick actions, ledger, events,
 * simulate. Each command lives in src/cli/<command>.ts; this file only dispatches.
 * Exit codes: 0 ok, 1 failure, 2 bad arguments, 3 daemon not running (status), 78 bad config.
 */
import { ConfigError } from './config/load.ts';
import { EXIT, USAGE, UsageError, defaultIo, helpFor, version, type CliIo } from './cli/common.ts';

export type { CliIo } from './cli/common.ts';

export async function main(argv: string[], io: CliIo = defaultIo): Promise<number> {
  let args = argv;
  let logLevel: string | undefined;
  // global options before the command
  while (args[0]?.startsWith('-')) {
    const a = args[0];
    if (a === '--version' || a === '-V') {
      io.out(`wallbox ${version()}`);
      return EXIT.ok;
    }
    if (a === '--help' || a === '-h') {
      io.out(USAGE);
      return EXIT.ok;
    }
    if (a === '--log-level' && args[1] !== undefined) {
      logLevel = args[1];
      args = args.slice(2);
      continue;
    }
    if (a.startsWith('--log-level=')) {
      logLevel = a.slice('--log-level='.length);
      args = args.slice(1);
      continue;
    }
    io.err(`wallbox: unknown option "${a}"\n\n${USAGE}`);
    return EXIT.usage;
  }
  const [command, ...rest] = args;
  try {
    switch (command) {
      case 'run':
        return await (await import('./cli/run.ts')).runCommand(rest, io, logLevel);
      case 'status':
        return await (await import('./cli/status.ts')).statusCommand(rest, io);
      case 'config':
        return await (await import('./cli/config.ts')).configCommand(rest, io);
      case 'boost':
      case 'pause-v2g':
      case 'reserve':
        return await (await import('./cli/quick.ts')).quickCommand(command, rest, io);
      case 'overrides':
        return await (await import('./cli/quick.ts')).overridesCommand(rest, io);
      case 'ledger':
        return await (await import('./cli/ledger.ts')).ledgerCommand(rest, io);
      case 'events':
        return await (await import('./cli/ledger.ts')).eventsCommand(rest, io);
      case 'simulate':
        return await (await import('./cli/simulate.ts')).simulateCommand(rest, io);
      case 'can':
        // `wallbox can decode FILE|-`, `wallbox can record`: the CAN inverter bus (docs/can.md)
        return await (await import('./cli/can.ts')).canCommand(rest, io);
      case 'ui':
        // `wallbox ui password`: the web page's password (src/ui/cli-password.ts)
        return await (await import('./ui/cli-password.ts')).uiCommand(rest, io);
      case undefined:
        io.err(USAGE);
        return EXIT.usage;
      case 'help':
        io.out(helpFor(rest[0]));
        return EXIT.ok;
      case 'version':
        io.out(`wallbox ${version()}`);
        return EXIT.ok;
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`wallbox: ${e.message}\n\n${helpFor(e.command)}`);
      return EXIT.usage;
    }
    if (e instanceof ConfigError) {
      io.err(`wallbox: ${e.message}`);
      return EXIT.config;
    }
    io.err(`wallbox: ${(e as Error).message}`);
    return EXIT.failure;
  }
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
