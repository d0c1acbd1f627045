/**
 * The store: one SQLite file holding dispatches, the energy ledger, the event log, state history and
 * the MQTT outbox. See docs/storage.md for durability, retention and the write budget.
 *
 * Not thread-safe and not meant for two writers: one runtime process owns the file; the CLI reads it.
 */
import { statfsSync } from 'node:fs';
import { dirname } from 'node:path';
import type { OutboundMessage, QueuedMessage } from '../contract.ts';
import type { CoreEvent, DispatchRecord } from '../control/types.ts';
import { noteLowSpace, onHealthChange, openDb, probeWritable, requireDurableCommit, setHealthClock, stmt, storageHealth, transact, type Db, type StorageHealth } from './db.ts';
import { checkRecord, finishedDispatches, insertStatus, isTerminal, loadDispatch, statusHistory, storedStatus, unsettledDispatches, upsertDispatch, type StatusChange } from './dispatches.ts';
import { checkEvent, insertEvent, listEvents, pruneEvents, type EventRow } from './events.ts';
import { MINUTE_MS, pruneHistory, rawSamples, rollupRows, SampleDeltas, writeBatch, type HistorySample, type RollupRow, type StateSample } from './history.ts';
import { completeLedgerMessage, insertLedger, isSettled, ledgerMessage, ledgerRows, storedLedgerMessage, storeLedgerMessage, type LedgerRow, type NewLedgerRow, type PeriodTotals } from './ledger.ts';
import { migrate } from './migrations.ts';
import { readTotals } from './read.ts';
import { SqliteOutbox } from './outbox.ts';
import { SqliteReplayGuard } from './replay.ts';
import { checkTimezone, parseTariff, priceExport, type ExportSlice, type RewardSettings, type Tariff } from './reward.ts';

export { SchemaTooNewError, SCHEMA_VERSION, MIGRATIONS, migrate, schemaVersion } from './migrations.ts';
export { formatLedgerCsv, formatLedgerTable, ledgerPayload, type LedgerRow, type PeriodTotals } from './ledger.ts';
export { parseTariff, priceExport, type RewardSettings, type TimeOfDayRate } from './reward.ts';
export { SqliteOutbox } from './outbox.ts';
export { SqliteReplayGuard } from './replay.ts';
export { isStorageError, TransactionLostError, type StorageHealth } from './db.ts';
export { runLedgerCommand, readStatusTotals } from './ledger-command.ts';
export { openReadOnly, readTotals } from './read.ts';
export type { StateSample, HistorySample, RollupRow } from './history.ts';
export type { EventRow } from './events.ts';
export type { StatusChange } from './dispatches.ts';

/** config `storage` (only `path` is required in the config; the rest default as below). */
export interface StorageSettings {
  /** Full-rate state history kept, hours. */
  stateFullRateHours: number;
  /** 1-minute rollups kept, days. */
  minuteRetentionDays: number;
  /** 15-minute rollups kept, days. */
  retentionDays: number;
  eventRetentionDays: number;
  eventMaxRows: number;
  /** Unacknowledged outbox rows before droppable classes are dropped. */
  outboxMaxRows: number;
  /** Samples are written in one batch this often, s (virtual time). */
  sampleFlushS: number;
  /** While a dispatch is open its running energy is checkpointed this often, s. */
  meterCheckpointS: number;
  /**
   * Free space on the database's file system below which the store reports itself unwritable before a
   * write fails, MiB: a dispatch is then refused (`storage`) rather than accepted and left unrecorded.
   */
  minFreeMiB: number;
}

export const DEFAULT_STORAGE: StorageSettings = {
  stateFullRateHours: 24,
  minuteRetentionDays: 31,
  retentionDays: 730,
  eventRetentionDays: 365,
  eventMaxRows: 50_000,
  outboxMaxRows: 10_000,
  sampleFlushS: 300,
  meterCheckpointS: 5,
  minFreeMiB: 4,
};

/** How often `health()` looks at the free space while the file takes writes, ms of the store's clock. */
const FREE_SPACE_CHECK_MS = 5000;

