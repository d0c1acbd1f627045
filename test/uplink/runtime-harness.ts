/**
 * The whole device for end-to-end uplink tests: the real Runtime on simulated hardware under a virtual
 * clock, the SQLite store, the uplink to a real broker, and an aggregator stand-in. Network timers run in
 * real time; the device's time moves only when the test steps the virtual clock, so a one-minute
 * dispatch takes milliseconds and no assertion depends on wall-clock time.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VirtualClock } from '../../hal/sim/virtual-clock.ts';
import { SimSite } from '../../hal/sim/site.ts';
import type { InverterPort } from '../../hal/ports.ts';
import { loadConfig } from '../../src/config/load.ts';
import { Runtime } from '../../src/runtime.ts';
import { openStore, type Store } from '../../src/store/index.ts';
import { createUplink, type InvalidDispatch, type Uplink } from '../../src/uplink/client.ts';
import type { DispatchResponse } from '../../src/control/types.ts';
import { connectAggregator, quietLog, waitFor, type Aggregator } from './helpers.ts';

export const RATED_W = 11_000;

export interface Device {
  clock: VirtualClock;
  site: SimSite;
  runtime: Runtime;
  store: Store;
  uplink: Uplink;
  /** Every setpoint the runtime handed to the inverter port, W. */
  setpoints: number[];
  responses: DispatchResponse[];
  invalid: InvalidDispatch[];
  agg: Aggregator;
  root: string;
  /** Advance device time in 1 s ticks, letting each tick finish. */
  step(seconds: number): Promise<void>;
  /** Responses for `id` seen by the aggregator on the device's response topic. */
  answers(id: string): Record<string, unknown>[];
  waitStatus(id: string, status: string): Promise<Record<string, unknown>>;
  close(): Promise<void>;
}

export interface DeviceOptions {
  url: string;
  deviceId: string;
  groups?: string[];
  uplink?: Record<string, unknown>;
  socPct?: number;
  /** Aggregator session: persistent so messages sent while it reconnects after a broker restart wait for it. */
  persistentAggregator?: boolean;
  invalidAnswersPerS?: number;
  invalidAnswersBurst?: number;
}

export async function startDevice(o: DeviceOptions): Promise<Device> {
  const dir = mkdtempSync(join(tmpdir(), 'wallbox-e2e-'));
  const clock = new VirtualClock(Math.floor(Date.now() / 1000) * 1000);
  const site = new SimSite({
    clock, vehicle: { capacityWh: 60000, socPct: o.socPct ?? 85, maxChargeW: RATED_W, maxDischargeW: RATED_W },
    inverter: { ratedW: RATED_W, efficiency: 0.95 }, houseLoadW: 500, sheddableLoadsW: [],
  });
  const config = loadConfig(null, {
    deviceId: o.deviceId, timezone: 'UTC', vehicle: { departureTime: null },
    uplink: { url: o.url, prefix: 'wallbox', groups: o.groups ?? [], stateIntervalS: 10, ...(o.uplink ?? {}) },
    storage: { path: join(dir, 'w.db') },
  });
  const store = openStore(join(dir, 'w.db'), { timezone: 'UTC' });
  const ports = site.ports();
  const setpoints: number[] = [];
  const inner = ports.inverter;
  const inverter: InverterPort = Object.assign(Object.create(Object.getPrototypeOf(inner)), inner, {
    setPowerW: (w: number) => {
      setpoints.push(w);
      return inner.setPowerW(w);
    },
    state: () => inner.state(),
    refresh: () => inner.refresh(),
  });
  const responses: DispatchResponse[] = [];
  const invalid: InvalidDispatch[] = [];
  const root = `wallbox/${o.deviceId}`;
  const agg = await connectAggregator(o.url, [`${root}/dispatch/response`, `${root}/ledger`], o.persistentAggregator
    ? { clean: false, clientId: `agg-${o.deviceId}`, properties: { sessionExpiryInterval: 600 } }
    : {});
  let runtime: Runtime | undefined;
  const uplink = createUplink({
    config, outbox: store.outbox, clock, log: quietLog, version: 'test',
    reconnectMinMs: 100, reconnectMaxMs: 1000,
    invalidAnswersPerS: o.invalidAnswersPerS, invalidAnswersBurst: o.invalidAnswersBurst,
    onCommand: (c) => runtime?.submit(c),
    onInvalid: (i) => invalid.push(i),
  });
  runtime = new Runtime({ ports: { ...ports, inverter }, config, store, uplink, onResponse: (r) => responses.push(r), version: 'test' });
  site.startPhysics(1000);
  await runtime.start();
  await uplink.start();
  await waitFor(() => uplink.connected(), 'device connected');
  const rt = runtime;

  const answers = (id: string) => agg.on(`${root}/dispatch/response`).map((r) => r.json!).filter((j) => j.id === id);
  return {
    clock, site, runtime: rt, store, uplink, setpoints, responses, invalid, agg, root,
    step: async (seconds: number) => {
      for (let i = 0; i < seconds; i++) {
        clock.advance(1000);
        await rt.settled();
      }
    },
    answers,
    waitStatus: async (id: string, status: string) => {
      await waitFor(() => answers(id).some((a) => a.status === status), `${id} ${status}`);
      return answers(id).find((a) => a.status === status)!;
    },
    close: async () => {
      await uplink.stop();
      await rt.stop();
      site.stopPhysics();
      store.close();
      await agg.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Wait until the device's dispatch subscription is live: the device subscribes right after CONNACK, and
 * a message published before that is not delivered. Probes with cancels of an unknown id.
 */
export async function untilSubscribed(d: Device): Promise<void> {
  const taken = () => d.uplink.stats().commands;
  const before = taken();
  for (let i = 0; i < 50 && taken() === before; i++) {
    await d.agg.publish(`${d.root}/dispatch`, { id: `probe-${i}`, cancel: true });
    await waitFor(() => taken() > before, 'probe taken', 200).catch(() => {});
  }
  if (taken() === before) throw new Error('device never took a command');
}
