/**
 * What every `wallbox` command shares: its input/output, argument parsing (negative numbers are values,
 * not options), usage errors, per-command help, the version.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { PROJECT_ROOT } from '../config/load.ts';

export interface CliIo {
  out: (s: string) => void;
  err: (s: string) => void;
  env: NodeJS.ProcessEnv;
  /** The calendar clock (quick actions' "until 07:00", "last known … ago"); Date.now when not given. */
  wallMs?: () => number;
}

export const defaultIo: CliIo = { out: (s) => process.stdout.write(s + '\n'), err: (s) => process.stderr.write(s + '\n'), env: process.env };

/** Exit codes (docs/homeowner.md): 0 ok, 1 failure, 2 bad arguments, 3 daemon not running (status), 78 bad config. */
export const EXIT = { ok: 0, failure: 1, usage: 2, daemonDown: 3, config: 78 } as const;

/** Wrong arguments: the message, then the command's help. */
export class UsageError extends Error {
  constructor(message: string, readonly command?: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export function wallNow(io: CliIo): number {
  return io.wallMs ? io.wallMs() : Date.now();
}

/** The package's version (package.json), without loading the daemon. */
export function version(): string {
  try {
    return (JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/** A token that is a negative number (`-1`, `-0.5`, `-1e3`), which parseArgs would take for an option. */
const NEGATIVE_NUMBER = /^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;

/**
 * parseArgs with `--help`/`-h` on every command and negative numbers kept as values: `config set
 * site.gridExportLimitW -1` reaches the validator, which then names the rule, instead of failing here.
 */
export function parse(command: string, args: string[], options: NonNullable<ParseArgsConfig['options']>) {
  const held: string[] = [];
  const masked = args.map((a) => {
    if (!NEGATIVE_NUMBER.test(a)) return a;
    held.push(a);
    return `\u0000neg${held.length - 1}`;
  });
  const unmask = (v: string) => v.replace(/^\u0000neg(\d+)$/, (_, i: string) => held[Number(i)]);
  try {
    const r = parseArgs({ args: masked, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
    const values = Object.fromEntries(Object.entries(r.values).map(([k, v]) => [k, typeof v === 'string' ? unmask(v) : v])) as Record<string, string | boolean | undefined>;
    return { values, positionals: r.positionals.map(unmask) };
  } catch (e) {
    throw new UsageError((e as Error).message.replace(/\u0000neg(\d+)/g, (_, i: string) => held[Number(i)]), command);
  }
}

export const USAGE = `usage: wallbox <command> [options]        (wallbox <command> --help for one command)

  status [--json]                          what the charger is doing now, and what you have earned
  config get [KEY]                         print the settings, or one (dotted key, e.g. vehicle.dischargeFloorPct)
  config set KEY VALUE [--replace]         change a setting (checked first, written atomically)
  boost [PCT] [--until TIME] | boost off   charge now to PCT % (quick action)
  pause-v2g TIME | pause-v2g off           no grid discharge until TIME (quick action)
  reserve [PCT] [--until TIME] | reserve off
                                           keep the car at PCT % for a power cut (quick action)
  overrides [--json]                       the quick actions in force
  ledger [--since DATE] [--csv]            the dispatch ledger
  events [--since DATE] [--severity S] [--limit N] [--json]
                                           the event log, newest first
  run [--config FILE] [--status-lines]     run the daemon (what systemd starts)
  simulate SCENARIO.json [--plot FILE.svg] [--json]
                                           run a scenario under the virtual clock
  ui password [--config FILE]              set the web page's password (docs/web.md)
  can decode FILE|- | can record           read or capture the CAN inverter bus (docs/can.md)

Every command takes --config FILE (default: $WALLBOX_CONFIG). Global: --version, --help,
--log-level LEVEL (debug, info, warn, error; or WALLBOX_LOG_LEVEL) for run.
`;

const TIME_HELP = `TIME: 07:00 (the next 07:00), friday or tomorrow (00:00 that day), 2026-12-24 or 2026-12-24 07:00,
a duration 90m, 4h, 2d, or an ISO time with zone. Local times are in the configured timezone.`;

export const HELP: Record<string, string> = {
  status: `usage: wallbox status [--json] [--config FILE]

What the charger is doing now (mode, SoC, power, floors, departure, dispatch, backup, quick actions) and
the energy and earnings of today, this month and all time, asked from the running daemon. Times are local
(the config's timezone). Works while the config file on disk is invalid: the daemon has a good one.
When the daemon is not running it shows the last-known figures from the database, says so and since
when, and exits 3. --json: one JSON object on every path, errors included ({"error": ...}), figures
rounded to the precision they are measured with.`,
  config: `usage: wallbox config get [KEY] [--config FILE]
       wallbox config set KEY VALUE [--replace] [--config FILE]

get: the merged settings, or one key (dotted: vehicle.departureTime) or section (vehicle).
set: VALUE is JSON when it is JSON (60, -1, true, null, {"dischargeFloorPct": 60}) and text otherwise
(06:45, immediate). An object merges into the section: \`config set vehicle '{"dischargeFloorPct":60}'\`
keeps the departure time; --replace replaces the section whole. The result is checked first; a refusal
names the rule and the value given, and the file is not changed. Then the running daemon is asked to
reload, and the answer says whether the change is in force or needs a restart.`,
  boost: `usage: wallbox boost [PCT] [--until TIME] [--config FILE]
       wallbox boost off

Charge now, at the full allowed power, to PCT % (default: vehicle.targetSocPct), and let the grid take
nothing below it, until TIME (default: the next departure, vehicle.departureTime, else 12 hours).
${TIME_HELP}`,
  'pause-v2g': `usage: wallbox pause-v2g [until] TIME [--config FILE]
       wallbox pause-v2g off

No grid discharge (V2G) until TIME: a dispatch running now ends, new ones are refused; afterwards
vehicle.v2gEnabled applies again. ${TIME_HELP}`,
  reserve: `usage: wallbox reserve [PCT] [--until TIME] [--config FILE]
       wallbox reserve off

A backup reserve for tonight (a storm is coming): charge the car to PCT % (default: vehicle.targetSocPct)
and let the grid take nothing below it, so a power cut finds it full, until TIME (default: the next
departure, else 12 hours). ${TIME_HELP}`,
  overrides: `usage: wallbox overrides [--json] [--config FILE]

The quick actions in force (boost, V2G pause, backup reserve) and when each ends, local time.`,
  ledger: `usage: wallbox ledger [--since DATE] [--csv] [--config FILE]

Every settled dispatch: start and end (local time), energy, reward, with a total line. --since takes a
date (2026-11-01, local midnight) or an ISO time with zone. --csv: RFC 4180 CSV with UTC times, for a
spreadsheet.`,
  events: `usage: wallbox events [--since DATE] [--severity info|warning|alarm] [--limit N] [--json] [--config FILE]

The event log (faults, mode changes, config changes, settlements), newest first, local times. --severity
shows that severity and above. --limit: at most N events (default 50).`,
  run: `usage: wallbox run [--config FILE] [--status-lines] [--log-level LEVEL]

The daemon (what systemd starts). --log-level (or WALLBOX_LOG_LEVEL): debug, info (default), warn, error.
--status-lines prints one status line per second.`,
  simulate: `usage: wallbox simulate SCENARIO.json [--plot FILE.svg] [--json]

Run a scenario under the virtual clock as fast as the CPU allows and print its summary (docs/simulation.md).`,
};

export function helpFor(command: string | undefined): string {
  return (command && HELP[command]) || USAGE;
}