export interface StoreOptions {
  /** IANA zone for day/month totals and time-of-day rates; null/undefined = the system's. */
  timezone?: string | null;
  reward?: RewardSettings | null;
  /** Any subset of the storage settings; unknown keys (such as `path`) are ignored. */
  storage?: Partial<StorageSettings> & Record<string, unknown>;
  /** Seq numbers reserved per durable write (tests use small blocks to exercise reservation). */
  seqBlock?: number;
  /**
   * Clock for the storage fault's `sinceMs` and the probe interval (the runtime passes its monotonic
   * reading; default `Date.now`).
   */
  nowMs?: () => number;
  /** While the store cannot write, `health()` tries a write this often, s (default 30). */
  probeIntervalS?: number;
}

/** Running energy of an open dispatch, as the runtime tracks it between ticks. */
export interface DispatchEnergy {
  id: string;
  exportedWh: number;
  importedWh: number;
  carSideWh: number;
}

/**
 * What the runtime needs to continue metering after a crash: the meter's state (counter baselines,
 * opaque to the store) and the running energy of each open dispatch, as of `atMs`.
 */
export interface MeterCheckpoint<M = unknown> {
  atMs: number;
  meter: M;
  dispatches: DispatchEnergy[];
  /** The device's energy counters since the store was made (state `energy`), Wh: carried across restarts. */
  totals?: { importedWh: number; exportedWh: number; carSideWh: number };
}

/** A dispatch found without a ledger row at start-up. */
export interface UnsettledDispatch {
  /** The record as last stored, with its energy brought up to the latest checkpoint. */
  record: DispatchRecord;
  /** True when it was still open (not terminal) when the process stopped: settle it as interrupted. */
  interrupted: boolean;
  /** Whether it had started delivering. */
  started: boolean;
  /**
   * True when `record`'s energy comes from the last meter checkpoint: the runtime then adds what the
   * counters moved since it (`meterTick(checkpoint.meter, firstReading)`). False when the dispatch
   * opened after the last checkpoint (killed within the tick that opened it): its stored energy is
   * all there is, and counter movement since the checkpoint is not its own.
   */
  fromCheckpoint: boolean;
  /** Time the energy in `record` is measured to. */
  energyAtMs: number;
}

export interface StoreTotals {
  day: PeriodTotals & { metered: { importedWh: number; exportedWh: number } };
  month: PeriodTotals & { metered: { importedWh: number; exportedWh: number } };
  all: PeriodTotals;
}

export interface SettleOptions {
  /** Settled at start-up for a dispatch the process died during. */
  interrupted?: boolean;
}

function positive(v: unknown, key: string, integer = false): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || (integer && !Number.isInteger(v))) throw new Error(`storage.${key} must be a positive ${integer ? 'integer' : 'number'}, got ${JSON.stringify(v)}`);
  return v;
}

export function storageSettings(s: Partial<StorageSettings> & Record<string, unknown> = {}): StorageSettings {
  const out = { ...DEFAULT_STORAGE };
  for (const k of Object.keys(DEFAULT_STORAGE) as (keyof StorageSettings)[]) {
    if (s[k] !== undefined && s[k] !== null) out[k] = positive(s[k], k, k === 'eventMaxRows' || k === 'outboxMaxRows');
  }
  return out;
}

/** Samples held in memory at most; beyond it (the file not taking writes) the oldest are dropped. */
export const MAX_BUFFERED_SAMPLES = 20_000;
const PRUNE_INTERVAL_MS = 3_600_000;

export class Store {
  readonly outbox: SqliteOutbox;
  /** The signed-dispatch replay guard, persisted (give it to the uplink as `replay`). */
  readonly replay: SqliteReplayGuard;
  private readonly settings: StorageSettings;
  private tariff: Tariff;
  private readonly tz: string | null | undefined;
  private readonly deltas = new SampleDeltas();
  private buffer: HistorySample[] = [];
  private lastFlushMs?: number;
  /** After a failed batch write: sample time before which no new try is made. */
  private flushRetryAtMs?: number;
  private lastPruneMs?: number;
  private dirtyDispatches = new Map<string, { record: DispatchRecord; nowMs: number }>();
  private pendingCheckpoint?: MeterCheckpoint;
  private lastCheckpointWriteMs?: number;
  private lastWrittenCheckpointIds = '';
  private statusCache = new Map<string, string>();
  private closed = false;
  private readonly nowMs: () => number;
  private readonly probeIntervalMs: number;
  private lastProbeMs?: number;
  private lastFreeCheckMs?: number;
  /** Samples dropped because the buffer was full and the file did not take them. */
  samplesDropped = 0;

