import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { OutboundMessage } from '../../src/contract.ts';
import type { DispatchRecord } from '../../src/control/types.ts';

export const T0 = Date.UTC(2026, 10, 23, 16, 0, 0); // 2026-11-23T16:00:00Z

export function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'wallbox-store-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export function dbIn(dir: string, name = 'wallbox.db'): string {
  return join(dir, name);
}

export function record(id: string, over: Partial<DispatchRecord> = {}): DispatchRecord {
  return {
    id,
    request: { id, powerW: -7000, durationS: 3600 },
    body: JSON.stringify({ id, powerW: -7000, durationS: 3600 }),
    source: 'device',
    receivedMs: T0,
    startMs: T0,
    endMs: T0 + 3_600_000,
    status: 'accepted',
    acceptedW: -7000,
    exportedWh: 0,
    importedWh: 0,
    carSideWh: 0,
    ...over,
  };
}

export function responseMsg(id: string, status: string, extra: Record<string, unknown> = {}): OutboundMessage {
  return { topic: 'dispatch/response', payload: { id, status, ...extra }, qos: 1, retain: false, class: 'response' };
}

export function ledgerMsg(r: DispatchRecord): OutboundMessage {
  return { topic: 'ledger', payload: { id: r.id, start: new Date(r.startedMs ?? r.startMs).toISOString(), end: new Date(r.endedMs ?? r.endMs).toISOString(), exportedWh: r.exportedWh, importedWh: r.importedWh }, qos: 1, retain: false, class: 'ledger' };
}

export function stateMsg(i: number): OutboundMessage {
  return { topic: 'state', payload: { i }, qos: 1, retain: false, class: 'state' };
}
