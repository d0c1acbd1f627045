/**
 * The `uplink` config section with its defaults applied (config/schema.json, docs/mqtt.md).
 */
import { DEFAULT_MAX_DISPATCH_AGE_S, DEFAULT_MAX_PAYLOAD_BYTES } from './codec.ts';

export interface UplinkTlsSettings {
  /** PEM file of the CA(s) the broker's certificate must chain to; absent = the system's CAs. */
  ca?: string | null;
  /** PEM client certificate and key files, for brokers that authenticate devices by certificate. */
  cert?: string | null;
  key?: string | null;
  /** Verify the broker's certificate and host name. Only a lab broker would turn this off. */
  rejectUnauthorized?: boolean;
}

/** What the uplink reads from the `uplink` section; unknown keys are ignored here, the schema checks them. */
export interface UplinkSection {
  url: string | null;
  prefix: string;
  groups: string[];
  stateIntervalS: number;
  maxPayloadBytes?: number;
  dispatchPublicKey?: string | null;
  maxDispatchAgeS?: number;
  sessionExpiryS?: number;
  keepaliveS?: number;
  connectTimeoutS?: number;
  willDelayS?: number;
  tls?: UplinkTlsSettings | null;
  username?: string | null;
  passwordFile?: string | null;
  /** Port of the embedded broker when `url` is `"embedded"`. */
  embeddedPort?: number;
  [k: string]: unknown;
}

export interface UplinkSettings {
  url: string | null;
  prefix: string;
  groups: string[];
  maxPayloadBytes: number;
  dispatchPublicKey: string | null;
  maxDispatchAgeS: number;
  sessionExpiryS: number;
  keepaliveS: number;
  connectTimeoutS: number;
  willDelayS: number;
  tls: Required<UplinkTlsSettings> | null;
  username: string | null;
  passwordFile: string | null;
  embeddedPort: number;
}

function num(v: unknown, dflt: number): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : dflt;
}

function str(v: unknown): string | null {
  return typeof v === 'string' && v.length > 0 ? v : null;
}

export function uplinkSettings(u: UplinkSection): UplinkSettings {
  const tls = u.tls && typeof u.tls === 'object' ? u.tls : null;
  return {
    url: u.url,
    prefix: u.prefix,
    groups: Array.isArray(u.groups) ? u.groups : [],
    maxPayloadBytes: num(u.maxPayloadBytes, DEFAULT_MAX_PAYLOAD_BYTES),
    dispatchPublicKey: str(u.dispatchPublicKey),
    maxDispatchAgeS: num(u.maxDispatchAgeS, DEFAULT_MAX_DISPATCH_AGE_S),
    sessionExpiryS: num(u.sessionExpiryS, 3600),
    keepaliveS: num(u.keepaliveS, 30),
    connectTimeoutS: num(u.connectTimeoutS, 10),
    willDelayS: num(u.willDelayS, 0),
    tls: tls ? { ca: str(tls.ca), cert: str(tls.cert), key: str(tls.key), rejectUnauthorized: tls.rejectUnauthorized !== false } : null,
    username: str(u.username),
    passwordFile: str(u.passwordFile),
    embeddedPort: num(u.embeddedPort, 1883),
  };
}
