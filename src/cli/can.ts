/**
 * `wallbox can decode FILE|-` and `wallbox can record`: read a candump capture with the configured profile,
 * and capture the inverter bus on the board (docs/can.md, "Diagnostics").
 */
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { formatCandumpLine, parseCandumpLine, CandumpParseError } from '../../hal/inverter/can/candump.ts';
import type { CanChannel } from '../../hal/inverter/can/channel.ts';
import { bytesHex, idHex } from '../../hal/inverter/can/channel.ts';
import { decodeFrame } from '../../hal/inverter/can/codec.ts';
import { parseCanConfig } from '../../hal/inverter/can/index.ts';
import { defaultConfigJson, getKey } from '../config/load.ts';
import { PROFILE_NAMES, resolveProfile, type CanProfile } from '../../hal/inverter/can/profiles.ts';
import { SocketcanChannel } from '../../hal/inverter/can/socketcan-channel.ts';
import { systemClock } from '../../hal/system-clock.ts';
import { EXIT, parse, type CliIo } from './common.ts';
import { configPathFrom, loadForCli } from './context.ts';

export const CAN_HELP = `usage: wallbox can decode FILE|- [--profile NAME] [--config FILE]
       wallbox can record [--interface IF] [--duration S] [--out FILE] [--config FILE]

decode: each frame of a candump log ("(1700000000.123456) can0 351#..."; - = standard input) as one JSON
line: time, interface, id, frame name, sender, and every field with its unit, decoded with the configured
profile (inverter.can.profile) or --profile (${PROFILE_NAMES.join(', ')}). A frame that cannot be decoded
(unknown id, wrong length, value out of range) is a line with "error"; a line that is not candump is reported
with its number. Exit 1 when any line was not a candump line.

record: every frame on the inverter's CAN interface (inverter.can.interface, or --interface) in candump log
format, to --out FILE or standard output, until Ctrl-C or --duration seconds. Run it beside the daemon:
both sides of the bus are captured.`;

class CanUsage extends Error {}

export async function canCommand(args: string[], io: CliIo): Promise<number> {
  try {
    const [sub, ...rest] = args;
    if (sub === 'decode') return await decodeCommand(rest, io);
    if (sub === 'record') return await recordCommand(rest, io);
    if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
      io.out(CAN_HELP);
      return sub === undefined ? EXIT.usage : EXIT.ok;
    }
    throw new CanUsage(`unknown can command "${sub}" (decode or record)`);
  } catch (e) {
    if (e instanceof CanUsage || (e as Error)?.name === 'UsageError') {
      io.err(`wallbox: ${(e as Error).message}\n\n${CAN_HELP}`);
      return EXIT.usage;
    }
    throw e;
  }
}

/** The built-in `inverter.can` value of a key (config/default.json). */
function builtIn(key: 'profile' | 'interface'): string {
  return String(getKey(defaultConfigJson(), `inverter.can.${key}`));
}

/** The profile: --profile, else the config's inverter.can (with its overrides), else the built-in one. */
function chooseProfile(values: Record<string, unknown>, io: CliIo): CanProfile {
  if (typeof values.profile === 'string') {
    try {
      return resolveProfile(values.profile);
    } catch (e) {
      throw new CanUsage((e as Error).message.replace('inverter.can.profile', '--profile'));
    }
  }
  const cli = loadForCli(configPathFrom(values, io.env));
  if (cli.config) {
    try {
      return parseCanConfig(cli.config.inverter.can).profile;
    } catch (e) {
      io.err(`wallbox: inverter.can in ${cli.path} cannot be used (${(e as Error).message}); decoding with ${builtIn('profile')}`);
    }
  } else {
    io.err(`wallbox: the config ${cli.path} cannot be used (${cli.problem?.problems.join('; ')}); decoding with ${builtIn('profile')} (--profile to choose)`);
  }
  return resolveProfile(builtIn('profile'));
}

