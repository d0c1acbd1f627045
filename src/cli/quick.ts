/**
 * Quick actions from the command line: `boost`, `pause-v2g`, `reserve` (each with `off`) and `overrides`.
 * They go through src/homeowner/overrides.ts like the local page and Home Assistant, then the running
 * daemon is asked to reload so the action is in force at once.
 */
import { ConfigError } from '../config/load.ts';
import type { Config } from '../config/types.ts';
import { clearOverride, listOverrides, OverrideError, setOverride, type OverrideKind, type OverrideRequest } from '../homeowner/overrides.ts';
import { plainProblem } from '../homeowner/wording.ts';
import { EXIT, HELP, parse, UsageError, wallNow, type CliIo } from './common.ts';
import { configPathFrom, loadForCli } from './context.ts';
import { reloadAnswer } from './daemon-link.ts';

const KIND: Record<string, OverrideKind> = { boost: 'boost', 'pause-v2g': 'pauseV2g', reserve: 'backupReserve' };
const NAME: Record<OverrideKind, string> = { boost: 'boost', pauseV2g: 'V2G pause', backupReserve: 'backup reserve' };

/** A percentage as typed: `90` or `90%`. */
function percentArg(text: string, what: string, command: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*%?$/.exec(text.trim());
  if (!m) throw new UsageError(`${what} must be a percentage like 90; you gave "${text}"`, command);
  return Number(m[1]);
}

export async function quickCommand(command: 'boost' | 'pause-v2g' | 'reserve', args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(command, args, { config: { type: 'string' }, until: { type: 'string' } });
  if (values.help) {
    io.out(HELP[command]);
    return EXIT.ok;
  }
  const kind = KIND[command];
  const cli = loadForCli(configPathFrom(values, io.env));
  if (!cli.config) {
    io.err(`wallbox: the config file ${cli.path} cannot be used as it is, so no quick action was written:\n${cli.problem!.problems.map((p) => { const q = plainProblem(p); return `  - ${q.key} ${q.message}`; }).join('\n')}`);
    return EXIT.config;
  }
  const now = wallNow(io);
  let config: Config;
  try {
    if (positionals[0] === 'off') {
      if (positionals.length > 1 || values.until) throw new UsageError(`${command} off takes nothing more`, command);
      config = clearOverride(cli.path, kind, { nowMs: now });
      io.out(`${NAME[kind]} ended (written to ${cli.path})`);
    } else {
      let req: OverrideRequest;
      if (command === 'pause-v2g') {
        // `pause-v2g friday`, `pause-v2g until friday`, `pause-v2g 2026-12-24 07:00`: the words are the TIME
        const words = positionals[0] === 'until' ? positionals.slice(1) : positionals;
        const until = (values.until as string | undefined) ?? (words.length ? words.join(' ') : undefined);
        if (until === undefined) throw new UsageError('pause-v2g needs an end: e.g. `wallbox pause-v2g friday` or `wallbox pause-v2g 4h`', command);
        req = { kind: 'pauseV2g', until };
      } else {
        if (positionals.length > 1) throw new UsageError(`${command} takes at most one PCT (and --until TIME)`, command);
        const pct = positionals[0] === undefined ? undefined : percentArg(positionals[0], command === 'boost' ? 'the boost target' : 'the reserve', command);
        const until = values.until as string | undefined;
        req = command === 'boost' ? { kind: 'boost', targetSocPct: pct, until } : { kind: 'backupReserve', socPct: pct, until };
      }
      const r = setOverride(cli.path, req, { nowMs: now, by: 'cli', config: cli.config });
      config = r.config;
      io.out(`${r.view.label} until ${r.view.untilLocal} (${cli.zone}; written to ${cli.path})`);
    }
  } catch (e) {
    if (e instanceof OverrideError) {
      io.err(`wallbox: no ${NAME[kind]} was set: ${e.problems.join('; ')}.\nThe file ${cli.path} was not changed.`);
      return EXIT.usage;
    }
    if (e instanceof ConfigError) {
      io.err(`wallbox: no ${NAME[kind]} was set:\n${e.problems.map((p) => { const q = plainProblem(p); return `  - ${q.key} ${q.message}`; }).join('\n')}\nThe file ${cli.path} was not changed.`);
      return EXIT.config;
    }
    throw e;
  }
  io.out(await reloadAnswer(config, 'overrides'));
  return EXIT.ok;
}

export async function overridesCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse('overrides', args, { config: { type: 'string' }, json: { type: 'boolean' } });
  if (values.help) {
    io.out(HELP.overrides);
    return EXIT.ok;
  }
  if (positionals.length) throw new UsageError(`overrides takes no arguments, got ${positionals.join(' ')}`, 'overrides');
  const cli = loadForCli(configPathFrom(values, io.env));
  if (!cli.config) {
    const msg = `the config file ${cli.path} cannot be used as it is: ${cli.problem!.problems.join('; ')}`;
    if (values.json) io.out(JSON.stringify({ error: msg }));
    else io.err(`wallbox: ${msg}`);
    return EXIT.config;
  }
  const list = listOverrides(cli.config, wallNow(io));
  if (values.json) io.out(JSON.stringify({ timezone: cli.zone, overrides: list }, null, 2));
  else io.out(list.length ? list.map((o) => `${o.label} until ${o.untilLocal}${o.by ? ` (set from ${o.by})` : ''}`).join('\n') : 'no quick action in force');
  return EXIT.ok;
}