  constructor(readonly db: Db, opts: StoreOptions = {}) {
    checkTimezone(opts.timezone);
    this.tz = opts.timezone;
    this.tariff = parseTariff(opts.reward ?? null);
    this.settings = storageSettings(opts.storage);
    this.nowMs = opts.nowMs ?? Date.now;
    if (opts.probeIntervalS !== undefined && !(Number.isFinite(opts.probeIntervalS) && opts.probeIntervalS > 0)) throw new Error(`store probeIntervalS must be a positive number, got ${opts.probeIntervalS}`);
    this.probeIntervalMs = (opts.probeIntervalS ?? 30) * 1000;
    setHealthClock(db, this.nowMs);
    this.outbox = new SqliteOutbox(db, { maxRows: this.settings.outboxMaxRows, seqBlock: opts.seqBlock });
    this.replay = new SqliteReplayGuard(db);
  }

  // --- health ------------------------------------------------------------------------------------

  /**
   * Whether the file takes writes. Any write that fails for a storage reason (full, read-only, I/O
   * error, locked too long) turns it false; while false, a probe write is tried every
   * `probeIntervalS` (on this call) and clears it when it succeeds. The runtime hands this to the core,
   * which refuses new dispatches with `storage` while it is false.
   */
  health(): StorageHealth {
    const h = storageHealth(this.db);
    if (this.closed) return h;
    const now = this.nowMs();
    if (h.writable) {
      if (this.lastFreeCheckMs === undefined || now - this.lastFreeCheckMs >= FREE_SPACE_CHECK_MS || now < this.lastFreeCheckMs) {
        this.lastFreeCheckMs = now;
        const low = this.lowSpace();
        if (low) noteLowSpace(this.db, low);
      }
      return storageHealth(this.db);
    }
    if (this.lastProbeMs === undefined || now - this.lastProbeMs >= this.probeIntervalMs || now < this.lastProbeMs) return this.probe();
    return h;
  }

  /** Tries a small write now; returns the health after it. */
  probe(): StorageHealth {
    this.assertOpen();
    this.lastProbeMs = this.nowMs();
    // low free space is cleared only with room to spare again (half the bound more), so it does not flap
    const low = this.lowSpace(1.5);
    if (low) {
      noteLowSpace(this.db, low);
      return storageHealth(this.db);
    }
    probeWritable(this.db);
    return storageHealth(this.db);
  }

  /**
   * What is wrong when the database's file system has less than `storage.minFreeMiB` (× `margin`) free;
   * undefined when there is room, for an in-memory database, or where the file system cannot say.
   */
  private lowSpace(margin = 1): string | undefined {
    const file = this.db.name;
    if (!file || file === ':memory:' || this.db.memory) return undefined;
    let freeBytes: number;
    try {
      const st = statfsSync(dirname(file));
      freeBytes = Number(st.bavail) * Number(st.bsize);
    } catch {
      return undefined;
    }
    const minBytes = this.settings.minFreeMiB * 1024 * 1024 * margin;
    if (freeBytes >= minBytes) return undefined;
    return `ENOSPC: ${(freeBytes / 1024 / 1024).toFixed(1)} MiB free on ${dirname(file)}, below storage.minFreeMiB (${this.settings.minFreeMiB} MiB)`;
  }

  /** Called whenever `health()` changes (a fault seen, or cleared by a probe). Returns the unsubscribe. */
  onHealthChange(fn: (h: StorageHealth) => void): () => void {
    return onHealthChange(this.db, fn);
  }

  // --- dispatches and settlement ---------------------------------------------------------------

  /**
   * Runs `fn` in one transaction: the writes the other methods make inside it (status changes, outbox
   * rows, settlements) join it, so a tick that changes several things costs one commit. `relaxed`
   * (WAL, synchronous=NORMAL) survives a killed process; `durable` (synchronous=FULL) a power cut too.
   * Whatever is chosen, a settlement or a seq reservation inside is made durable before this returns.
   * If `fn` throws, nothing of it is written and the store's in-memory state is re-read from the file.
   */
  atomically<T>(fn: () => T, durability: 'durable' | 'relaxed' = 'durable'): T {
    this.assertOpen();
    if (this.db.inTransaction) return fn();
    try {
      return transact(this.db, durability, fn);
    } catch (err) {
      this.afterRollback();
      throw err;
    }
  }

