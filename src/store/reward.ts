/**
 * The tariff that turns exported energy into the homeowner's reward, and the local-time helpers the
 * store needs for day/month totals and time-of-day rates (all in the configured IANA zone).
 *
 * Rate selection: the first `timeOfDay` window containing the local minute wins; outside every window
 * the flat `ratePerKWh` applies (0 when null). A window with `to` earlier than `from` runs past
 * midnight. With neither a flat rate nor a window there is no reward at all (the ledger message then
 * carries no `reward`).
 */

export interface TimeOfDayRate {
  /** Local `HH:MM`, inclusive. */
  from: string;
  /** Local `HH:MM`, exclusive; earlier than `from` = past midnight; equal = all day. */
  to: string;
  ratePerKWh: number;
}

/** config `reward`. */
export interface RewardSettings {
  ratePerKWh: number | null;
  currency: string;
  timeOfDay?: TimeOfDayRate[] | null;
}

export interface Tariff {
  currency: string;
  flatRatePerKWh: number;
  windows: { fromMin: number; toMin: number; ratePerKWh: number }[];
  /** False when nothing is priced. */
  priced: boolean;
}

const HHMM = /^([01]\d|2[0-3]):([0-5]\d)$/;

function minutesOf(hhmm: unknown, path: string): number {
  const m = typeof hhmm === 'string' ? HHMM.exec(hhmm) : null;
  if (!m) throw new Error(`${path} must be a local time "HH:MM" (00:00-23:59), got ${JSON.stringify(hhmm)}`);
  return Number(m[1]) * 60 + Number(m[2]);
}

function rateOf(v: unknown, path: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new Error(`${path} must be a number >= 0 (amount per kWh), got ${JSON.stringify(v)}`);
  return v;
}

/** Validates `reward` and builds the tariff; every problem names its key. */
export function parseTariff(r: RewardSettings | undefined | null): Tariff {
  if (!r) return { currency: '', flatRatePerKWh: 0, windows: [], priced: false };
  if (typeof r.currency !== 'string' || !/^[A-Z]{3}$/.test(r.currency)) throw new Error(`reward.currency must be a 3-letter ISO 4217 code, got ${JSON.stringify(r.currency)}`);
  const flat = r.ratePerKWh === null || r.ratePerKWh === undefined ? null : rateOf(r.ratePerKWh, 'reward.ratePerKWh');
  const tod = r.timeOfDay ?? [];
  if (!Array.isArray(tod)) throw new Error('reward.timeOfDay must be a list of {from, to, ratePerKWh}');
  const windows = tod.map((w, i) => {
    if (!w || typeof w !== 'object') throw new Error(`reward.timeOfDay[${i}] must be an object {from, to, ratePerKWh}`);
    return { fromMin: minutesOf(w.from, `reward.timeOfDay[${i}].from`), toMin: minutesOf(w.to, `reward.timeOfDay[${i}].to`), ratePerKWh: rateOf(w.ratePerKWh, `reward.timeOfDay[${i}].ratePerKWh`) };
  });
  return { currency: r.currency, flatRatePerKWh: flat ?? 0, windows, priced: flat !== null || windows.length > 0 };
}

function inWindow(min: number, w: { fromMin: number; toMin: number }): boolean {
  if (w.fromMin === w.toMin) return true;
  return w.fromMin < w.toMin ? min >= w.fromMin && min < w.toMin : min >= w.fromMin || min < w.toMin;
}

/** Rate per kWh at a local minute of the day (0–1439). */
export function rateAtMinute(t: Tariff, minuteOfDay: number): number {
  for (const w of t.windows) if (inWindow(minuteOfDay, w)) return w.ratePerKWh;
  return t.flatRatePerKWh;
}

// --- local time --------------------------------------------------------------------------------

const formatters = new Map<string, Intl.DateTimeFormat>();

/** Throws a clear error for a zone Intl does not know. */
export function checkTimezone(tz: string | null | undefined): void {
  if (tz === null || tz === undefined) return;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
  } catch {
    throw new Error(`timezone ${JSON.stringify(tz)} is not an IANA time zone`);
  }
}

