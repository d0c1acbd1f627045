/**
 * Start-up recovery after a crash or power cut: settle what was running from the energy measured (the
 * last checkpoint plus what the inverter's counters moved since), marked interrupted; put back dispatches
 * that had not started yet, so they still run; answer the ones whose time passed meanwhile.
 */
import type { InverterReading } from '../../hal/ports.ts';
import { deliveredWh } from '../control/dispatch.ts';
import { meterTick, type MeterState } from '../control/metering.ts';
import type { CoreEvent, DispatchRecord, EnergyDelta } from '../control/types.ts';
import type { OutboundMessage } from '../contract.ts';
import { ledgerMessage, responseMessage, round1 } from './outgoing.ts';
import type { SnapshotAssembler } from './snapshot.ts';
import type { RuntimeOptions } from './types.ts';

export interface RecoveryContext {
  opts: RuntimeOptions;
  nowMs: number;
  /** The inverter's reading after a fresh poll (undefined when it did not answer). */
  reading: InverterReading | undefined;
  assembler: SnapshotAssembler;
  emit: (e: CoreEvent) => void;
}

/** Settles interrupted dispatches; returns those to put back into the core's memory. */
export function recoverDispatches(ctx: RecoveryContext): DispatchRecord[] {
  const store = ctx.opts.store;
  if (!store?.interruptedDispatches) return [];
  const now = ctx.nowMs;
  const cp = store.loadMeterState?.();
  const reading = ctx.reading;
  let sinceCheckpoint: EnergyDelta = { exportedWh: 0, importedWh: 0, carSideWh: 0 };
  if (cp?.meter && reading) {
    const t = meterTick(cp.meter as MeterState, reading, ctx.assembler.meterSettings());
    sinceCheckpoint = t.delta;
    ctx.assembler.meter = t.state;
  }
  const restored: DispatchRecord[] = [];
  const msgs: OutboundMessage[] = [];
  for (const u of store.interruptedDispatches()) {
    let rec = u.record;
    if (u.interrupted && !u.started && rec.endMs > now) {
      restored.push(rec);
      continue;
    }
    if (u.interrupted && !u.started) {
      const expired: DispatchRecord = { ...rec, status: 'expired', reason: 'expired', endedMs: now };
      store.recordDispatch(expired, now);
      msgs.push(responseMessage({ id: rec.id, status: 'expired', reason: 'expired', replyTo: rec.replyTo }));
      continue;
    }
    if (u.interrupted) {
      const delta = u.fromCheckpoint && (rec.status === 'active' || rec.status === 'curtailed') ? sinceCheckpoint : { exportedWh: 0, importedWh: 0, carSideWh: 0 };
      rec = {
        ...rec, status: 'completed', reason: 'interrupted', endedMs: Math.min(now, rec.endMs),
        exportedWh: rec.exportedWh + delta.exportedWh, importedWh: rec.importedWh + delta.importedWh, carSideWh: rec.carSideWh + delta.carSideWh,
      };
    }
    const resp = { id: rec.id, status: rec.status, reason: rec.reason, deliveredWh: deliveredWh(rec), replyTo: rec.replyTo };
    store.settleDispatch(rec, [responseMessage(resp), ledgerMessage(rec, u.interrupted)], now, { interrupted: u.interrupted });
    ctx.opts.onSettled?.(rec);
    ctx.emit({ kind: 'dispatch', severity: 'warning', message: `dispatch ${rec.id} settled after a restart: ${round1(rec.exportedWh)} Wh exported, ${round1(rec.importedWh)} Wh imported${u.interrupted ? ' (interrupted)' : ''}` });
  }
  if (msgs.length) ctx.opts.uplink?.publish(msgs);
  ctx.opts.uplink?.drain?.();
  return restored;
}
