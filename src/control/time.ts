/** Local wall-clock arithmetic for departure times. Pure: the same inputs always give the same instant. */

/**
 * The calendar time of a decision: the snapshot's wall clock reading, or `nowMs` when the snapshot has none
 * (the clocks agree). Departure times, dispatch windows, overrides ending "at 07:00" and ledger times use it;
 * ages, durations, debounce and timers use the monotonic `nowMs`.
 */
export function calendarMs(s: { wallMs?: number }, nowMs: number): number {
  return s.wallMs !== undefined && Number.isFinite(s.wallMs) ? s.wallMs : nowMs;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(timeZone, f);
  }
  return f;
}

interface LocalParts {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
}

export function localParts(ms: number, timeZone: string): LocalParts {
  const out: Record<string, number> = {};
  for (const p of formatter(timeZone).formatToParts(new Date(ms))) if (p.type !== 'literal') out[p.type] = Number(p.value);
  return { year: out.year, month: out.month, day: out.day, hour: out.hour % 24, minute: out.minute, second: out.second };
}

/** Offset of `timeZone` from UTC at instant `ms`, in ms (positive east of Greenwich). */
export function zoneOffsetMs(ms: number, timeZone: string): number {
  const p = localParts(ms, timeZone);
  const asUtc = Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second);
  return asUtc - Math.floor(ms / 1000) * 1000;
}

/** The instant at which the local clock in `timeZone` shows the given date and time. */
export function localToUtcMs(year: number, month: number, day: number, hour: number, minute: number, timeZone: string): number {
  const naive = Date.UTC(year, month - 1, day, hour, minute);
  let guess = naive - zoneOffsetMs(naive, timeZone);
  // a second pass settles instants near a DST change, where the offset at the guess differs
  guess = naive - zoneOffsetMs(guess, timeZone);
  return guess;
}

/** The answer holds for every `nowMs` in [fromMs, atMs): remembered so a tick costs no Intl call. */
const nextCache = new Map<string, { fromMs: number; atMs: number }>();

/** Next instant after `nowMs` at which the local time in `timeZone` is `hhmm` ("07:30"). */
let last: { hhmm: string; timeZone: string; fromMs: number; atMs: number } | undefined;

export function nextLocalTimeMs(hhmm: string, timeZone: string, nowMs: number): number {
  if (last && last.hhmm === hhmm && last.timeZone === timeZone && last.fromMs <= nowMs && nowMs < last.atMs) return last.atMs;
  const key = `${hhmm}|${timeZone}`;
  const hit = nextCache.get(key);
  if (hit && hit.fromMs <= nowMs && nowMs < hit.atMs) {
    last = { hhmm, timeZone, ...hit };
    return hit.atMs;
  }
  const atMs = computeNextLocalTimeMs(hhmm, timeZone, nowMs);
  if (nextCache.size > 64) nextCache.clear();
  nextCache.set(key, { fromMs: nowMs, atMs });
  last = { hhmm, timeZone, fromMs: nowMs, atMs };
  return atMs;
}

function computeNextLocalTimeMs(hhmm: string, timeZone: string, nowMs: number): number {
  const [hour, minute] = hhmm.split(':').map(Number);
  const today = localParts(nowMs, timeZone);
  for (let addDays = 0; addDays <= 2; addDays++) {
    const d = new Date(Date.UTC(today.year, today.month - 1, today.day + addDays));
    const at = localToUtcMs(d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate(), hour, minute, timeZone);
    if (at > nowMs) return at;
  }
  return nowMs + 86_400_000;
}
