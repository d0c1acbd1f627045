/**
 * Vehicle link through EVerest's API module: the ISO 15118 stack publishes the car's data as JSON on a
 * local MQTT broker (everest_api/<evse>/var/{ev_info, session_info, limits, hardware_capabilities}) and
 * takes a power limit on everest_api/<evse>/cmd/set_limit_watts.
 *
 * Event-driven: `state()` is the merge of the latest message on each topic. A payload that is not a JSON
 * object is dropped whole; a field that is present but unusable is dropped alone; both with a warning
 * and a count, never an exception. While the broker is unreachable the driver reconnects with backoff
 * and reports `fault.code = 'disconnected'`.
 */
import { randomBytes } from 'node:crypto';
import { connect, type IClientOptions, type MqttClient } from 'mqtt';
import type { Clock, PortFault, Unsubscribe, VehicleLinkPort, VehicleState } from '../ports.ts';
import { redactUrl } from '../redact-url.ts';
import {
  decodeEvInfo, decodeHardwareCapabilities, decodeLimits, decodeSessionInfo, parsePayload, PLUGGED_STATES, UNPLUGGED_STATES,
  type EvInfo, type EvseLimits, type FieldIssue, type HardwareCapabilities, type SessionInfo,
} from './everest-codec.ts';

export type LogLevel = 'warn' | 'info';
export type LogFn = (level: LogLevel, message: string) => void;

export interface EverestVehicleLinkOptions {
  /** The bridge's broker, e.g. `mqtt://127.0.0.1:1883` (credentials may be given in the URL). */
  url: string;
  /** The EvseManager's module id: the `<evse>` in `everest_api/<evse>/...`. */
  evseId: string;
  clock: Clock;
  /** Publish the runtime's power limit to cmd/set_limit_watts. */
  forwardLimit: boolean;
  /** How long `open()` waits for the first connection, and the MQTT CONNACK timeout, ms (default 5000). */
  connectTimeoutMs?: number;
  log?: LogFn;
  /** Topic root (default `everest_api`). */
  topicPrefix?: string;
  /** Nominal AC voltage per phase for turning current limits into power, V (default 230). */
  nominalVoltageV?: number;
  /** Phase count for that conversion; undefined or null = the bridge's phase counts, else 1. */
  phases?: number | null;
  /** Reconnect backoff bounds, ms (defaults 500 and 30000). */
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
  /** Largest payload decoded, bytes (default 65536); EVerest's are a few hundred. */
  maxPayloadBytes?: number;
  /** Consecutive unusable messages, with nothing usable between, before `fault.code = 'garbage'` (default 10). */
  garbageFaultAfter?: number;
  /** Re-send an unchanged power limit after this long, ms of the clock (default 10000). */
  limitRefreshMs?: number;
  clientId?: string;
}

/** What the EVerest link reports beyond the port's fields. */
export interface EverestVehicleState extends VehicleState {
  /** session_info.state as sent (e.g. `Charging`, `Unplugged`). */
  sessionState?: string;
  /** When the last ev_info carrying `soc` arrived (epoch ms); the same as `socAtMs`. */
  socReportedAtMs?: number;
  /** ev_info.remaining_energy_needed, Wh. */
  remainingEnergyWh?: number;
  targetEnergyRequestWh?: number;
  maxEnergyRequestWh?: number;
  minEnergyRequestWh?: number;
  /** ev_info.battery_full_soc / battery_bulk_soc, %. */
  fullSocPct?: number;
  bulkSocPct?: number;
  /** The car's minimum discharge power, W, positive magnitude. */
  minDischargeW?: number;
  /** session_info.latest_total_w, W, as the bridge signs it. */
  latestTotalW?: number;
  presentVoltageV?: number;
  presentCurrentA?: number;
}

