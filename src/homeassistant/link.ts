/**
 * The connection to Home Assistant's broker: device discovery (retained), availability (retained, and the
 * last will), the state every entity reads, and the commands Home Assistant sends. It republishes when
 * Home Assistant says `online` on its status topic (HA restarted and lost what was not retained), and
 * removes the device cleanly (empty retained payloads) when `homeassistant.enabled` is false or the url is
 * taken away while running.
 *
 * A separate MQTT client from the aggregator's uplink: it subscribes only to its own command topics and
 * Home Assistant's status, so nothing the aggregator sends reaches the homeowner's settings.
 */
import { readFileSync } from 'node:fs';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { Config } from '../config/types.ts';
import type { CoreEvent } from '../control/types.ts';
import { COMMAND_ENTITIES, handleCommand } from './commands.ts';
import { discoveryPayload, haTopics, statePayload, type HaTopics } from './discovery.ts';

export interface HomeAssistantOptions {
  /** The config in force (the daemon's last good one). */
  config: () => Config;
  /** The local config file commands write to. */
  configPath: string;
  version: string;
  /** The daemon's status answer (the same as `wallbox status --json`). */
  status: () => Promise<Record<string, unknown>>;
  /** Apply a change of the file now (the daemon's reload). */
  reload: (why: string) => Promise<unknown>;
  log: (level: 'info' | 'warn' | 'error', msg: string) => void;
  /** The event log (what HA changed or why it was refused). */
  emit: (e: CoreEvent) => void;
  /** The calendar clock, ms (quick actions end on it). */
  wallMs: () => number;
}

/** What identifies a connection: a change of any of these reconnects. */
function connectionKey(c: Config): string {
  const ha = c.homeassistant;
  if (!ha || ha.url === null) return 'off';
  return JSON.stringify([ha.url, ha.enabled, ha.username, ha.passwordFile, ha.discoveryPrefix, ha.baseTopic, c.deviceId]);
}

const PUBLISH_BOUND_MS = 1500;
/** A person moves one slider at a time; more commands than this waiting at once is a flood. */
const MAX_PENDING_COMMANDS = 16;

export class HomeAssistantLink {
  private client?: MqttClient;
  private topics?: HaTopics;
  private key = 'off';
  private timer?: NodeJS.Timeout;
  private commandChain: Promise<void> = Promise.resolve();
  /** Commands waiting their turn: each one writes the config file, so a flood is cut, not queued without end. */
  private pending = 0;
  private floodSaid = false;
  /** The select option that set the V2G pause in force, by its end (so the select shows it back). */
  private pauseChoice?: { until: string; label: string };
  private stopped = false;

  constructor(private readonly o: HomeAssistantOptions) {}

  connected(): boolean {
    return this.client?.connected === true;
  }

  /** Starts the link for the config in force (non-blocking: the broker may be away). */
  start(): void {
    this.stopped = false;
    this.open(this.o.config());
  }

  private open(c: Config): void {
    this.key = connectionKey(c);
    const ha = c.homeassistant;
    if (!ha || ha.url === null) return;
    this.topics = haTopics(c);
    const t = this.topics;
    let password: string | undefined;
    if (ha.passwordFile) {
      try {
        password = readFileSync(ha.passwordFile, 'utf8').trim();
      } catch (e) {
        this.o.log('error', `home assistant: cannot read homeassistant.passwordFile ${ha.passwordFile}: ${(e as Error).message}`);
        return;
      }
    }
    const removing = !ha.enabled;
    const opts: IClientOptions = {
      protocolVersion: 4, clientId: `wallbox-${c.deviceId}-ha`, clean: true, reconnectPeriod: 5000, connectTimeout: 10_000, keepalive: 30,
      username: ha.username ?? undefined, password,
      // Home Assistant shows the device unavailable when this connection is lost
      will: removing ? undefined : { topic: t.availability, payload: Buffer.from('offline'), retain: true, qos: 1 },
    };
    const client = mqtt.connect(ha.url, opts);
    this.client = client;
    // said once per outage, not at every retry (every 5 s while Home Assistant's broker is away)
    let lastError: string | undefined;
    client.on('error', (e) => {
      if (e.message !== lastError) this.o.log('warn', `home assistant: ${ha.url}: ${e.message} (retrying every 5 s)`);
      lastError = e.message;
    });
    client.on('connect', () => {
      if (client !== this.client) return;
      lastError = undefined;
      if (removing) {
        void this.removeDevice(client, t).then(() => {
          this.o.log('info', `home assistant: device removed from ${ha.url} (homeassistant.enabled is false)`);
          client.end(true);
        });
        return;
      }
      this.o.log('info', `home assistant: connected to ${ha.url}`);
      client.subscribe([`${t.command}/+`, t.haStatus], { qos: 1 }, (err) => {
        if (err) this.o.log('warn', `home assistant: subscribe failed: ${err.message}`);
      });
      void this.announce();
    });
    client.on('message', (topic, payload, packet) => {
      if (client !== this.client) return;
      if (topic === t.haStatus) {
        // Home Assistant (re)started: it has lost what was not retained; say everything again
        if (payload.toString().trim() === 'online') void this.announce();
        return;
      }
      if (!topic.startsWith(`${t.command}/`)) return;
      // a retained command is an old one: acting on it at every reconnect would undo later changes
      if (packet.retain) return;
      const entity = topic.slice(t.command.length + 1);
      const text = payload.toString('utf8').slice(0, 256);
      if (this.pending >= MAX_PENDING_COMMANDS) {
        if (!this.floodSaid) this.o.emit({ kind: 'homeassistant', severity: 'warning', message: `Home Assistant sent more than ${MAX_PENDING_COMMANDS} commands at once: the rest are ignored until these are done` });
        this.floodSaid = true;
        return;
      }
      this.pending++;
      this.commandChain = this.commandChain
        .then(() => this.command(entity, text))
        .catch((e) => this.o.log('error', `home assistant: command ${entity}: ${(e as Error)?.message ?? e}`))
        .finally(() => {
          this.pending--;
          if (this.pending === 0) this.floodSaid = false;
        });
    });
    if (!removing) {
      const everyMs = Math.max(1, ha.stateIntervalS) * 1000;
      this.timer = setInterval(() => void this.publishState(), everyMs);
      this.timer.unref();
    }
  }

