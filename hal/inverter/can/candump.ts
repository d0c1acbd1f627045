/**
 * candump log format (can-utils `candump -l` / `-L`), one frame a line:
 *
 *     (1700000000.123456) can0 351#2802E8030000CC01
 *
 * time in seconds since the epoch with microseconds, the interface, the id in hex (3 digits for 11-bit,
 * 8 for 29-bit), `#`, the data in hex; `ID#R` is a remote frame. CAN FD lines (`ID##F…`) are not classic CAN
 * and are refused with the reason. Pure text in, text out, so a capture from an installation replays through
 * the driver in a test and `wallbox can decode` can read one.
 */
import type { CanFrame } from './channel.ts';
import { idHex } from './channel.ts';

export interface LoggedFrame {
  /** Epoch seconds with microseconds, as in the log. */
  timeS: number;
  /** The same time in whole microseconds (exact: no binary fraction in between). */
  timeUs: number;
  iface: string;
  frame: CanFrame;
}

export class CandumpParseError extends Error {
  constructor(
    readonly lineNo: number,
    readonly reason: string,
  ) {
    super(`line ${lineNo}: ${reason}`);
  }
}

const LINE = /^\((\d+)\.(\d{1,9})\)\s+(\S+)\s+([0-9A-Fa-f]+)#(.*)$/;

/** Parse one line; throws {@link CandumpParseError} naming what is wrong. */
export function parseCandumpLine(line: string, lineNo = 1): LoggedFrame {
  const m = LINE.exec(line.trim());
  if (!m) throw new CandumpParseError(lineNo, `not a candump log line (expected "(SECONDS.MICROS) IFACE ID#DATA"): ${JSON.stringify(line.slice(0, 80))}`);
  const [, sec, frac, iface, idText, rest] = m;
  if (idText.length !== 3 && idText.length !== 8) throw new CandumpParseError(lineNo, `id "${idText}" must be 3 hex digits (11-bit) or 8 (29-bit)`);
  const extended = idText.length === 8;
  const id = parseInt(idText, 16);
  if (!extended && id > 0x7ff) throw new CandumpParseError(lineNo, `id 0x${idText} is beyond 11 bits (0x7FF)`);
  if (extended && id > 0x1fffffff) throw new CandumpParseError(lineNo, `id 0x${idText} is beyond 29 bits`);
  const timeUs = Number(sec) * 1_000_000 + Number(frac.padEnd(6, '0').slice(0, 6));
  const timeS = timeUs / 1_000_000;
  if (rest.startsWith('#')) throw new CandumpParseError(lineNo, 'a CAN FD frame (ID##…); this bus is classic CAN');
  if (/^R\d?$/i.test(rest)) return { timeS, timeUs, iface, frame: { id, extended, rtr: true, data: new Uint8Array(0) } };
  const hex = rest.replace(/\./g, '');
  if (!/^([0-9A-Fa-f]{2})*$/.test(hex)) throw new CandumpParseError(lineNo, `data "${rest}" is not whole bytes of hex`);
  if (hex.length > 16) throw new CandumpParseError(lineNo, `${hex.length / 2} data bytes; classic CAN carries at most 8`);
  const data = new Uint8Array(hex.length / 2);
  for (let i = 0; i < data.length; i++) data[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return { timeS, timeUs, iface, frame: { id, extended, data } };
}

export interface ParsedLog {
  frames: LoggedFrame[];
  /** Lines that were not frames, with the reason (blank lines and `#` comments are skipped silently). */
  errors: CandumpParseError[];
}

/** Parse a whole log; bad lines are collected, not thrown, so one damaged line does not lose the capture. */
export function parseCandump(text: string): ParsedLog {
  const frames: LoggedFrame[] = [];
  const errors: CandumpParseError[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    if (line.trim() === '' || line.trimStart().startsWith('#')) return;
    try {
      frames.push(parseCandumpLine(line, i + 1));
    } catch (e) {
      if (e instanceof CandumpParseError) errors.push(e);
      else throw e;
    }
  });
  return { frames, errors };
}

/** One log line for a frame seen at `wallMs` (epoch ms) on `iface`. */
export function formatCandumpLine(frame: CanFrame, iface: string, wallMs: number): string {
  const us = Math.round(wallMs * 1000);
  const sec = Math.floor(us / 1_000_000);
  const micro = String(us - sec * 1_000_000).padStart(6, '0');
  const data = frame.rtr ? 'R' : [...frame.data].map((b) => b.toString(16).toUpperCase().padStart(2, '0')).join('');
  return `(${sec}.${micro}) ${iface} ${idHex(frame)}#${data}`;
}
