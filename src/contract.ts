/**
 * The outward contract's message shapes (../shared/docs/contract.md §1), shared by the runtime,
 * the store's outbox and the uplink. Topics are relative to `<prefix>/<deviceId>`.
 */
import type { DispatchResponse, Mode, SocSource } from './control/types.ts';

/** Message classes decide outbox retention: `ledger` and `response` rows are never dropped. */
export type MessageClass = 'status' | 'state' | 'flex' | 'event' | 'response' | 'ledger';

/**
 * A message the device sends. `ts` and `seq` are added when it is enqueued (seq strictly increasing,
 * per device, across restarts). QoS 1 messages go through the durable outbox; QoS 0 ones do not.
 */
export interface OutboundMessage {
  /** Topic under the device root, e.g. `dispatch/response`; or absolute when `absoluteTopic` is set. */
  topic: string;
  payload: Record<string, unknown>;
  qos: 0 | 1;
  retain: boolean;
  class: MessageClass;
  /** MQTT 5 request/response: also publish to this topic with this correlation data. */
  responseTopic?: string;
  correlationData?: string; // base64
  absoluteTopic?: boolean;
}

export interface StatePayload {
  mode: Mode;
  grid: 'up' | 'down';
  vehicle: { connected: boolean; socPct: number | null; socAgeS: number | null; socSource: SocSource };
  powerW: number;
  setpointW: number;
  floors: { dischargeFloorPct: number; effectiveFloorPct: number; backupFloorPct: number };
  dispatchId: string | null;
  energy: { importedWh: number; exportedWh: number };
  backup?: { phase: string; hoursLeft: number | null; shedTiers: number[] };
  departure?: { at: string | null; atRisk: boolean };
  reasons?: string[];
  /** Whether the device can record (a dispatch is refused `storage` while not), and why not. */
  storage?: { writable: boolean; fault: string | null };
  /**
   * The site meter's figures as measured (docs/meter.md): grid power at the connection point, W, positive =
   * import; PV production, W; each null without a meter, in fault, or not measured; their age, s.
   */
  site?: { gridPowerW: number | null; gridAgeS: number | null; pvPowerW: number | null; pvAgeS: number | null };
}

export interface FlexPayload {
  maxDischargeW: number;
  maxChargeW: number;
  dischargeableWh: number;
  /** Room the aggregator may fill from the grid before `until`, AC Wh: the battery's room less `pvForecastWh`. */
  chargeableWh: number;
  /** PV the clear-sky forecast (`site.pvForecast`) expects the car to take before `until` (or in 24 h), AC Wh; 0 without one. */
  pvForecastWh: number;
  until: string | null;
}

export interface LedgerPayload {
  id: string;
  start: string;
  end: string;
  exportedWh: number;
  importedWh: number;
  carSideWh?: number;
  status?: string;
  interrupted?: boolean;
  /** `stopped` (a clean stop) or `interrupted` (a crash outlasting the window); absent otherwise. */
  reason?: string;
  /** Seconds the device was down while the window was open (it resumed after a restart); absent = none. */
  downtimeS?: number;
  reward?: { amount: number; currency: string };
}

export type ResponsePayload = Omit<DispatchResponse, 'source'>;

export function isoUtc(ms: number): string {
  return new Date(ms).toISOString().slice(0, 19) + 'Z';
}

/** An outbound message with its envelope, as stored in the outbox and sent on the wire. */
export interface QueuedMessage extends OutboundMessage {
  /** Outbox row id (QoS 1 only); undefined for QoS 0 messages that were never stored. */
  rowId?: number;
  /** ISO 8601 UTC time the message was enqueued; also inside the payload as `ts`. */
  ts: string;
  /** Per-device, strictly increasing across restarts; also inside the payload as `seq`. */
  seq: number;
}

/**
 * The durable outbox and sequence counter (implemented in SQLite by src/store, in memory for tests).
 * QoS 1 messages are written before they are sent and deleted only when the broker acknowledges them.
 */
export interface OutboxStore {
  /** Stamp `ts` and `seq` on each message (also into its payload) and persist the QoS 1 ones, in order. */
  enqueue(msgs: OutboundMessage[], nowMs: number): QueuedMessage[];
  /** Unacknowledged QoS 1 messages, oldest first. */
  pending(limit: number): QueuedMessage[];
  /** The broker acknowledged this row: delete it. */
  ack(rowId: number): void;
  /** Number of unacknowledged rows. */
  size(): number;
}