  private publish(client: MqttClient, topic: string, payload: string, retain: boolean): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, PUBLISH_BOUND_MS);
      client.publish(topic, payload, { qos: 1, retain }, (err) => {
        clearTimeout(t);
        if (err) this.o.log('warn', `home assistant: publish ${topic}: ${err.message}`);
        resolve();
      });
    });
  }

  /** Empty retained payloads: Home Assistant removes the device and its entities; nothing stale is left. */
  private async removeDevice(client: MqttClient, t: HaTopics): Promise<void> {
    await this.publish(client, t.discovery, '', true);
    await this.publish(client, t.state, '', true);
    await this.publish(client, t.availability, '', true);
  }

  /** Availability, discovery and state: at connect and whenever Home Assistant says it is online. */
  async announce(): Promise<void> {
    const client = this.client;
    if (!client?.connected || !this.topics) return;
    const c = this.o.config();
    await this.publish(client, this.topics.availability, 'online', true);
    await this.publish(client, this.topics.discovery, JSON.stringify(discoveryPayload(c, this.o.version)), true);
    await this.publishState();
  }

  /** The state topic, from the daemon's status now. */
  async publishState(): Promise<void> {
    const client = this.client;
    if (!client?.connected || !this.topics) return;
    let status: Record<string, unknown>;
    try {
      status = await this.o.status();
    } catch (e) {
      this.o.log('warn', `home assistant: no status to publish: ${(e as Error).message}`);
      return;
    }
    const pause = (Array.isArray(status.overrides) ? status.overrides : []).find((x: { kind?: string }) => x.kind === 'pauseV2g') as { until?: string } | undefined;
    const label = pause && this.pauseChoice && this.pauseChoice.until === pause.until ? this.pauseChoice.label : undefined;
    await this.publish(client, this.topics.state, JSON.stringify(statePayload(status, this.o.config(), this.o.wallMs(), label)), true);
  }

  private async command(entity: string, text: string): Promise<void> {
    if (!COMMAND_ENTITIES.includes(entity)) {
      this.o.emit({ kind: 'homeassistant', severity: 'warning', message: `Home Assistant sent a command for "${entity.slice(0, 64)}", which is not one of its entities: ignored` });
      return;
    }
    const r = handleCommand(entity, text, { path: this.o.configPath, config: this.o.config(), wallMs: this.o.wallMs() });
    if (r.ok) {
      if (r.changed) {
        await this.o.reload('Home Assistant');
        this.o.emit({ kind: 'homeassistant', severity: 'info', message: `Home Assistant changed ${r.what}` });
        if (r.what === 'pauseV2g' && r.pauseLabel) {
          const st = await this.o.status().catch(() => ({}) as Record<string, unknown>);
          const pause = (Array.isArray(st.overrides) ? st.overrides : []).find((x: { kind?: string }) => x.kind === 'pauseV2g') as { until?: string } | undefined;
          this.pauseChoice = pause?.until ? { until: pause.until, label: r.pauseLabel } : undefined;
        }
      }
    } else {
      this.o.emit({ kind: 'homeassistant', severity: 'warning', message: `Home Assistant: ${r.what} was not changed: ${r.problems.join('; ')} (the file was not changed)` });
    }
    // either way Home Assistant is told what is in force (a refused slider snaps back)
    await this.publishState();
  }

  /** A reload: reconnect when the connection's settings changed; else say the (maybe new) entities again. */
  async applyConfig(next: Config): Promise<void> {
    if (this.stopped) return;
    if (connectionKey(next) === this.key) {
      await this.announce();
      return;
    }
    const old = this.client;
    const oldTopics = this.topics;
    this.client = undefined;
    clearInterval(this.timer);
    if (old) {
      // leaving this broker or these topics: remove the device there first, so no stale entities stay
      if (old.connected && oldTopics) await this.removeDevice(old, oldTopics);
      await old.endAsync(true).catch(() => {});
    }
    this.open(next);
  }

  /** Availability offline (retained), then disconnect; bounded by the caller. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    const client = this.client;
    this.client = undefined;
    if (!client) return;
    if (client.connected && this.topics && this.o.config().homeassistant?.enabled !== false) await this.publish(client, this.topics.availability, 'offline', true);
    await client.endAsync().catch(() => {});
  }
}