export interface EverestLinkCounters {
  /** Messages taken (a JSON object on a known topic). */
  messages: number;
  /** Messages dropped whole (not JSON, not an object, oversize). */
  rejectedMessages: number;
  /** Fields dropped from otherwise usable messages. */
  droppedFields: number;
  /** Power limits published. */
  limitsPublished: number;
  /** Successful connections to the broker. */
  connects: number;
}

type Topic = 'ev_info' | 'session_info' | 'limits' | 'hardware_capabilities';
const TOPICS: Topic[] = ['ev_info', 'session_info', 'limits', 'hardware_capabilities'];

const WARN_INTERVAL_MS = 60_000;


/** The `vehicleLink` config section, as far as this driver reads it (config/schema.json). */
export interface EverestLinkConfig {
  url: string;
  evseId: string;
  forwardLimit: boolean;
  nominalVoltageV?: number;
  phases?: number | null;
  connectTimeoutMs?: number;
}

/** Driver options from the `vehicleLink` config section. */
export function everestOptionsFromConfig(c: EverestLinkConfig, clock: Clock, log?: LogFn): EverestVehicleLinkOptions {
  const o: EverestVehicleLinkOptions = { url: c.url, evseId: c.evseId, clock, forwardLimit: c.forwardLimit, phases: c.phases ?? undefined };
  if (c.nominalVoltageV !== undefined) o.nominalVoltageV = c.nominalVoltageV;
  if (c.connectTimeoutMs !== undefined) o.connectTimeoutMs = c.connectTimeoutMs;
  if (log) o.log = log;
  return o;
}

export class EverestVehicleLink implements VehicleLinkPort {
  readonly kind = 'vehicle' as const;
  readonly counters: EverestLinkCounters = { messages: 0, rejectedMessages: 0, droppedFields: 0, limitsPublished: 0, connects: 0 };

  private readonly o: Required<Omit<EverestVehicleLinkOptions, 'log' | 'phases' | 'clientId'>> &
    Pick<EverestVehicleLinkOptions, 'log' | 'phases' | 'clientId'>;
  private readonly root: string;
  private client?: MqttClient;
  private closing = false;
  private opened = false;
  private reconnectTimer?: NodeJS.Timeout;
  private backoffMs: number;
  private listeners = new Set<() => void>();
  private lastCause = 'not connected yet';
  /** Ends open()'s wait once the first subscription is in place. */
  private onSubscribed?: () => void;

  private atMs = 0;
  private ev?: EvInfo;
  private session?: SessionInfo;
  private limits?: EvseLimits;
  private caps?: HardwareCapabilities;
  private socAtMs?: number;
  private socReportedAtMs?: number;
  private disconnectedSinceMs?: number;
  private subscribeFault?: { sinceMs: number; cause: string };
  private consecutiveBad = 0;
  private garbageSinceMs?: number;
  private lastFaultKey = '';
  private limitW?: number;
  private limitSentW?: number;
  private limitSentAtMs?: number;
  private warnedAt = new Map<string, { atMs: number; suppressed: number }>();

  constructor(opts: EverestVehicleLinkOptions) {
    this.o = {
      connectTimeoutMs: 5000,
      topicPrefix: 'everest_api',
      nominalVoltageV: 230,
      reconnectMinMs: 500,
      reconnectMaxMs: 30_000,
      maxPayloadBytes: 65_536,
      garbageFaultAfter: 10,
      limitRefreshMs: 10_000,
      ...opts,
    };
    this.root = `${this.o.topicPrefix}/${this.o.evseId}`;
    this.backoffMs = this.o.reconnectMinMs;
  }

