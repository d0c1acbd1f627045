/** The runtime's interfaces to the store and the uplink, its options and its status. */
import type { Ports } from '../../hal/ports.ts';
import type { Config } from '../config/types.ts';
import type { StateSample } from '../store/history.ts';
import type { CoreEvent, DispatchRecord, DispatchResponse, Plan, Snapshot, SocSource } from '../control/types.ts';
import type { OutboundMessage, QueuedMessage } from '../contract.ts';

/** What the runtime needs from the store (src/store implements it). */
export interface RuntimeStore {
  recordDispatch(r: DispatchRecord, nowMs: number): void;
  /** Ledger row and the given outbox rows in one transaction; idempotent per dispatch id. */
  settleDispatch(r: DispatchRecord, msgs: OutboundMessage[], nowMs: number, opts?: { interrupted?: boolean }): QueuedMessage[];
  recordEvent(e: CoreEvent, nowMs: number): void;
  recordSample(sample: RuntimeSample): void;
  /** Run `fn` as one transaction that the other writes join (one commit per tick). */
  atomically?<T>(fn: () => T, durability?: 'durable' | 'relaxed'): T;
  /** Keep the meter state and the running energy of open dispatches, for settling after a crash. */
  saveMeterState?(cp: MeterCheckpointLike): void;
  loadMeterState?(): MeterCheckpointLike | undefined;
  /** Dispatches without a ledger row (the process died during them, or between status and settlement). */
  interruptedDispatches?(): { record: DispatchRecord; interrupted: boolean; started: boolean; fromCheckpoint: boolean; energyAtMs?: number }[];
  /** Keep the island state (the core's `memory.island`, JSON) for the next start; joins the tick's transaction. */
  saveIsland?(json: string, atMs: number): void;
  /** The island state kept by the last run, if any. */
  loadIsland?(): { json: string; atMs: number } | undefined;
  /** Finished dispatches, newest first, kept for the duplicate rule across restarts. */
  recentDispatches?(opts: { sinceMs?: number; limit?: number }): DispatchRecord[];
  /** Whether the store can write (handed to the core: nothing runs that cannot be settled, invariant 6). */
  health?(): { writable: boolean; fault?: string };
  /** Called when `health()` changes; returns the unsubscribe. */
  onHealthChange?(fn: (h: { writable: boolean; fault?: string }) => void): () => void;
}

export interface MeterCheckpointLike {
  atMs: number;
  meter: unknown;
  dispatches: { id: string; exportedWh: number; importedWh: number; carSideWh: number }[];
  /** The energy counters of state `energy`, Wh, so that they carry on after a restart. */
  totals?: { importedWh: number; exportedWh: number; carSideWh: number };
}

/** What the runtime needs from the uplink (src/uplink implements it). */
export interface RuntimeUplink {
  /** Stamp and send; QoS 1 messages go through the durable outbox first. */
  publish(msgs: OutboundMessage[]): void;
  /** Send whatever the outbox holds (after the store wrote rows itself). */
  drain?(): void;
}

/** One state-history sample (the store's shape). */
export type RuntimeSample = StateSample;

export type RuntimeLog = (level: 'info' | 'warn' | 'error', msg: string) => void;

export interface RuntimeOptions {
  ports: Ports;
  config: Config;
  store?: RuntimeStore;
  uplink?: RuntimeUplink;
  log?: RuntimeLog;
  /** Called after every tick with the plan and the snapshot it came from. */
  onTick?: (plan: Plan, snapshot: Snapshot) => void;
  /** Called for every dispatch response, in order (before it is published). */
  onResponse?: (r: DispatchResponse) => void;
  onEvent?: (e: CoreEvent, atMs: number) => void;
  /** Called when a dispatch is settled (its ledger row committed). */
  onSettled?: (r: DispatchRecord) => void;
  /** Take the periodic tick from the clock (default true); simulations may drive `tick()` themselves. */
  timer?: boolean;
  version?: string;
}

export interface RuntimeStatus {
  mode: string;
  grid: 'up' | 'down';
  socPct: number | null;
  socSource: SocSource;
  socAgeS: number | null;
  powerW: number;
  setpointW: number;
  floors: Plan['floors'] | null;
  dispatchId: string | null;
  backup: Plan['backup'] | null;
  departureAt: string | null;
  departureAtRisk: boolean;
  reasons: string[];
  /** Why the runtime is in `fault` (the core's cause), or null. */
  fault: string | null;
  /** Faults the runtime found itself: ports that failed to open, calls that did not answer in time. */
  portFaults: string[];
  energy: { importedWh: number; exportedWh: number; carSideWh: number };
  /** The site meter's grid and PV power as measured, with their ages (as state `site`); null before the first tick. */
  site: { gridPowerW: number | null; gridAgeS: number | null; pvPowerW: number | null; pvAgeS: number | null } | null;
  ticks: number;
}