  private afterRollback(): void {
    this.outbox.afterRollback();
    this.statusCache.clear();
    // the checkpoint written inside may be gone: write the next one whatever its timing
    this.lastCheckpointWriteMs = undefined;
    this.lastWrittenCheckpointIds = '\u0000';
  }

  /** Upserts the record; a new status is written at once, durably, with a status-history row. */
  recordDispatch(record: DispatchRecord, nowMs: number): void {
    this.assertOpen();
    checkRecord(record);
    if (isSettled(this.db, record.id)) return;
    const before = this.statusCache.get(record.id) ?? storedStatus(this.db, record.id);
    if (before === record.status) {
      this.dirtyDispatches.set(record.id, { record, nowMs });
      return;
    }
    transact(this.db, 'durable', () => {
      upsertDispatch(this.db, record, nowMs);
      insertStatus(this.db, record.id, record.status, record.reason, nowMs);
    });
    this.statusCache.set(record.id, record.status);
    this.dirtyDispatches.delete(record.id);
  }

  /**
   * Writes the ledger row, its totals, the final dispatch status and the outbox rows (`msgs`: the
   * `dispatch/response`; a `ledger` message is completed with reward and car-side energy, or added
   * when absent) in one durable transaction. Settling an id that already has a ledger row does
   * nothing and returns [].
   */
  settleDispatch(record: DispatchRecord, msgs: OutboundMessage[], nowMs: number, opts: SettleOptions = {}): QueuedMessage[] {
    this.assertOpen();
    checkRecord(record);
    if (!Number.isFinite(nowMs)) throw new Error(`settleDispatch ${record.id}: nowMs must be a finite epoch ms, got ${nowMs}`);
    if (!Array.isArray(msgs)) throw new Error(`settleDispatch ${record.id}: msgs must be an array`);
    if (isSettled(this.db, record.id)) {
      // built once: a second settlement (a retry, a recovery) gets the message first queued, unchanged
      const stored = storedLedgerMessage(this.db, record.id);
      return stored ? [stored] : [];
    }
    // never started (cancelled or superseded before its start): start = end = when it ended, as the runtime's ledger message says
    const startMs = record.startedMs ?? Math.min(record.startMs, record.endedMs ?? nowMs);
    const endMs = Math.max(startMs, record.endedMs ?? nowMs);
    const amount = this.tariff.priced ? priceExport(this.tariff, this.tz, record.exportedWh, this.exportProfile(startMs, endMs), startMs, endMs) : null;
    const row: NewLedgerRow = {
      dispatchId: record.id, status: record.status, startMs, endMs,
      exportedWh: record.exportedWh, importedWh: record.importedWh, carSideWh: record.carSideWh,
      rewardAmount: amount, currency: this.tariff.priced ? this.tariff.currency : null,
      interrupted: opts.interrupted ?? false, settledMs: nowMs,
      reason: record.reason === 'stopped' || record.reason === 'interrupted' ? record.reason : null,
      downtimeS: record.downtimeS !== undefined && record.downtimeS > 0 ? record.downtimeS : null,
    };
    const out = msgs.map((m) => (m && m.class === 'ledger' ? completeLedgerMessage(m, row) : m));
    if (!out.some((m) => m.class === 'ledger')) out.push(ledgerMessage(row));
    this.outbox.reserve(out.length);
    let queued: QueuedMessage[];
    try {
      queued = transact(this.db, 'durable', () => {
        requireDurableCommit(this.db);
        insertLedger(this.db, row, this.tz);
        const before = storedStatus(this.db, record.id);
        upsertDispatch(this.db, record, nowMs);
        if (before !== record.status) insertStatus(this.db, record.id, record.status, record.reason, nowMs);
        if (row.interrupted) {
          insertEvent(this.db, { kind: 'dispatch_interrupted', severity: 'warning', message: `dispatch ${record.id} settled after a restart with the energy measured before it: ${record.exportedWh.toFixed(1)} Wh exported, ${record.importedWh.toFixed(1)} Wh imported` }, nowMs);
        }
        // the settled dispatch leaves the checkpoint in the same commit, so a restart cannot add
        // counter movement to it a second time
        const cp = this.pendingCheckpoint ?? this.loadMeterState();
        if (cp?.dispatches.some((d) => d.id === record.id)) {
          this.pendingCheckpoint = { ...cp, dispatches: cp.dispatches.filter((d) => d.id !== record.id) };
          this.writeCheckpointInTransaction();
        }
        const q = this.outbox.enqueueInTransaction(out, nowMs);
        const ledgerQ = q.find((m) => m.class === 'ledger');
        if (ledgerQ) storeLedgerMessage(this.db, record.id, ledgerQ);
        return q;
      });
    } catch (err) {
      this.outbox.recount();
      throw err;
    }
    this.statusCache.set(record.id, record.status);
    this.dirtyDispatches.delete(record.id);
    return queued;
  }

