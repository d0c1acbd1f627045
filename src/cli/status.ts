/**
 * `wallbox status [--json]`: asks the running daemon (which holds a good config even while the file on
 * disk is being fixed); when it is not running, the last-known figures from the database, said to be
 * last-known and from when (exit 3). `--json` is one JSON object on every path, errors included.
 */
import { listOverrides, localTimeText } from '../homeowner/overrides.ts';
import { plainProblem } from '../homeowner/wording.ts';
import { formatLastKnown, formatStatus, localTime } from '../status-format.ts';
import { EXIT, parse, UsageError, wallNow, HELP, type CliIo } from './common.ts';
import { configPathFrom, loadForCli } from './context.ts';
import { askDaemonStatus } from './daemon-link.ts';
import { readLastKnown } from './last-known.ts';
import { roundMeasured } from './rounding.ts';

export async function statusCommand(args: string[], io: CliIo): Promise<number> {
  const json = args.includes('--json');
  if (!json) return statusInner(args, io, false);
  try {
    return await statusInner(args, io, true);
  } catch (e) {
    // whatever goes wrong, a script reading --json gets JSON
    io.out(JSON.stringify({ error: (e as Error)?.message ?? String(e) }));
    return EXIT.failure;
  }
}

async function statusInner(args: string[], io: CliIo, json: boolean): Promise<number> {
  const fail = (message: string, code: number): number => {
    if (json) io.out(JSON.stringify({ error: message }));
    else io.err(`wallbox: ${message}`);
    return code;
  };
  let values: Record<string, unknown>;
  try {
    const r = parse('status', args, { json: { type: 'boolean' }, config: { type: 'string' } });
    if (r.positionals.length) throw new UsageError(`status takes no arguments, got ${r.positionals.join(' ')}`, 'status');
    values = r.values;
  } catch (e) {
    if (json && e instanceof UsageError) return fail(e.message, EXIT.usage);
    throw e;
  }
  if (values.help) {
    io.out(HELP.status);
    return EXIT.ok;
  }
  const cli = loadForCli(configPathFrom(values, io.env));
  const fileNote = cli.problem
    ? { path: cli.path, problems: cli.problem.problems.map((p) => plainProblem(p)) }
    : undefined;
  const asked = await askDaemonStatus(cli.storagePath);
  if (asked.status) {
    const zone = typeof asked.status.timezone === 'string' ? asked.status.timezone : cli.zone;
    if (json) {
      const local = { timezone: zone, departureAtLocal: asked.status.departureAt ? localTime(asked.status.departureAt, zone) : null };
      io.out(JSON.stringify(roundMeasured({ ...asked.status, ...local, ...(fileNote ? { configFileInvalid: fileNote } : {}) }), null, 2));
      return EXIT.ok;
    }
    io.out(formatStatus(asked.status, zone));
    if (fileNote) io.out(`\nnote: the config file ${cli.path} cannot be used as it is (the daemon keeps its last good one):\n${fileNote.problems.map((p) => `  - ${p.key} ${p.message}`).join('\n')}`);
    return EXIT.ok;
  }
  // the daemon is not running: what the database last knew
  const now = wallNow(io);
  let lastKnown;
  try {
    lastKnown = readLastKnown(cli.storagePath, now, cli.zone);
  } catch (e) {
    return fail(`${asked.error}; and there are no last-known figures: ${(e as Error).message}`, EXIT.daemonDown);
  }
  const overrides = cli.config ? listOverrides(cli.config, now) : [];
  if (json) {
    io.out(
      JSON.stringify(
        roundMeasured({
          daemon: 'not running', error: asked.error, lastKnown: true,
          at: lastKnown.atMs === null ? null : new Date(lastKnown.atMs).toISOString(),
          atLocal: lastKnown.atMs === null ? null : localTimeText(lastKnown.atMs, cli.zone), timezone: cli.zone,
          mode: lastKnown.mode, socPct: lastKnown.socPct, powerW: lastKnown.powerW, setpointW: lastKnown.setpointW,
          grid: lastKnown.gridUp === null ? null : lastKnown.gridUp ? 'up' : 'down', totals: lastKnown.totals, overrides,
          recentEvents: lastKnown.recentEvents.map((e) => ({ ...e, at: new Date(e.atMs).toISOString(), atLocal: localTimeText(e.atMs, cli.zone) })),
          ...(fileNote ? { configFileInvalid: fileNote } : {}),
        }),
        null, 2,
      ),
    );
  } else io.out(formatLastKnown(lastKnown, cli.zone, asked.error ?? 'no answer', overrides));
  return EXIT.daemonDown;
}