function formatter(tz: string | null | undefined): Intl.DateTimeFormat {
  const key = tz ?? '';
  let f = formatters.get(key);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: tz ?? undefined, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit',
    });
    formatters.set(key, f);
  }
  return f;
}

export interface LocalParts { year: number; month: number; day: number; hour: number; minute: number; second: number }

export function localParts(ms: number, tz: string | null | undefined): LocalParts {
  const p: Record<string, number> = {};
  for (const part of formatter(tz).formatToParts(new Date(ms))) if (part.type !== 'literal') p[part.type] = Number(part.value);
  return { year: p.year, month: p.month, day: p.day, hour: p.hour, minute: p.minute, second: p.second };
}

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** Local calendar day `YYYY-MM-DD` and month `YYYY-MM` of an instant. */
export function localDayMonth(ms: number, tz: string | null | undefined): { day: string; month: string } {
  const p = localParts(ms, tz);
  const month = `${pad(p.year, 4)}-${pad(p.month)}`;
  return { day: `${month}-${pad(p.day)}`, month };
}

/** Offset of local time from UTC at an instant, ms. */
function offsetMs(ms: number, tz: string | null | undefined): number {
  const p = localParts(ms, tz);
  return Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second) - (ms - (((ms % 1000) + 1000) % 1000));
}

/** The instant of a local wall-clock time (the earlier one when a DST change repeats it). */
export function localToUtcMs(year: number, month: number, day: number, tz: string | null | undefined, hour = 0, minute = 0): number {
  const wall = Date.UTC(year, month - 1, day, hour, minute);
  let guess = wall - offsetMs(wall, tz);
  guess = wall - offsetMs(guess, tz);
  return guess;
}

/** Start of the local day and of the local month containing `ms`. */
export function localPeriodStarts(ms: number, tz: string | null | undefined): { dayStartMs: number; monthStartMs: number } {
  const p = localParts(ms, tz);
  return { dayStartMs: localToUtcMs(p.year, p.month, p.day, tz), monthStartMs: localToUtcMs(p.year, p.month, 1, tz) };
}

// --- pricing ----------------------------------------------------------------------------------

/** Energy exported in one minute-aligned interval. */
export interface ExportSlice {
  atMs: number;
  exportedWh: number;
}

const MINUTE_MS = 60_000;

/**
 * Prices `totalExportedWh` by the time profile of the export. The profile (from the state history)
 * only says *when* energy left the car; it is scaled so that exactly the ledger's energy is priced.
 * Without a usable profile the energy is spread evenly over [fromMs, toMs).
 */
export function priceExport(t: Tariff, tz: string | null | undefined, totalExportedWh: number, profile: ExportSlice[], fromMs: number, toMs: number): number {
  if (!t.priced || !(totalExportedWh > 0)) return 0;
  let slices = profile.filter((s) => s.exportedWh > 0 && s.atMs >= fromMs - MINUTE_MS && s.atMs <= toMs);
  if (slices.length === 0) {
    const start = Math.floor(fromMs / MINUTE_MS) * MINUTE_MS;
    const end = Math.max(toMs, fromMs + 1);
    // bounded: a dispatch lasts at most 86,400 s, i.e. 1,441 minutes
    const minutes = Math.min(Math.ceil((end - start) / MINUTE_MS), 2 * 1440);
    slices = Array.from({ length: Math.max(1, minutes) }, (_, i) => ({ atMs: start + i * MINUTE_MS, exportedWh: 1 }));
  }
  const profileWh = slices.reduce((a, s) => a + s.exportedWh, 0);
  let amount = 0;
  for (const s of slices) {
    const p = localParts(s.atMs, tz);
    amount += rateAtMinute(t, p.hour * 60 + p.minute) * (s.exportedWh / profileWh) * (totalExportedWh / 1000);
  }
  return roundAmount(amount);
}

/** Amounts are kept to 1/10,000 of the currency unit; settlement rounds to its own minor unit. */
export function roundAmount(x: number): number {
  return Math.round(x * 10_000) / 10_000;
}
