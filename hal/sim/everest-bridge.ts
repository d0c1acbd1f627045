/**
 * Simulated ISO 15118 bridge: publishes a SimCar as EVerest's API module does, on a real MQTT broker,
 * so the EVerest vehicle link is exercised end to end without a car or an EVerest install.
 *
 * Shapes follow EVerest's types (protocols digest §4.3): var/session_info, var/limits and
 * var/hardware_capabilities every period; var/ev_info only when its content changed, as EvseManager
 * does. cmd/set_limit_watts is recorded, not applied: the simulated site drives the car's power.
 */
import { connect, type MqttClient } from 'mqtt';
import type { Clock } from '../ports.ts';
import type { SimCar } from './car.ts';

export interface SimEverestHardware {
  maxImportA: number;
  minImportA: number;
  maxExportA: number;
  minExportA: number;
  importPhases: number;
  exportPhases: number;
}

export interface SimEverestBridgeOptions {
  url: string;
  evseId: string;
  car: SimCar;
  clock: Clock;
  /** Period of session_info, limits and hardware_capabilities, ms of the clock (EVerest: 1000). */
  periodMs?: number;
  /** Send no `soc` (an AC ISO 15118-2 session). */
  omitSoc?: boolean;
  /** Further ev_info fields to leave out (e.g. `battery_capacity`, which AC sessions lack too). */
  omitFields?: string[];
  /** Send the ISO 15118-20 style fields (minimum_soc, target_soc, maximum_discharge_power); default true. */
  iso20Fields?: boolean;
  hardware?: Partial<SimEverestHardware>;
  /** var/limits.max_current, A (default: the import capability). */
  maxCurrentA?: number;
  topicPrefix?: string;
  connectTimeoutMs?: number;
}

export interface SimEverestBridge {
  /** Leave `soc` out of ev_info from the next publication on. */
  omitSoc: boolean;
  /** Leave these ev_info fields out from the next publication on. */
  omitFields: string[];
  /** False = publish nothing (a stalled bridge); the broker connection stays up. */
  publishing: boolean;
  /** Every finite number received on cmd/set_limit_watts, in order. */
  readonly receivedLimitsW: number[];
  /** Payloads on cmd/set_limit_watts that were not a number. */
  readonly rejectedLimits: string[];
  /** Messages published so far, by topic suffix (`var/ev_info` ...). */
  readonly published: Record<string, number>;
  unplug(): void;
  plugIn(): void;
  /** Publish one period's worth now (ev_info only if changed, unless `force`). */
  publishNow(force?: boolean): Promise<void>;
  /** Publish any payload on a topic under everest_api/<evse>/ (for garbage tests). */
  publishRaw(suffix: string, payload: string | Buffer): Promise<void>;
  stop(): Promise<void>;
}

const round = (v: number, digits: number) => Math.round(v * 10 ** digits) / 10 ** digits;

