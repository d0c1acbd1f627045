/** Store writes and outgoing messages for one decision: events, dispatch status, settlements, samples, state. */
import type { Config } from '../config/types.ts';
import type { CoreEvent, Plan, Snapshot } from '../control/types.ts';
import type { OutboundMessage } from '../contract.ts';
import { flexPayload, gridUp, ledgerMessage, responseMessage, round100, statePayload } from './outgoing.ts';
import { safelySync } from './port-calls.ts';
import type { SnapshotAssembler } from './snapshot.ts';
import type { RuntimeLog, RuntimeOptions } from './types.ts';

export class Recorder {
  private lastStateMs = -Infinity;
  private lastFlex?: string;
  private lastFlexMs = -Infinity;
  private lastMode?: string;
  /** The island state as last saved (or loaded at start), to write it only when it changes. */
  savedIslandJson?: string;

  constructor(
    private readonly opts: RuntimeOptions,
    private readonly assembler: SnapshotAssembler,
    private readonly log: RuntimeLog,
  ) {}

  /** An event that did not come from the core (config refused, driver warnings). */
  emit(e: CoreEvent, now: number): void {
    this.opts.onEvent?.(e, now);
    safelySync(() => this.opts.store?.recordEvent(e, now), this.log);
    safelySync(() => this.opts.uplink?.publish([{ topic: 'event', payload: { ...e }, qos: 1, retain: false, class: 'event' }]), this.log);
  }

  /**
   * @param now calendar time (the clock's `wallMs()`): what the store and the messages are stamped with
   * @param monoMs monotonic time: the `state`/`flex` intervals (a wall step back must not silence them)
   */
  record(plan: Plan, s: Snapshot, now: number, config: Config, monoMs: number = now): void {
    const store = this.opts.store;
    // status changes, settlements and their outbox rows in one commit; quiet ticks open no transaction.
    // A settlement (ledger) must survive a power cut; a status change or event need only survive a
    // killed process, which keeps the fsync off the path of an `accepted` answer.
    const islandJson = JSON.stringify(plan.memory.island);
    const islandChanged = islandJson !== this.savedIslandJson && store?.saveIsland !== undefined;
    // a store known not to write is not asked to (each call would fail): the answers, events and state
    // still go out, unstored (the uplink sends them once, see docs/storage.md)
    if (s.storage?.writable === false) {
      this.recordInner(plan, s, now, config, monoMs, true);
    } else if (store?.atomically && (plan.responses.length || plan.events.length || plan.finished.length || islandChanged)) {
      try {
        const saved = store.atomically(() => this.recordInner(plan, s, now, config, monoMs), plan.finished.length ? 'durable' : 'relaxed');
        if (saved !== undefined) this.savedIslandJson = saved;
      } catch (e) {
        this.log('error', `record failed: ${(e as Error)?.message ?? String(e)}`);
        // the transaction is gone: say what was decided anyway, without the store
        this.recordInner(plan, s, now, config, monoMs, true);
      }
    } else {
      const saved = this.recordInner(plan, s, now, config, monoMs);
      if (saved !== undefined) this.savedIslandJson = saved;
    }
    this.lastMode = plan.mode;
  }

