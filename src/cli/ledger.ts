/**
 * `wallbox ledger` and `wallbox events`: read-only views of the database with local times in the
 * configured zone (CSV keeps UTC ISO times: it is for machines and spreadsheets).
 */
import { existsSync } from 'node:fs';
import { checkTimezone } from '../store/reward.ts';
import { ledgerRows, formatLedgerCsv, type LedgerRow } from '../store/ledger.ts';
import { parseSince } from '../store/ledger-command.ts';
import { openReadOnly } from '../store/read.ts';
import { stmt } from '../store/db.ts';
import { localTimeText } from '../homeowner/overrides.ts';
import { localizeTimes } from '../status-format.ts';
import { EXIT, HELP, parse, UsageError, type CliIo } from './common.ts';
import { configPathFrom, loadForCli } from './context.ts';

function openDb(path: string) {
  if (!existsSync(path)) throw new Error(`no database at ${path} (storage.path): the daemon has not run with this config yet`);
  return openReadOnly(path);
}

/** Why a dispatch ended as it did, when the status alone does not say (reason, downtime across a restart). */
function endNote(r: LedgerRow): string {
  const notes = [r.reason && r.reason !== r.status ? r.reason : undefined, r.downtimeS ? `down ${Math.round(r.downtimeS)} s` : undefined].filter(Boolean);
  return notes.length ? ` (${notes.join(', ')})` : '';
}

/** The ledger as a table for a terminal, local times, with a total line. */
export function formatLedgerLocal(rows: LedgerRow[], zone: string): string {
  const head = ['id', 'start', 'end', 'status', 'exported kWh', 'imported kWh', 'reward'];
  const body = rows.map((r) => [
    r.dispatchId + (r.interrupted ? ' (interrupted)' : ''), localTimeText(r.startMs, zone), localTimeText(r.endMs, zone), r.status + endNote(r),
    (r.exportedWh / 1000).toFixed(2), (r.importedWh / 1000).toFixed(2), r.rewardAmount === null ? '-' : `${r.rewardAmount.toFixed(2)} ${r.currency}`,
  ]);
  const sum = (k: 'exportedWh' | 'importedWh') => (rows.reduce((a, r) => a + r[k], 0) / 1000).toFixed(2);
  const byCurrency = new Map<string, number>();
  for (const r of rows) if (r.rewardAmount !== null && r.currency) byCurrency.set(r.currency, (byCurrency.get(r.currency) ?? 0) + r.rewardAmount);
  const rewardTotal = [...byCurrency].map(([c, a]) => `${a.toFixed(2)} ${c}`).join(' + ') || '-';
  const total = [`total (${rows.length})`, '', '', '', sum('exportedWh'), sum('importedWh'), rewardTotal];
  const all = [head, ...body, total];
  const widths = head.map((_, i) => Math.max(...all.map((r) => r[i].length)));
  const fmt = (r: string[]) => r.map((c, i) => (i >= 4 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').trimEnd();
  return [`times in ${zone}`, fmt(head), ...body.map(fmt), fmt(total)].join('\n');
}

export async function ledgerCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse('ledger', args, { since: { type: 'string' }, csv: { type: 'boolean' }, config: { type: 'string' } });
  if (values.help) {
    io.out(HELP.ledger);
    return EXIT.ok;
  }
  if (positionals.length) throw new UsageError(`ledger takes no arguments, got ${positionals.join(' ')}`, 'ledger');
  const cli = loadForCli(configPathFrom(values, io.env));
  let sinceMs = 0;
  try {
    checkTimezone(cli.zone);
    if (values.since !== undefined) sinceMs = parseSince(values.since as string, cli.zone);
  } catch (e) {
    throw new UsageError((e as Error).message, 'ledger');
  }
  const db = openDb(cli.storagePath);
  try {
    const rows = ledgerRows(db, sinceMs);
    io.out(values.csv ? formatLedgerCsv(rows).replace(/\r\n$/, '') : rows.length ? formatLedgerLocal(rows, cli.zone) : 'no settled dispatches');
    return EXIT.ok;
  } finally {
    db.close();
  }
}

const SEVERITY_RANK: Record<string, number> = { info: 0, warning: 1, alarm: 2 };

export async function eventsCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse('events', args, {
    since: { type: 'string' }, severity: { type: 'string' }, limit: { type: 'string' }, json: { type: 'boolean' }, config: { type: 'string' },
  });
  if (values.help) {
    io.out(HELP.events);
    return EXIT.ok;
  }
  if (positionals.length) throw new UsageError(`events takes no arguments, got ${positionals.join(' ')}`, 'events');
  const severity = (values.severity as string | undefined) ?? 'info';
  if (!(severity in SEVERITY_RANK)) throw new UsageError(`--severity must be info, warning or alarm; you gave "${severity}"`, 'events');
  const limitText = (values.limit as string | undefined) ?? '50';
  const limit = Number(limitText);
  if (!Number.isInteger(limit) || limit < 1 || limit > 100_000) throw new UsageError(`--limit must be a whole number from 1 to 100000; you gave "${limitText}"`, 'events');
  const cli = loadForCli(configPathFrom(values, io.env));
  let sinceMs = 0;
  try {
    if (values.since !== undefined) sinceMs = parseSince(values.since as string, cli.zone);
  } catch (e) {
    throw new UsageError((e as Error).message, 'events');
  }
  const db = openDb(cli.storagePath);
  try {
    const wanted = Object.keys(SEVERITY_RANK).filter((s) => SEVERITY_RANK[s] >= SEVERITY_RANK[severity]);
    const rows = stmt(db, `SELECT atMs, kind, severity, message FROM events WHERE atMs >= ? AND severity IN (${wanted.map(() => '?').join(',')}) ORDER BY n DESC LIMIT ?`)
      .all(sinceMs, ...wanted, limit) as { atMs: number; kind: string; severity: string; message: string }[];
    if (values.json) io.out(JSON.stringify({ timezone: cli.zone, events: rows.map((r) => ({ ...r, at: new Date(r.atMs).toISOString(), atLocal: localTimeText(r.atMs, cli.zone) })) }, null, 2));
    else io.out(rows.length ? [`times in ${cli.zone}, newest first`, ...rows.map((r) => `${localTimeText(r.atMs, cli.zone)}  ${r.severity.padEnd(7)}  [${r.kind}] ${localizeTimes(r.message, cli.zone)}`)].join('\n') : 'no events');
    return EXIT.ok;
  } finally {
    db.close();
  }
}