  /**
   * Connects and subscribes. Rejects only on a bad URL or EVSE id. A broker that cannot be reached
   * within `connectTimeoutMs` does not make it reject: EVerest often starts after this process, so the
   * link resolves with `fault.code = 'disconnected'` and keeps trying.
   */
  async open(): Promise<void> {
    if (this.opened) return;
    const { url, evseId } = this.o;
    let proto: string;
    try {
      proto = new URL(url).protocol;
    } catch {
      throw new Error(`vehicle link (EVerest): broker URL ${JSON.stringify(url)} is not a URL`);
    }
    if (!['mqtt:', 'mqtts:', 'tcp:', 'ssl:', 'ws:', 'wss:'].includes(proto))
      throw new Error(`vehicle link (EVerest): broker URL ${redactUrl(url)} must use mqtt://, mqtts://, ws:// or wss://`);
    if (!/^[^/#+\s]{1,128}$/.test(evseId))
      throw new Error(`vehicle link (EVerest): EVSE id ${JSON.stringify(evseId)} must be one topic level without /, + or #`);
    if (!(this.o.nominalVoltageV > 0) || (this.o.phases != null && ![1, 2, 3].includes(this.o.phases)))
      throw new Error('vehicle link (EVerest): nominalVoltageV must be > 0 and phases 1, 2 or 3');
    this.opened = true;
    this.closing = false;
    this.disconnectedSinceMs = this.o.clock.nowMs();
    const options: IClientOptions = {
      clientId: this.o.clientId ?? `wallbox-vehicle-${randomBytes(4).toString('hex')}`,
      protocolVersion: 4,
      clean: true,
      // the driver runs its own backoff; mqtt.js would retry at a fixed period
      reconnectPeriod: 0,
      resubscribe: false,
      connectTimeout: this.o.connectTimeoutMs,
      // the broker is local: notice a dead one well within the SoC age limit
      keepalive: 15,
      // a stale limit sent after a reconnect would be worse than none: the next tick sends a fresh one
      queueQoSZero: false,
    };
    let client: MqttClient;
    try {
      client = connect(url, options);
    } catch (e) {
      this.opened = false;
      throw new Error(`vehicle link (EVerest): cannot use broker URL ${redactUrl(url)}: ${(e as Error).message}`);
    }
    this.client = client;
    client.on('connect', () => this.onConnect(client));
    client.on('message', (topic, payload) => this.onMessage(topic, payload));
    client.on('error', (e) => {
      this.lastCause = e?.message || String(e);
    });
    client.on('close', () => this.onClose());
    client.on('offline', () => this.onClose());
    // network deadlines run in real time: they govern sockets, not the simulated world
    await new Promise<void>((resolve) => {
      const t = setTimeout(done, this.o.connectTimeoutMs);
      this.onSubscribed = done;
      function done() {
        clearTimeout(t);
        resolve();
      }
    });
    this.onSubscribed = undefined;
    this.notifyIfChanged();
  }

  async refresh(): Promise<void> {}

  state(): EverestVehicleState {
    const s: EverestVehicleState = { atMs: this.atMs, connected: this.isConnected() };
    const sess = this.session;
    if (sess?.state !== undefined) s.sessionState = sess.state;
    if (sess?.chargedWh !== undefined) s.chargedWh = sess.chargedWh;
    if (sess?.dischargedWh !== undefined) s.dischargedWh = sess.dischargedWh;
    if (sess?.latestTotalW !== undefined) s.latestTotalW = sess.latestTotalW;
    const fault = this.fault();
    if (fault) s.fault = fault;
    if (!s.connected) return s;
    const ev = this.ev ?? {};
    if (ev.socPct !== undefined) {
      s.socPct = ev.socPct;
      s.socAtMs = this.socAtMs;
      s.socReportedAtMs = this.socReportedAtMs;
    }
    const copy = <K extends keyof EvInfo & keyof EverestVehicleState>(k: K) => {
      if (ev[k] !== undefined) (s as unknown as Record<string, unknown>)[k] = ev[k];
    };
    for (const k of ['capacityWh', 'minSocPct', 'targetSocPct', 'departureAtMs', 'remainingEnergyWh', 'targetEnergyRequestWh',
      'maxEnergyRequestWh', 'minEnergyRequestWh', 'fullSocPct', 'bulkSocPct', 'minDischargeW', 'presentVoltageV', 'presentCurrentA'] as const) copy(k);
    // battery_full_soc is the SoC the car calls full: the best stand-in for a maximum it did not send
    const maxSoc = ev.maxSocPct ?? ev.fullSocPct;
    if (maxSoc !== undefined) s.maxSocPct = maxSoc;
    const charge = ev.maxChargeW ?? this.chargeFromCurrents();
    if (charge !== undefined) s.maxChargeW = charge;
    // facts only: what the car sent, and apart from it what the charger can export. Whether a car that
    // sent no discharge limit may be discharged is the core's decision (vehicle.dischargeWithoutCarConsent)
    if (ev.maxDischargeW !== undefined) {
      s.maxDischargeW = ev.maxDischargeW;
      s.carDischargeLimitW = ev.maxDischargeW;
      s.bidirectional = ev.maxDischargeW > 0;
    }
    const exportW = this.dischargeFromCurrents();
    if (exportW !== undefined) s.chargerExportCapabilityW = exportW;
    return s;
  }

  /**
   * Forwards the runtime's limit when `forwardLimit` is set: positive = charge limit, negative =
   * discharge limit (EVerest documents the payload only as "positive or negative"). Never rejects.
   */
  async setPowerLimitW(powerW: number): Promise<void> {
    if (!this.o.forwardLimit) return;
    if (typeof powerW !== 'number' || !Number.isFinite(powerW)) {
      this.warn('limit:nan', `power limit ${String(powerW)} W is not a number: not forwarded`);
      return;
    }
    this.limitW = Math.round(powerW) || 0;
    this.sendLimit(false);
  }

  async close(): Promise<void> {
    this.closing = true;
    this.opened = false;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    const c = this.client;
    this.client = undefined;
    this.listeners.clear();
    if (!c) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, 2000);
      try {
        c.end(true, {}, () => {
          clearTimeout(t);
          resolve();
        });
      } catch {
        clearTimeout(t);
        resolve();
      }
    });
  }

  onChange(listener: () => void): Unsubscribe {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  // ---------------------------------------------------------------------------------------------

  private isConnected(): boolean {
    const st = this.session?.state;
    return st !== undefined && PLUGGED_STATES.has(st);
  }

  private fault(): PortFault | undefined {
    if (this.disconnectedSinceMs !== undefined)
      return { code: 'disconnected', message: `EVerest API broker ${redactUrl(this.o.url)} (EVSE ${this.o.evseId}) unreachable: ${this.lastCause}`, sinceMs: this.disconnectedSinceMs };
    if (this.subscribeFault !== undefined)
      return { code: 'subscribe_failed', message: `EVerest API broker ${redactUrl(this.o.url)}: subscribing to ${this.root}/var/* failed: ${this.subscribeFault.cause}`, sinceMs: this.subscribeFault.sinceMs };
    if (this.garbageSinceMs !== undefined)
      return { code: 'garbage', message: `the last ${this.consecutiveBad} messages on ${this.root}/var/* were unusable`, sinceMs: this.garbageSinceMs };
    return undefined;
  }

  private onConnect(client: MqttClient): void {
    if (client !== this.client) return;
    this.counters.connects++;
    this.backoffMs = this.o.reconnectMinMs;
    this.disconnectedSinceMs = undefined;
    client.subscribe(TOPICS.map((t) => `${this.root}/var/${t}`), { qos: 0 }, (err, granted) => {
      // a broker ACL that refuses the topics leaves the link connected but deaf: say so
      const refused = (granted ?? []).filter((g) => g.qos === 128).map((g) => g.topic);
      if (err || refused.length > 0) {
        this.subscribeFault ??= { sinceMs: this.o.clock.nowMs(), cause: err ? err.message : `refused by the broker: ${refused.join(', ')}` };
        this.warn('subscribe', `subscribing to ${this.root}/var/* failed: ${this.subscribeFault.cause}`);
      } else this.subscribeFault = undefined;
      this.onSubscribed?.();
      this.notifyIfChanged();
    });
    this.o.log?.('info', `vehicle link: connected to ${redactUrl(this.o.url)}, EVSE ${this.o.evseId}`);
    this.sendLimit(true);
    this.notifyIfChanged();
  }

  private onClose(): void {
    if (this.closing || !this.client) return;
    if (this.disconnectedSinceMs === undefined) {
      this.disconnectedSinceMs = this.o.clock.nowMs();
      this.warn('disconnected', `vehicle link: lost ${redactUrl(this.o.url)}: ${this.lastCause}`);
    }
    this.notifyIfChanged();
    if (this.reconnectTimer) return;
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.o.reconnectMaxMs, this.backoffMs * 2);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (this.closing || !this.client || this.client.connected) return;
      try {
        this.client.reconnect();
      } catch (e) {
        this.lastCause = (e as Error).message;
        this.onClose();
      }
    }, delay);
  }

  private onMessage(topic: string, payload: Buffer): void {
    try {
      this.take(topic, payload);
    } catch (e) {
      // a decoder bug must cost one message, not the process
      this.counters.rejectedMessages++;
      this.warn(`crash:${topic}`, `message on ${topic} could not be handled: ${(e as Error).message}`);
    }
    this.notifyIfChanged();
  }

  private take(topic: string, payload: Buffer): void {
    const prefix = `${this.root}/var/`;
    if (!topic.startsWith(prefix)) return;
    const name = topic.slice(prefix.length) as Topic;
    if (!TOPICS.includes(name)) return;
    const parsed = parsePayload(payload, this.o.maxPayloadBytes);
    if (!parsed.ok) {
      this.counters.rejectedMessages++;
      this.unusable();
      this.warn(`reject:${name}`, `${topic}: ${parsed.reason}; message ignored`);
      return;
    }
    const now = this.o.clock.nowMs();
    let issues: FieldIssue[];
    let usable: boolean;
    switch (name) {
      case 'ev_info': {
        const d = decodeEvInfo(parsed.obj);
        issues = d.issues;
        usable = Object.keys(d.value).length > 0 || issues.length === 0;
        // EvseManager republishes the whole EVInfo on every change: a field it leaves out is gone
        this.ev = d.value;
        // the SoC's time is when the car sent it, nothing else: how long it may be used, and with how
        // much energy moved since, is for the core's SoC tracker to judge (src/control/soc-tracker.ts)
        if (d.value.socPct !== undefined) {
          this.socAtMs = now;
          this.socReportedAtMs = now;
        }
        break;
      }
      case 'session_info': {
        const d = decodeSessionInfo(parsed.obj);
        issues = d.issues;
        usable = Object.keys(d.value).length > 0 || issues.length === 0;
        this.takeSession(d.value, now);
        // the bridge's 1 s heartbeat paces the refresh, so a restarted stack gets the limit back
        this.sendLimit(false);
        break;
      }
      case 'limits': {
        const d = decodeLimits(parsed.obj);
        issues = d.issues;
        usable = Object.keys(d.value).length > 0 || issues.length === 0;
        this.limits = d.value;
        break;
      }
      case 'hardware_capabilities': {
        const d = decodeHardwareCapabilities(parsed.obj);
        issues = d.issues;
        usable = Object.keys(d.value).length > 0 || issues.length === 0;
        this.caps = d.value;
        break;
      }
    }
    this.counters.messages++;
    for (const i of issues) {
      this.counters.droppedFields++;
      this.warn(`field:${name}.${i.field}`, `${topic}: field ${i.field} dropped: ${i.reason}`);
    }
    if (usable) {
      this.atMs = now;
      this.consecutiveBad = 0;
      this.garbageSinceMs = undefined;
    } else {
      this.unusable();
    }
  }

  private takeSession(v: SessionInfo, now: number): void {
    const st = v.state;
    if (st !== undefined && !PLUGGED_STATES.has(st) && !UNPLUGGED_STATES.has(st))
      this.warn(`state:${st}`, `${this.root}/var/session_info: unknown state ${JSON.stringify(st)}, taken as no car`);
    this.session = v;
    if (st !== undefined && UNPLUGGED_STATES.has(st)) {
      // the car left: the next car must not inherit this one's SoC, limits or wishes
      this.ev = undefined;
      this.socAtMs = undefined;
      this.socReportedAtMs = undefined;
    }
  }

  private unusable(): void {
    this.consecutiveBad++;
    if (this.consecutiveBad >= this.o.garbageFaultAfter && this.garbageSinceMs === undefined) this.garbageSinceMs = this.o.clock.nowMs();
  }

  private phasesFor(bridgePhases: number | undefined): number {
    return this.o.phases ?? bridgePhases ?? 1;
  }

  /** Charge limit from currents, W, when the car sends no power limit: min(import capability, EVSE limit). */
  private chargeFromCurrents(): number | undefined {
    const a = [this.caps?.maxImportA, this.limits?.maxCurrentA].filter((x): x is number => x !== undefined);
    if (a.length === 0) return undefined;
    const phases = this.phasesFor(this.limits?.phases ?? this.caps?.importPhases);
    return Math.round(Math.min(...a) * this.o.nominalVoltageV * phases);
  }

  /** The charger's export capability, W: hardware_capabilities.max_current_A_export × voltage × phases. */
  private dischargeFromCurrents(): number | undefined {
    const a = this.caps?.maxExportA;
    if (a === undefined) return undefined;
    return Math.round(a * this.o.nominalVoltageV * this.phasesFor(this.caps?.exportPhases ?? this.limits?.phases));
  }

  private sendLimit(afterReconnect: boolean): void {
    const c = this.client;
    if (!this.o.forwardLimit || this.limitW === undefined || !c?.connected) return;
    const now = this.o.clock.nowMs();
    const due = afterReconnect || this.limitSentW !== this.limitW || this.limitSentAtMs === undefined || now - this.limitSentAtMs >= this.o.limitRefreshMs;
    if (!due) return;
    const w = this.limitW;
    this.limitSentW = w;
    this.limitSentAtMs = now;
    try {
      c.publish(`${this.root}/cmd/set_limit_watts`, String(w), { qos: 0 }, (err) => {
        if (err) {
          this.limitSentW = undefined;
          this.warn('limit:publish', `publishing ${w} W to ${this.root}/cmd/set_limit_watts failed: ${err.message}`);
        }
      });
      this.counters.limitsPublished++;
    } catch (e) {
      this.limitSentW = undefined;
      this.warn('limit:publish', `publishing ${w} W failed: ${(e as Error).message}`);
    }
  }

  private notifyIfChanged(): void {
    const f = this.fault();
    const key = `${f?.code ?? ''}|${this.isConnected()}`;
    if (key === this.lastFaultKey) return;
    this.lastFaultKey = key;
    for (const l of [...this.listeners]) {
      try {
        l();
      } catch (e) {
        this.warn('listener', `a state listener threw: ${(e as Error).message}`);
      }
    }
  }

  /** One warning per cause per minute of the clock, with the count of those held back. */
  private warn(key: string, message: string): void {
    const log = this.o.log;
    if (!log) return;
    const now = this.o.clock.nowMs();
    const w = this.warnedAt.get(key);
    if (w && now - w.atMs < WARN_INTERVAL_MS) {
      w.suppressed++;
      return;
    }
    if (this.warnedAt.size > 500) this.warnedAt.clear();
    this.warnedAt.set(key, { atMs: now, suppressed: 0 });
    try {
      log('warn', w && w.suppressed > 0 ? `${message} (${w.suppressed} more like it not logged)` : message);
    } catch {
      // a failing logger must not take the link down
    }
  }
}
