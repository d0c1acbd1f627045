/** `wallbox run`: the daemon, with its log level from --log-level or WALLBOX_LOG_LEVEL. */
import { EXIT, HELP, parse, UsageError, type CliIo } from './common.ts';

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** The level asked for: the flag, else WALLBOX_LOG_LEVEL, else info; a wrong one is a usage error naming both. */
export function logLevelFrom(flag: string | undefined, env: NodeJS.ProcessEnv): LogLevel {
  const given = flag ?? env.WALLBOX_LOG_LEVEL;
  if (given === undefined || given === '') return 'info';
  const v = given.toLowerCase();
  if ((LOG_LEVELS as readonly string[]).includes(v)) return v as LogLevel;
  throw new UsageError(`${flag !== undefined ? '--log-level' : 'WALLBOX_LOG_LEVEL'} must be one of ${LOG_LEVELS.join(', ')}; you gave "${given}"`, 'run');
}

export async function runCommand(args: string[], io: CliIo, globalLogLevel?: string): Promise<number> {
  const { values, positionals } = parse('run', args, { config: { type: 'string' }, 'status-lines': { type: 'boolean' }, 'log-level': { type: 'string' } });
  if (values.help) {
    io.out(HELP.run);
    return EXIT.ok;
  }
  if (positionals.length) throw new UsageError(`run takes no arguments, got ${positionals.join(' ')}`, 'run');
  const logLevel = logLevelFrom((values['log-level'] as string | undefined) ?? globalLogLevel, io.env);
  const { runDaemon } = await import('../daemon.ts');
  await runDaemon({ configPath: values.config as string | undefined, statusLines: Boolean(values['status-lines']), env: io.env, logLevel });
  return typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok;
}
