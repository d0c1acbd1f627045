/** The MQTT uplink to the aggregator (docs/mqtt.md). */
export { createUplink, isPublishableTopic, type Uplink, type UplinkOptions, type UplinkStats, type UplinkLog, type InvalidDispatch } from './client.ts';
export { parseDispatchPayload, parseIsoUtcMs, duplicateKey, MAX_ECHOED_ID_CHARS, type ParseContext, type ParseResult, type CodecReason } from './codec.ts';
export { DEFAULT_MAX_LIVE_DISPATCHES, type IntakeReason } from './intake.ts';
export { canonicalJson } from './canonical.ts';
export { loadPublicKey, parsePublicKey, verifySignature, signedBody, ReplayGuard, type ReplayMemory, type ReplayVerdict } from './signing.ts';
export { uplinkSettings, type UplinkSection, type UplinkSettings } from './settings.ts';
export { realTimer, type UplinkTimer } from './timer.ts';
export { startEmbeddedBroker, type EmbeddedBroker } from './embedded-broker.ts';