  /**
   * Dispatches without a ledger row, to settle at start-up before the first tick. Energy comes from
   * the newer of the stored record and the meter checkpoint; the runtime adds what the counters moved
   * since `energyAtMs` and calls `settleDispatch(record, msgs, now, {interrupted})`.
   */
  interruptedDispatches(): UnsettledDispatch[] {
    this.assertOpen();
    const cp = this.loadMeterState();
    return unsettledDispatches(this.db).map(({ record, updatedMs }) => {
      // the checkpoint's energy and its meter baseline belong together: never mix it with a stored record's
      const e = cp?.dispatches.find((d) => d.id === record.id);
      const rec: DispatchRecord = e ? { ...record, exportedWh: e.exportedWh, importedWh: e.importedWh, carSideWh: e.carSideWh } : record;
      return {
        record: rec, interrupted: !isTerminal(record.status), started: record.startedMs !== undefined || rec.exportedWh > 0 || rec.importedWh > 0,
        fromCheckpoint: e !== undefined, energyAtMs: e && cp ? cp.atMs : updatedMs,
      };
    });
  }

  /**
   * Finished (terminal) dispatches, newest first, for the core's duplicate rule after a restart: a
   * re-sent id of one of these is answered with its status, never run again. The runtime passes them
   * to the core at start. `sinceMs` bounds by last update (default: all kept), `limit` by count.
   */
  /**
   * New reward settings (a config reload): settlements from now on are priced with them; settled rows
   * keep the price they were given. Throws, keeping the old tariff, when the settings are not usable.
   */
  setReward(reward: RewardSettings | null): void {
    this.tariff = parseTariff(reward ?? null);
  }

  recentDispatches(opts: { sinceMs?: number; limit?: number } = {}): DispatchRecord[] {
    this.assertOpen();
    const limit = opts.limit ?? 1000;
    if (!(Number.isInteger(limit) && limit >= 0)) throw new Error(`recentDispatches: limit must be a non-negative integer, got ${limit}`);
    const since = opts.sinceMs ?? 0;
    if (!Number.isFinite(since)) throw new Error(`recentDispatches: sinceMs must be a finite epoch ms, got ${since}`);
    return finishedDispatches(this.db, since, limit);
  }

  dispatch(id: string): DispatchRecord | undefined {
    return loadDispatch(this.db, id);
  }

  dispatchStatusHistory(id: string): StatusChange[] {
    return statusHistory(this.db, id);
  }

  // --- events -----------------------------------------------------------------------------------

  recordEvent(ev: CoreEvent, nowMs: number): void {
    this.assertOpen();
    checkEvent(ev, nowMs);
    transact(this.db, 'relaxed', () => insertEvent(this.db, ev, nowMs));
  }

  events(sinceMs = 0, limit = 1000): EventRow[] {
    return listEvents(this.db, sinceMs, limit);
  }

  // --- history and meter checkpoints --------------------------------------------------------------

  /** Buffers one sample; the buffer is written every `sampleFlushS` of sample time, and on close. */
  recordSample(sample: StateSample): void {
    this.assertOpen();
    const s = this.deltas.next(sample);
    this.buffer.push(s);
    // a clock stepped back (NTP after boot) must not hold the batch until the old time comes round again
    if (this.lastFlushMs === undefined || s.atMs < this.lastFlushMs) this.lastFlushMs = s.atMs;
    if (this.flushRetryAtMs !== undefined && s.atMs < this.flushRetryAtMs && s.atMs >= this.flushRetryAtMs - this.flushRetryMs()) {
      // the last batch did not go in: wait for the retry time rather than re-encode the buffer each sample
      this.boundBuffer();
      return;
    }
    if (s.atMs - this.lastFlushMs >= this.settings.sampleFlushS * 1000 || this.buffer.length >= MAX_BUFFERED_SAMPLES) this.flush(s.atMs);
  }

