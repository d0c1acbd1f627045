/** An aggregator stand-in (mqtt.js) and small waiting helpers for the uplink tests. */
import mqtt, { type IClientOptions, type IClientPublishOptions, type MqttClient } from 'mqtt';
import { brokerProtocolVersion } from '../helpers/broker.ts';

export interface Received {
  topic: string;
  text: string;
  json: Record<string, unknown> | undefined;
  retain: boolean;
  /** Redelivered by the broker (its own at-least-once to this subscriber, e.g. after a broker restart). */
  dup: boolean;
  correlationData?: Buffer;
}

export interface Aggregator {
  client: MqttClient;
  received: Received[];
  on(topic: string): Received[];
  publish(topic: string, payload: string | Buffer | object, opts?: IClientPublishOptions): Promise<void>;
  close(): Promise<void>;
}

export async function connectAggregator(url: string, subscriptions: string[], opts: IClientOptions = {}): Promise<Aggregator> {
  const client = mqtt.connect(url, { protocolVersion: brokerProtocolVersion(), reconnectPeriod: 200, clientId: `agg-${Math.random().toString(16).slice(2, 10)}`, ...opts });
  const received: Received[] = [];
  client.on('error', () => {});
  client.on('message', (topic, payload, packet) => {
    let json: Record<string, unknown> | undefined;
    try {
      json = JSON.parse(payload.toString('utf8')) as Record<string, unknown>;
    } catch {
      json = undefined;
    }
    const r: Received = { topic, text: payload.toString('utf8'), json, retain: packet.retain, dup: packet.dup };
    const cd = packet.properties?.correlationData;
    if (cd) r.correlationData = Buffer.from(cd as Buffer);
    received.push(r);
  });
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`aggregator could not connect to ${url}`)), 10_000);
    client.once('connect', () => {
      clearTimeout(t);
      resolve();
    });
  });
  if (subscriptions.length) await client.subscribeAsync(subscriptions, { qos: 1 });
  return {
    client,
    received,
    on: (topic) => received.filter((r) => r.topic === topic),
    publish: async (topic, payload, o = { qos: 1 }) => {
      const body = typeof payload === 'string' || Buffer.isBuffer(payload) ? payload : JSON.stringify(payload);
      await client.publishAsync(topic, body, o);
    },
    close: async () => {
      await client.endAsync(true);
    },
  };
}

/** Poll `cond` until it holds; the deadline only turns a hang into a failure, it is not a timing assertion. */
export async function waitFor(cond: () => boolean, what: string, deadlineMs = 20_000): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export const quietLog = { info: () => {}, warn: () => {}, error: () => {} };

export function uplinkConfig(deviceId: string, url: string, extra: Record<string, unknown> = {}) {
  return { deviceId, uplink: { url, prefix: 'wallbox', groups: [] as string[], stateIntervalS: 10, ...extra } };
}
