/**
 * Human-readable `wallbox status`: the running daemon's answer, or the last-known figures from the
 * database when it is not running. Every time is local, in the configured zone, as `YYYY-MM-DD HH:MM`.
 */
import type { LastKnown } from './cli/last-known.ts';
import { localTimeText } from './homeowner/overrides.ts';

type Obj = Record<string, unknown>;

const get = (s: unknown, path: string): unknown =>
  path.split('.').reduce<unknown>((o, k) => (o && typeof o === 'object' ? (o as Obj)[k] : undefined), s);
const num = (v: unknown, digits = 1) => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(digits) : '--');
const whole = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? String(Math.round(v)) : '--');

/** `2026-12-02 07:30` for an ISO instant or epoch ms; `none` for null/undefined. */
export function localTime(v: unknown, zone: string): string {
  const ms = typeof v === 'number' ? v : typeof v === 'string' ? Date.parse(v) : Number.NaN;
  return Number.isFinite(ms) ? localTimeText(ms, zone) : 'none';
}

/**
 * UTC ISO times inside a message (events written by the core and the drivers say `2026-12-01T06:45:00Z`)
 * as local `2026-12-01 07:45`, so a person reads every time in the configured zone.
 */
export function localizeTimes(text: string, zone: string): string {
  return text.replace(/\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?Z\b/g, (iso) => localTime(iso, zone));
}

/** kWh with one decimal from Wh: a person reads energy in kWh. */
const kWh = (wh: unknown) => (typeof wh === 'number' && Number.isFinite(wh) ? `${(wh / 1000).toFixed(1)} kWh` : '--');

function totalsLines(totals: unknown): string[] {
  const lines: string[] = [];
  for (const period of ['day', 'month', 'all'] as const) {
    const t = get(totals, period) as { dispatches?: number; exportedWh?: number; importedWh?: number; rewards?: { amount: number; currency: string }[] } | undefined;
    if (!t || typeof t !== 'object') continue;
    const reward = (t.rewards ?? []).map((r) => `${r.amount.toFixed(2)} ${r.currency}`).join(' + ') || 'no reward';
    const label = period === 'all' ? 'all time' : period === 'day' ? 'today' : 'this month';
    lines.push(`${label.padEnd(12)} ${t.dispatches ?? 0} dispatch(es), exported ${kWh(t.exportedWh)}, imported ${kWh(t.importedWh)}, ${reward}`);
  }
  return lines;
}

/** Quick actions in force, one line. */
function overridesLine(list: unknown): string {
  if (!Array.isArray(list) || list.length === 0) return 'none';
  return list.map((o: Obj) => `${o.label} until ${o.untilLocal ?? o.until}`).join('; ');
}

/** The site meter's figures after the grid line: ", importing 1234 W, sun 3400 W"; nothing without a meter. */
function siteLine(site: unknown): string {
  const g = get(site as Obj, 'gridPowerW');
  const pv = get(site as Obj, 'pvPowerW');
  const parts: string[] = [];
  if (typeof g === 'number') parts.push(g >= 0 ? `importing ${whole(g)} W` : `exporting ${whole(-g)} W`);
  if (typeof pv === 'number') parts.push(`sun ${whole(pv)} W`);
  return parts.length ? `, ${parts.join(', ')}` : '';
}

/** The running daemon's status, for people. `zone`: the configured time zone. */
export function formatStatus(s: Obj, zone: string): string {
  const reasons = Array.isArray(s.reasons) ? (s.reasons as string[]) : [];
  const floors = get(s, 'floors.overrideFloorPct') !== undefined ? `, quick action ${num(get(s, 'floors.overrideFloorPct'))} %` : '';
  const lines = [
    `device       ${s.deviceId ?? '?'} (${s.version ?? '?'})`,
    `mode         ${s.mode}${reasons.length ? ` (${reasons.join(', ')})` : ''}`,
    `grid         ${s.grid}${siteLine(s.site)}`,
    `car          SoC ${num(s.socPct)} % from ${s.socSource}${s.socAgeS !== null && s.socAgeS !== undefined ? `, ${whole(s.socAgeS)} s old` : ''}`,
    `power        ${whole(s.powerW)} W (setpoint ${whole(s.setpointW)} W; + into the car)`,
    `floors       discharge ${num(get(s, 'floors.dischargeFloorPct'))} %, effective ${num(get(s, 'floors.effectiveFloorPct'))} %, backup ${num(get(s, 'floors.backupFloorPct'))} %${floors}`,
    `departure    ${localTime(s.departureAt, zone)}${s.departureAtRisk ? ' (AT RISK)' : ''}`,
    `quick action ${overridesLine(s.overrides)}`,
    `dispatch     ${s.dispatchId ?? 'none'}`,
    `backup       ${get(s, 'backup.active') ? `${get(s, 'backup.phase')}${get(s, 'backup.outageStartMs') !== undefined ? ` since ${localTime(get(s, 'backup.outageStartMs'), zone)}` : ''}, ${num(get(s, 'backup.hoursLeft'))} h left, shed tiers ${JSON.stringify(get(s, 'backup.shedTiers') ?? [])}` : 'not active'}`,
    `energy       imported ${whole(get(s, 'energy.importedWh'))} Wh, exported ${whole(get(s, 'energy.exportedWh'))} Wh in all`,
  ];
  const faults = [...(Array.isArray(s.faults) ? s.faults : []), ...(Array.isArray(s.portFaults) ? s.portFaults : [])] as string[];
  if (faults.length) lines.push(`faults       ${localizeTimes([...new Set(faults)].join('; '), zone)}`);
  const uplink = s.uplink as { connected?: boolean; outbox?: number } | null | undefined;
  if (uplink) lines.push(`uplink       ${uplink.connected ? 'connected' : 'NOT connected'}, ${uplink.outbox ?? 0} message(s) waiting in the outbox`);
  const ha = s.homeassistant as { connected?: boolean; url?: string } | null | undefined;
  if (ha) lines.push(`home assist. ${ha.connected ? 'connected' : 'NOT connected'} to ${ha.url ?? '?'}`);
  lines.push(...totalsLines(s.totals));
  const restart = get(s, 'config.restartNeeded');
  if (Array.isArray(restart) && restart.length) lines.push(`config       waiting for a restart: ${restart.join(', ')}`);
  return lines.join('\n');
}

/** The last-known figures from the database, for people, saying that they are last-known and from when. */
export function formatLastKnown(k: LastKnown, zone: string, why: string, overrides: unknown): string {
  const lines = [`${why}: these are the LAST-KNOWN figures from the database`];
  if (k.atMs === null) lines.push('last known   nothing recorded yet');
  else {
    lines.push(
      `last known   at ${localTime(k.atMs, zone)}: mode ${k.mode}, SoC ${num(k.socPct)} %, power ${whole(k.powerW)} W, grid ${k.gridUp === null ? '?' : k.gridUp ? 'up' : 'down'}`,
    );
  }
  lines.push(`quick action ${overridesLine(overrides)}`);
  lines.push(...totalsLines(k.totals));
  for (const e of k.recentEvents) lines.push(`event        ${localTime(e.atMs, zone)} ${e.severity} [${e.kind}] ${localizeTimes(e.message, zone)}`);
  return lines.join('\n');
}