  private flushRetryMs(): number {
    return Math.max(this.settings.sampleFlushS * 1000, this.probeIntervalMs);
  }

  /** A failed batch stays in memory for the next try, but never more than MAX_BUFFERED_SAMPLES of it. */
  private boundBuffer(): void {
    const excess = this.buffer.length - MAX_BUFFERED_SAMPLES;
    if (excess > 0) {
      this.buffer.splice(0, excess);
      this.samplesDropped += excess;
    }
  }

  /**
   * Keeps the latest meter checkpoint. While a dispatch is open it is written every
   * `meterCheckpointS` of checkpoint time (a one-page write); otherwise with the next sample batch.
   */
  saveMeterState<M>(cp: MeterCheckpoint<M>): void {
    this.assertOpen();
    if (!cp || !Number.isFinite(cp.atMs)) throw new Error(`meter checkpoint: atMs must be a finite epoch ms, got ${JSON.stringify(cp?.atMs)}`);
    if (!Array.isArray(cp.dispatches)) throw new Error('meter checkpoint: dispatches must be an array');
    for (const d of cp.dispatches) {
      if (!d || typeof d.id !== 'string' || ![d.exportedWh, d.importedWh, d.carSideWh].every(Number.isFinite)) throw new Error(`meter checkpoint: dispatch entry ${JSON.stringify(d)} needs id and finite exportedWh, importedWh, carSideWh`);
    }
    this.pendingCheckpoint = cp;
    const open = cp.dispatches.length > 0;
    const sinceWriteMs = this.lastCheckpointWriteMs === undefined ? Infinity : cp.atMs - this.lastCheckpointWriteMs;
    const due = sinceWriteMs < 0 || sinceWriteMs >= this.settings.meterCheckpointS * 1000;
    // a dispatch opening or closing is written at once, so a restart never pairs a dispatch with a
    // meter baseline from before it opened
    if ((open && due) || idsKey(cp) !== this.lastWrittenCheckpointIds) {
      transact(this.db, 'relaxed', () => this.writeCheckpointInTransaction());
    }
  }

  /** The latest checkpoint (held in memory or on disk), or undefined. */
  loadMeterState<M = unknown>(): MeterCheckpoint<M> | undefined {
    if (this.pendingCheckpoint) return this.pendingCheckpoint as MeterCheckpoint<M>;
    const row = stmt(this.db, "SELECT value FROM meta WHERE key = 'meterCheckpoint'").get() as { value: string } | undefined;
    return row ? (JSON.parse(row.value) as MeterCheckpoint<M>) : undefined;
  }

  /** Keep the island state (the control core's `memory.island`, JSON) for the next start; joins the caller's transaction. */
  saveIsland(json: string, atMs: number): void {
    this.assertOpen();
    if (typeof json !== 'string' || json.length > 4096) throw new Error(`island state: expected a JSON string of at most 4096 characters, got ${typeof json === 'string' ? `${json.length} characters` : typeof json}`);
    if (!Number.isFinite(atMs)) throw new Error(`island state: atMs must be a finite epoch ms, got ${JSON.stringify(atMs)}`);
    transact(this.db, 'relaxed', () => {
      stmt(this.db, "INSERT INTO meta(key, value) VALUES ('island', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value").run(JSON.stringify({ json, atMs }));
    });
  }

  /** The island state kept by the last run, or undefined (the runtime checks its fields). */
  loadIsland(): { json: string; atMs: number } | undefined {
    this.assertOpen();
    const row = stmt(this.db, "SELECT value FROM meta WHERE key = 'island'").get() as { value: string } | undefined;
    if (!row) return undefined;
    const v = JSON.parse(row.value) as { json?: unknown; atMs?: unknown };
    if (typeof v?.json !== 'string' || typeof v.atMs !== 'number') throw new Error(`island state in meta is malformed: ${row.value.slice(0, 200)}`);
    return { json: v.json, atMs: v.atMs };
  }

  private writeCheckpointInTransaction(): void {
    const cp = this.pendingCheckpoint;
    if (!cp) return;
    stmt(this.db, "INSERT INTO meta(key, value) VALUES ('meterCheckpoint', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value").run(JSON.stringify(cp));
    this.lastCheckpointWriteMs = cp.atMs;
    this.lastWrittenCheckpointIds = idsKey(cp);
  }

