/**
 * The runtime, by part (src/runtime/): loop.ts (the Runtime class: scheduling, ticks, events),
 * snapshot.ts (snapshot assembly, SoC source, metering), actuation.ts (applying a plan),
 * recording.ts (store writes and reports per decision), recovery.ts (start-up recovery),
 * outgoing.ts (response, ledger, state and flex messages), port-calls.ts (guarded port calls).
 * This file re-exports them for the importers.
 */
export { Runtime } from './runtime/loop.ts';
export { controlSettings } from './runtime/settings.ts';
export { flexPayload, gridUp, ledgerMessage, responseMessage, statePayload } from './runtime/outgoing.ts';
export type { MeterCheckpointLike, RuntimeLog, RuntimeOptions, RuntimeSample, RuntimeStatus, RuntimeStore, RuntimeUplink } from './runtime/types.ts';