export async function startSimEverestBridge(o: SimEverestBridgeOptions): Promise<SimEverestBridge> {
  const { car, clock } = o;
  const periodMs = o.periodMs ?? 1000;
  const root = `${o.topicPrefix ?? 'everest_api'}/${o.evseId}`;
  const hw: SimEverestHardware = {
    maxImportA: 32, minImportA: 6, maxExportA: 16, minExportA: 6, importPhases: 3, exportPhases: 3, ...o.hardware,
  };
  const iso20 = o.iso20Fields ?? true;
  const client: MqttClient = connect(o.url, {
    clientId: `sim-everest-${o.evseId}-${Math.random().toString(16).slice(2, 8)}`,
    protocolVersion: 4,
    reconnectPeriod: 500,
    connectTimeout: o.connectTimeoutMs ?? 5000,
  });
  client.on('error', () => {});

  let stopped = false;
  let timer: unknown;
  let lastEv = '';
  let wasConnected = car.connected;
  let sessionBase = { chargedWh: car.chargedWh, dischargedWh: car.dischargedWh };
  let lastFlow = { atMs: clock.nowMs(), chargedWh: car.chargedWh, dischargedWh: car.dischargedWh, totalW: 0 };

  const bridge: SimEverestBridge = {
    omitSoc: o.omitSoc ?? false,
    omitFields: o.omitFields ?? [],
    publishing: true,
    receivedLimitsW: [],
    rejectedLimits: [],
    published: {},
    unplug: () => {
      car.connected = false;
    },
    plugIn: () => {
      car.connected = true;
    },
    publishNow: (force = false) => publishRound(force),
    publishRaw: (suffix, payload) => publish(suffix, payload),
    stop: async () => {
      if (stopped) return;
      stopped = true;
      if (timer !== undefined) clock.clearTimer(timer);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 2000);
        client.end(true, {}, () => {
          clearTimeout(t);
          resolve();
        });
      });
    },
  };

  function publish(suffix: string, payload: string | Buffer): Promise<void> {
    bridge.published[suffix] = (bridge.published[suffix] ?? 0) + 1;
    return new Promise((resolve) => {
      if (!client.connected) return resolve();
      client.publish(`${root}/${suffix}`, payload, { qos: 0 }, () => resolve());
    });
  }

  function sessionState(): string {
    if (!car.connected) return 'Unplugged';
    return lastFlow.totalW !== 0 ? 'Charging' : 'ChargingPausedEVSE';
  }

  function evInfo(): Record<string, unknown> {
    const ev: Record<string, unknown> = {
      evcc_id: '02:00:5e:10:00:01',
      battery_capacity: car.capacityWh,
      maximum_power_limit: Math.round(car.chargeLimitW()),
    };
    if (!bridge.omitSoc) ev.soc = round(car.socPct, 2);
    if (car.departureAtMs !== undefined) ev.departure_time = new Date(car.departureAtMs).toISOString();
    if (car.targetSocPct !== undefined)
      ev.remaining_energy_needed = Math.max(0, Math.round(((car.targetSocPct - car.socPct) / 100) * car.capacityWh));
    if (iso20) {
      if (car.minSocPct !== undefined) ev.minimum_soc = car.minSocPct;
      if (car.targetSocPct !== undefined) ev.target_soc = car.targetSocPct;
      if (car.bidirectional) ev.maximum_discharge_power = Math.round(car.dischargeLimitW());
    }
    for (const f of bridge.omitFields) delete ev[f];
    return ev;
  }

  async function publishRound(force: boolean): Promise<void> {
    if (stopped || !bridge.publishing) return;
    const now = clock.nowMs();
    if (car.connected && !wasConnected) sessionBase = { chargedWh: car.chargedWh, dischargedWh: car.dischargedWh };
    if (!car.connected && wasConnected) lastEv = '';
    wasConnected = car.connected;
    const dtS = (now - lastFlow.atMs) / 1000;
    if (dtS > 0) {
      const netWh = car.chargedWh - lastFlow.chargedWh - (car.dischargedWh - lastFlow.dischargedWh);
      lastFlow = { atMs: now, chargedWh: car.chargedWh, dischargedWh: car.dischargedWh, totalW: Math.round((netWh * 3600) / dtS) };
    }
    const jobs: Promise<void>[] = [];
    jobs.push(publish('var/limits', JSON.stringify({ uuid: o.evseId, max_current: o.maxCurrentA ?? hw.maxImportA, nr_of_phases_available: hw.importPhases })));
    jobs.push(publish('var/hardware_capabilities', JSON.stringify({
      max_current_A_import: hw.maxImportA, min_current_A_import: hw.minImportA, max_phase_count_import: hw.importPhases, min_phase_count_import: 1,
      max_current_A_export: hw.maxExportA, min_current_A_export: hw.minExportA, max_phase_count_export: hw.exportPhases, min_phase_count_export: 1,
      supports_changing_phases_during_charging: false,
    })));
    if (car.connected) {
      const ev = JSON.stringify(evInfo());
      if (force || ev !== lastEv) {
        lastEv = ev;
        jobs.push(publish('var/ev_info', ev));
      }
    }
    const charged = car.connected ? car.chargedWh - sessionBase.chargedWh : 0;
    const discharged = car.connected ? car.dischargedWh - sessionBase.dischargedWh : 0;
    jobs.push(publish('var/session_info', JSON.stringify({
      state: sessionState(),
      charged_energy_wh: round(charged, 3),
      discharged_energy_wh: round(discharged, 3),
      latest_total_w: car.connected ? lastFlow.totalW : 0,
      charging_duration_s: 0,
      datetime: new Date(now).toISOString(),
      active_errors: [],
      active_permanent_faults: [],
    })));
    await Promise.all(jobs);
  }

  function schedule(): void {
    if (stopped) return;
    timer = clock.setTimer(() => {
      void publishRound(false);
      schedule();
    }, periodMs);
  }

  client.on('message', (topic, payload) => {
    if (topic !== `${root}/cmd/set_limit_watts`) return;
    const text = payload.toString('utf8');
    const v = Number(text.trim());
    if (text.trim() !== '' && Number.isFinite(v)) bridge.receivedLimitsW.push(v);
    else bridge.rejectedLimits.push(text.slice(0, 100));
  });
  client.on('connect', () => {
    client.subscribe(`${root}/cmd/set_limit_watts`, { qos: 0 });
    // a reconnecting subscriber would otherwise wait for the car's next change to learn its state
    lastEv = '';
  });

  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => {
      client.end(true);
      reject(new Error(`simulated EVerest bridge: no broker at ${o.url}`));
    }, o.connectTimeoutMs ?? 5000);
    client.once('connect', () => {
      clearTimeout(t);
      client.subscribe(`${root}/cmd/set_limit_watts`, { qos: 0 }, () => resolve());
    });
  });
  await publishRound(true);
  schedule();
  return bridge;
}