  /** Writes everything held in memory (samples, checkpoint, energy-only dispatch updates, acks) in one batch. */
  flush(nowMs?: number): void {
    this.assertOpen();
    const batch = this.buffer;
    const at = nowMs ?? batch[batch.length - 1]?.atMs ?? this.pendingCheckpoint?.atMs;
    try {
      this.writeBatch(batch, at);
    } catch (err) {
      this.boundBuffer();
      // the next try comes after the probe interval, not on every sample
      if (at !== undefined) {
        this.lastFlushMs = at;
        this.flushRetryAtMs = at + this.flushRetryMs();
      }
      throw err;
    }
    this.flushRetryAtMs = undefined;
    this.buffer = [];
    this.dirtyDispatches.clear();
    if (at !== undefined) this.lastFlushMs = at;
  }

  private writeBatch(batch: HistorySample[], at: number | undefined): void {
    transact(this.db, 'relaxed', () => {
      writeBatch(this.db, batch);
      for (const { record, nowMs: t } of this.dirtyDispatches.values()) upsertDispatch(this.db, record, t);
      this.writeCheckpointInTransaction();
      this.outbox.flushAcksInTransaction();
      if (at !== undefined && (this.lastPruneMs === undefined || at - this.lastPruneMs >= PRUNE_INTERVAL_MS)) {
        pruneHistory(this.db, at, this.settings);
        pruneEvents(this.db, at, this.settings.eventRetentionDays, this.settings.eventMaxRows);
        this.lastPruneMs = at;
      }
    });
  }

  /** Minute-resolution export profile over [fromMs, toMs], from the rollups and the unwritten buffer. */
  private exportProfile(fromMs: number, toMs: number): ExportSlice[] {
    const byMinute = new Map<number, number>();
    for (const r of rollupRows(this.db, 'minute', fromMs - MINUTE_MS, toMs)) byMinute.set(r.bucketMs, r.exportedWh);
    for (const s of this.buffer) {
      if (s.atMs < fromMs - MINUTE_MS || s.atMs > toMs) continue;
      const b = Math.floor(s.atMs / MINUTE_MS) * MINUTE_MS;
      byMinute.set(b, (byMinute.get(b) ?? 0) + s.exportedWh);
    }
    return [...byMinute].map(([atMs, exportedWh]) => ({ atMs, exportedWh }));
  }

  rollups(resolution: 'minute' | 'quarter', fromMs: number, toMs: number): RollupRow[] {
    return rollupRows(this.db, resolution, fromMs, toMs);
  }

  /** Full-rate samples on disk plus the unwritten buffer. */
  samples(fromMs: number, toMs: number): HistorySample[] {
    return [...rawSamples(this.db, fromMs, toMs), ...this.buffer.filter((s) => s.atMs >= fromMs && s.atMs <= toMs)];
  }

  // --- ledger and totals --------------------------------------------------------------------------

  ledger(sinceMs?: number): LedgerRow[] {
    return ledgerRows(this.db, sinceMs ?? 0);
  }

  /** Settled energy and reward for the local day and month containing `nowMs`, and for all time. */
  totals(nowMs: number): StoreTotals {
    const t = readTotals(this.db, nowMs, this.tz);
    for (const s of this.buffer) {
      for (const p of [t.day, t.month] as const) {
        if (s.atMs >= p.fromMs) {
          p.metered.importedWh += s.importedWh;
          p.metered.exportedWh += s.exportedWh;
        }
      }
    }
    return { day: strip(t.day), month: strip(t.month), all: t.all };
  }

  close(): void {
    if (this.closed) return;
    try {
      this.flush();
    } finally {
      this.closed = true;
      this.db.close();
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('store is closed');
  }
}

function idsKey(cp: MeterCheckpoint): string {
  return cp.dispatches.map((d) => d.id).sort().join('\n');
}

function strip<T extends { fromMs: number }>(p: T): Omit<T, 'fromMs'> {
  const { fromMs: _, ...rest } = p;
  return rest;
}

/** Opens (creating and migrating as needed) the store at `path`. */
export function openStore(path: string, opts: StoreOptions = {}): Store {
  const db = openDb(path);
  try {
    migrate(db);
    return new Store(db, opts);
  } catch (err) {
    db.close();
    throw err;
  }
}