async function decodeCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse('can', args, { profile: { type: 'string' }, config: { type: 'string' } });
  if (values.help) {
    io.out(CAN_HELP);
    return EXIT.ok;
  }
  if (positionals.length !== 1) throw new CanUsage('can decode takes one FILE (or - for standard input)');
  const profile = chooseProfile(values, io);
  const file = positionals[0];
  const input = file === '-' ? process.stdin : createReadStream(file);
  const opened = new Promise<void>((resolve, reject) => {
    if (file === '-') resolve();
    input.once('open', () => resolve());
    input.once('error', reject);
  });
  try {
    await opened;
  } catch (e) {
    io.err(`wallbox: cannot read ${file}: ${(e as Error).message}`);
    return EXIT.failure;
  }
  let lineNo = 0;
  let frames = 0;
  let undecodable = 0;
  let badLines = 0;
  for await (const line of createInterface({ input, crlfDelay: Infinity })) {
    lineNo++;
    if (line.trim() === '' || line.trimStart().startsWith('#')) continue;
    let lf;
    try {
      lf = parseCandumpLine(line, lineNo);
    } catch (e) {
      if (!(e instanceof CandumpParseError)) throw e;
      badLines++;
      io.out(JSON.stringify({ line: lineNo, error: 'not_candump', message: e.reason }));
      continue;
    }
    frames++;
    const base = { t: lf.timeUs / 1e6, iface: lf.iface, id: idHex(lf.frame), raw: bytesHex(lf.frame.data) };
    const d = decodeFrame(lf.frame, profile);
    if (d.ok) io.out(JSON.stringify({ ...base, name: d.name, from: d.from, fields: d.fields }));
    else {
      undecodable++;
      io.out(JSON.stringify({ ...base, ...(d.name ? { name: d.name } : {}), error: d.code, message: d.message }));
    }
  }
  io.err(`${frames} frames (${undecodable} not decodable with ${profile.name}), ${badLines} lines not candump`);
  return badLines > 0 ? EXIT.failure : EXIT.ok;
}

async function recordCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse('can', args, { interface: { type: 'string' }, duration: { type: 'string' }, out: { type: 'string' }, config: { type: 'string' } });
  if (values.help) {
    io.out(CAN_HELP);
    return EXIT.ok;
  }
  if (positionals.length) throw new CanUsage(`can record takes no arguments, got ${positionals.join(' ')}`);
  let iface = values.interface as string | undefined;
  if (!iface) {
    const cli = loadForCli(configPathFrom(values, io.env));
    const configured = (cli.config?.inverter.can as { interface?: string } | undefined)?.interface;
    iface = configured ?? builtIn('interface');
  }
  if (iface === 'sim') {
    io.err('wallbox: inverter.can.interface is "sim": the simulated bus lives inside the daemon, there is nothing to record from outside (--interface can0 for a real one)');
    return EXIT.failure;
  }
  const durationS = values.duration === undefined ? undefined : Number(values.duration);
  if (durationS !== undefined && !(Number.isFinite(durationS) && durationS > 0)) throw new CanUsage(`--duration must be a number of seconds > 0, got ${values.duration}`);
  let out: WriteStream | undefined;
  const write = values.out ? (s: string) => out!.write(s + '\n') : (s: string) => io.out(s);
  const channel = new SocketcanChannel(iface, { clock: systemClock });
  try {
    await channel.open();
  } catch (e) {
    io.err(`wallbox: ${(e as Error).message}`);
    return EXIT.failure;
  }
  if (values.out) out = createWriteStream(values.out as string, { flags: 'a' });
  const stop = new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
    if (durationS !== undefined) setTimeout(resolve, durationS * 1000).unref();
  });
  const n = await recordCapture(channel, write, () => Date.now(), stop);
  await new Promise<void>((resolve) => (out ? out.end(resolve) : resolve()));
  io.err(`${n.frames} frames recorded from ${iface}${n.errors ? `; ${n.errors} channel errors (${n.lastError})` : ''}`);
  return EXIT.ok;
}

/** Write every frame the channel receives as a candump line until `stop` resolves; the channel is closed after. */
export async function recordCapture(channel: CanChannel, write: (line: string) => void, wallMs: () => number, stop: Promise<void>): Promise<{ frames: number; errors: number; lastError?: string }> {
  const n = { frames: 0, errors: 0, lastError: undefined as string | undefined };
  const offFrame = channel.onFrame((f) => {
    n.frames++;
    write(formatCandumpLine(f, channel.name, wallMs()));
  });
  const offError = channel.onError((e) => {
    n.errors++;
    n.lastError = e.message;
  });
  await stop;
  offFrame();
  offError();
  await channel.close();
  return n;
}
