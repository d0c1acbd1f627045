/** The MQTT uplink to the aggregator (docs/mqtt.md). */
export { createUplink, isPublishableTopic, type Uplink, type UplinkOptions, type UplinkStats, type UplinkLog, type InvalidDispatch } from './client.ts';
export { parseDispatchPayload, parseIsoUtcMs, type ParseContext, type ParseResult, type CodecReason } from './codec.ts';
export { canonicalJson } from './canonical.ts';
export { loadPublicKey, parsePublicKey, verifySignature, signedBody, ReplayGuard } from './signing.ts';
export { uplinkSettings, type UplinkSection, type UplinkSettings } from './settings.ts';
export { startEmbeddedBroker, type EmbeddedBroker } from './embedded-broker.ts';