  /** Returns the island JSON it saved (taken as saved once the transaction committed). */
  /** @param storeless the store cannot write: messages only; a settlement is not announced (no ledger without its row) */
  private recordInner(plan: Plan, s: Snapshot, now: number, config: Config, monoMs: number, storeless = false): string | undefined {
    const store = storeless ? undefined : this.opts.store;
    const uplink = this.opts.uplink;
    const msgs: OutboundMessage[] = [];

    // the island phase and its timestamps, for a start after a crash in mid-island (issue 14, point 2)
    const islandJson = JSON.stringify(plan.memory.island);
    let savedIsland: string | undefined;
    if (store?.saveIsland && islandJson !== this.savedIslandJson) {
      try {
        store.saveIsland(islandJson, now);
        savedIsland = islandJson;
      } catch (e) {
        this.log('error', `saving the island state failed: ${(e as Error)?.message ?? String(e)}`);
      }
    }

    for (const e of plan.events) {
      this.opts.onEvent?.(e, now);
      safelySync(() => store?.recordEvent(e, now), this.log);
      msgs.push({ topic: 'event', payload: { ...e }, qos: 1, retain: false, class: 'event' });
    }

    for (const resp of plan.responses) {
      const rec = plan.finished.find((r) => r.id === resp.id) ?? plan.memory.dispatches.find((r) => r.id === resp.id);
      if (rec) safelySync(() => store?.recordDispatch(rec, now), this.log);
      this.opts.onResponse?.(resp);
      const msg = responseMessage(resp);
      const settles = rec !== undefined && plan.finished.includes(rec) && (resp.status === 'completed' || resp.status === 'cancelled' || resp.status === 'superseded');
      if (settles) {
        // the ledger row is committed before the final response and the ledger message are queued
        const ledgerMsg = ledgerMessage(rec);
        if (storeless) {
          this.log('error', `dispatch ${rec.id} ended while storage cannot write: its settlement is not recorded and no ledger message is sent`);
          msgs.push(msg);
        } else if (store) {
          safelySync(() => store.settleDispatch(rec, [msg, ledgerMsg], now), this.log);
          this.opts.onSettled?.(rec);
          safelySync(() => uplink?.drain?.(), this.log);
        } else {
          this.opts.onSettled?.(rec);
          msgs.push(msg, ledgerMsg);
        }
        continue;
      }
      msgs.push(msg);
    }

    if (uplink) this.report(plan, s, now, monoMs, msgs, config);
    if (msgs.length) safelySync(() => uplink?.publish(msgs), this.log);

    const totals = this.assembler.totals;
    if (store?.saveMeterState) {
      const open = plan.memory.dispatches.filter((r) => r.status === 'active' || r.status === 'curtailed' || r.status === 'accepted');
      safelySync(() => store.saveMeterState!({ atMs: now, meter: this.assembler.meter, dispatches: open.map((r) => ({ id: r.id, exportedWh: r.exportedWh, importedWh: r.importedWh, carSideWh: r.carSideWh })), totals: { ...totals } }), this.log);
    }
    if (store)
      safelySync(
        () =>
          store.recordSample({
            atMs: now, mode: plan.mode, socPct: s.vehicle.socPct ?? null, powerW: s.inverter.powerW ?? 0, setpointW: plan.setpointW,
            houseLoadW: s.houseLoadW ?? null, gridUp: gridUp(plan, s), importedWh: totals.importedWh, exportedWh: totals.exportedWh,
          }),
        this.log,
      );
    return savedIsland;
  }

  /** `state` on its interval and on a mode change; retained `flex` when it moved noticeably. */
  private report(plan: Plan, s: Snapshot, now: number, monoMs: number, msgs: OutboundMessage[], config: Config): void {
    const modeChanged = this.lastMode !== plan.mode;
    if (modeChanged || monoMs - this.lastStateMs >= config.uplink.stateIntervalS * 1000) {
      this.lastStateMs = monoMs;
      msgs.push({ topic: 'state', payload: statePayload(plan, s, this.assembler.totals, monoMs) as unknown as Record<string, unknown>, qos: 0, retain: false, class: 'state' });
    }
    const f = plan.flex;
    const flexKey = `${round100(f.maxDischargeW)}|${round100(f.maxChargeW)}|${round100(f.dischargeableWh)}|${round100(f.chargeableWh)}|${round100(f.pvForecastWh)}|${f.untilMs}`;
    if (flexKey !== this.lastFlex && monoMs - this.lastFlexMs >= Math.min(config.uplink.stateIntervalS, 10) * 1000) {
      this.lastFlex = flexKey;
      this.lastFlexMs = monoMs;
      msgs.push({ topic: 'flex', payload: flexPayload(plan) as unknown as Record<string, unknown>, qos: 1, retain: true, class: 'flex' });
    }
  }
}
