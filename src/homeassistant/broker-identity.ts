/**
 * Whether two broker URLs reach the same broker: the rule that keeps Home Assistant off the aggregator's
 * broker unless the installer says so (`homeassistant.shareUplinkBroker`). Pure, no I/O.
 */

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1', '[::1]']);

/** host:port of an mqtt(s):// URL (default ports 1883 / 8883), or undefined when it is not one. */
export function brokerAddress(url: string, embeddedPort = 1883): string | undefined {
  if (url === 'embedded') return `loopback:${embeddedPort}`;
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return undefined;
  }
  if (u.protocol !== 'mqtt:' && u.protocol !== 'mqtts:') return undefined;
  const host = u.hostname.toLowerCase();
  const port = u.port || (u.protocol === 'mqtts:' ? '8883' : '1883');
  return `${LOOPBACK.has(host) ? 'loopback' : host}:${port}`;
}

/** True when the Home Assistant URL is the uplink's broker (same host and port; the embedded broker is loopback). */
export function sameBroker(haUrl: string, uplinkUrl: string | null, embeddedPort = 1883): boolean {
  if (uplinkUrl === null) return false;
  const a = brokerAddress(haUrl, embeddedPort);
  const b = brokerAddress(uplinkUrl, embeddedPort);
  return a !== undefined && a === b;
}
