/**
 * Uplink benchmarks, through a real Mosquitto on loopback (the embedded broker when Mosquitto is absent;
 * the output says which), with the real runtime, simulated hardware and a SQLite store:
 * - dispatch latency: aggregator publish → setpoint handed to the inverter port → `accepted` back at the
 *   aggregator; median and p99 over 1,000 dispatches (each one supersedes the previous, so every
 *   dispatch also settles one: a durable ledger transaction inside the measured path). Target p99 < 10 ms;
 * - outbox drain rate after an outage: 10,000 ledger messages queued while the broker is down, then the
 *   time from reconnect to an empty outbox;
 * - idle CPU: a connected device with nothing to send, main-thread CPU per minute (the outbox used to be
 *   polled with a freshly prepared query every second);
 * - a flood of 5,000 valid overlapping dispatches in 2 s: the longest the event loop was blocked (the
 *   worst delay of a tick, which runs from a timer on the same loop), with and without the live-dispatch bound at intake (target: no tick delayed by more
 *   than one tick period, 1 s);
 * - bytes written to SQLite per hour of normal operation (state every 10 s, flex on change, events,
 *   every QoS 1 message acknowledged), from /proc/self/io write_bytes with writeback every 30 s of
 *   simulated time, as in the store benchmark.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { VirtualClock } from '../hal/sim/virtual-clock.ts';
import { SimSite } from '../hal/sim/site.ts';
import type { InverterPort } from '../hal/ports.ts';
import { loadConfig } from '../src/config/load.ts';
import { Runtime } from '../src/runtime.ts';
import { openStore, type Store } from '../src/store/index.ts';
import { createUplink, type Uplink } from '../src/uplink/client.ts';
import { freePort, startBroker, type TestBroker } from '../test/helpers/broker.ts';
import { connectAggregator, type Aggregator } from '../test/uplink/helpers.ts';
import { fmt, fsyncDbFiles, processWriteBytes, summarize } from './stats.ts';

const quiet = { info: () => {}, warn: () => {}, error: () => {} };

async function until(cond: () => boolean, what: string, deadlineMs = 60_000): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

interface Rig {
  clock: VirtualClock;
  site: SimSite;
  runtime: Runtime;
  store: Store;
  uplink: Uplink;
  agg: Aggregator;
  root: string;
  onSetpoint?: (w: number) => void;
  onCommand?: () => void;
  close(): Promise<void>;
}

async function rig(url: string, deviceId: string, dir: string, subscribe: string[], extra: { maxLiveDispatches?: number } = {}): Promise<Rig> {
  const clock = new VirtualClock(Math.floor(Date.now() / 1000) * 1000);
  const site = new SimSite({
    clock, vehicle: { capacityWh: 60000, socPct: 90, maxChargeW: 11000, maxDischargeW: 11000 },
    inverter: { ratedW: 11000, efficiency: 0.95 }, houseLoadW: 500, sheddableLoadsW: [],
  });
  const config = loadConfig(null, { deviceId, timezone: 'UTC', vehicle: { departureTime: null }, uplink: { url, groups: [] }, storage: { path: join(dir, `${deviceId}.db`) } });
  const store = openStore(join(dir, `${deviceId}.db`), { timezone: 'UTC' });
  const ports = site.ports();
  const inner = ports.inverter;
  const r = {} as Rig;
  const inverter: InverterPort = Object.assign(Object.create(Object.getPrototypeOf(inner)), inner, {
    setPowerW: (w: number) => {
      r.onSetpoint?.(w);
      return inner.setPowerW(w);
    },
    state: () => inner.state(),
    refresh: () => inner.refresh(),
  });
  const root = `wallbox/${deviceId}`;
  const agg = await connectAggregator(url, subscribe.map((t) => `${root}/${t}`));
  (agg.client.stream as unknown as { setNoDelay(b: boolean): void }).setNoDelay(true);
  let runtime: Runtime | undefined;
  const live = () => (runtime?.memorySnapshot().dispatches.filter((d) => d.status === 'accepted' || d.status === 'active' || d.status === 'curtailed').length ?? 0);
  const uplink = createUplink({ config, outbox: store.outbox, clock, log: quiet, version: 'bench', reconnectMinMs: 50, reconnectMaxMs: 200, onCommand: (c) => {
    r.onCommand?.();
    runtime?.submit(c);
  }, ...(extra.maxLiveDispatches ? { liveDispatches: live, maxLiveDispatches: extra.maxLiveDispatches } : {}) } as Parameters<typeof createUplink>[0]);
  runtime = new Runtime({ ports: { ...ports, inverter }, config, store, uplink, version: 'bench' });
  site.startPhysics(1000);
  await runtime.start();
  await uplink.start();
  await until(() => uplink.connected(), 'device connected');
  const rt = runtime;
  Object.assign(r, {
    clock, site, runtime: rt, store, uplink, agg, root,
    close: async () => {
      await uplink.stop();
      await rt.stop();
      site.stopPhysics();
      store.close();
      await agg.close();
    },
  });
  return r;
}

async function latency(broker: TestBroker, dir: string, n: number, cancelEach: boolean): Promise<void> {
  const r = await rig(broker.url, `bench-latency-${cancelEach ? 'c' : 's'}`, dir, ['dispatch/response']);
  try {
    // wait for the subscription with a probe
    for (let i = 0; i < 100 && r.uplink.stats().commands === 0; i++) {
      await r.agg.publish(`${r.root}/dispatch`, { id: `probe-${i}`, cancel: true });
      await new Promise((res) => setTimeout(res, 20));
    }
    const toSetpoint: number[] = [];
    const toCommand: number[] = [];
    const roundTrip: number[] = [];
    const accepted = new Map<string, number>();
    const cancelled = new Set<string>();
    r.agg.client.on('message', (_t, payload) => {
      const j = JSON.parse(payload.toString()) as { id: string; status: string };
      if (j.status === 'accepted') accepted.set(j.id, performance.now());
      if (j.status === 'cancelled') cancelled.add(j.id);
    });
    for (let i = 0; i < n + 50; i++) {
      const id = `lat-${i}`;
      const powerW = -(1000 + (i % 2) * 500);
      let setAt = 0;
      let cmdAt = 0;
      r.onCommand = () => {
        if (cmdAt === 0) cmdAt = performance.now();
      };
      r.onSetpoint = (w) => {
        if (w === powerW && setAt === 0) setAt = performance.now();
      };
      const t0 = performance.now();
      r.agg.client.publish(`${r.root}/dispatch`, JSON.stringify({ id, powerW, durationS: 3600 }), { qos: 1 });
      await until(() => accepted.has(id) && setAt > 0, `accepted ${id}`, 10_000);
      if (cancelEach) {
        // outside the measurement: end it, so the next one starts from an idle device
        const before = cancelled.size;
        r.agg.client.publish(`${r.root}/dispatch`, JSON.stringify({ id, cancel: true }), { qos: 1 });
        await until(() => cancelled.size > before, `cancelled ${id}`, 10_000);
      }
      // the first 50 warm up the JIT, the connection and SQLite's page cache
      if (i >= 50) {
        toSetpoint.push(setAt - t0);
        toCommand.push(cmdAt - t0);
        roundTrip.push(accepted.get(id)! - t0);
      }
    }
    const c = summarize(toCommand);
    const a = summarize(toSetpoint);
    const b = summarize(roundTrip);
    const how = cancelEach ? 'each cancelled before the next' : 'each supersedes the previous one, whose settlement is in the measured path';
    console.log(`dispatch latency over ${n} dispatches (${broker.kind}, QoS 1, ${how}):`);
    console.log(`  publish -> command out of the uplink:     median ${fmt(c.median)} ms, p99 ${fmt(c.p99)} ms, max ${fmt(c.max)} ms`);
    console.log(`  publish -> setpoint at the inverter port: median ${fmt(a.median)} ms, p99 ${fmt(a.p99)} ms, max ${fmt(a.max)} ms`);
    console.log(`  publish -> accepted at the aggregator:    median ${fmt(b.median)} ms, p99 ${fmt(b.p99)} ms, max ${fmt(b.max)} ms (target p99 < 10 ms)`);
  } finally {
    await r.close();
  }
}

async function drain(dir: string, count: number): Promise<void> {
  const port = await freePort();
  const url = `mqtt://127.0.0.1:${port}`;
  const store = openStore(join(dir, 'drain.db'), { timezone: 'UTC', storage: { outboxMaxRows: count * 2 } });
  const uplink = createUplink({
    config: { deviceId: 'bench-drain', uplink: { url, prefix: 'wallbox', groups: [], stateIntervalS: 10 } },
    outbox: store.outbox, clock: { wallMs: () => Date.now() }, log: quiet, reconnectMinMs: 20, reconnectMaxMs: 50, onCommand: () => {},
  });
  // queued before the uplink starts: the broker is not there yet
  for (let i = 0; i < count; i += 100)
    uplink.publish(Array.from({ length: 100 }, (_, k) => ({ topic: 'ledger', payload: { id: `d${i + k}`, start: '2026-11-23T18:00:00Z', end: '2026-11-23T19:00:00Z', exportedWh: 7000.5, importedWh: 0 }, qos: 1 as const, retain: false, class: 'ledger' as const })));
  const broker = await startBroker({ port, extraConfig: ['max_queued_messages 1000000'] });
  const agg = await connectAggregator(url, ['wallbox/bench-drain/ledger']);
  await uplink.start();
  try {
    await until(() => uplink.connected(), 'drain connect');
    const t0 = performance.now();
    await until(() => uplink.stats().outboxRows === 0, 'outbox empty', 120_000);
    const s = (performance.now() - t0) / 1000;
    await until(() => agg.received.length >= count, 'aggregator received all', 60_000);
    console.log(`outbox drain after an outage (${broker.kind}): ${count} ledger messages in ${fmt(s, 2)} s = ${fmt(count / s, 0)} messages/s (in-flight window 20)`);
  } finally {
    await uplink.stop();
    store.close();
    await agg.close();
    await broker.stop();
  }
}



async function bytesPerHour(broker: TestBroker, dir: string): Promise<void> {
  const r = await rig(broker.url, 'bench-bytes', dir, []);
  const db = join(dir, 'bench-bytes.db');
  try {
    const hour = async (): Promise<void> => {
      for (let s = 0; s < 3600; s++) {
        r.clock.advance(1000);
        await r.runtime.settled();
        // acknowledgements arrive over the real socket; let them in
        if (s % 10 === 0) await until(() => r.uplink.stats().inFlight === 0, 'acks', 10_000);
        if (s % 30 === 0) fsyncDbFiles(db);
      }
      fsyncDbFiles(db);
    };
    await hour(); // warm-up: first use of pages
    const before = processWriteBytes();
    await hour();
    const after = processWriteBytes();
    if (before === undefined || after === undefined) console.log('bytes written per hour: /proc/self/io not available');
    else console.log(`bytes written to SQLite per hour of normal operation (runtime + uplink + store, idle car, state every 10 s, 30 s writeback): ${fmt((after - before) / 1024, 1)} KiB/h`);
  } finally {
    await r.close();
  }
}

/** A connected device doing nothing: main-thread CPU over `seconds` of real time. */
async function idleCpu(broker: TestBroker, dir: string, seconds: number): Promise<void> {
  const r = await rig(broker.url, 'bench-idle', dir, []);
  try {
    await new Promise((res) => setTimeout(res, 2000));
    let reads = 0;
    const pending = r.store.outbox.pending.bind(r.store.outbox);
    r.store.outbox.pending = (n: number) => {
      reads++;
      return pending(n);
    };
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await new Promise((res) => setTimeout(res, seconds * 1000));
    const c = process.cpuUsage(c0);
    const wallS = (performance.now() - t0) / 1000;
    console.log(`idle uplink (connected, nothing to send, runtime not ticking), ${fmt(wallS, 0)} s: CPU ${fmt(((c.user + c.system) / 1000 / wallS) * 60, 1)} ms per minute, outbox reads ${fmt((reads / wallS) * 60, 0)} per minute`);
  } finally {
    await r.close();
  }
}

/** 5,000 valid overlapping dispatches in 2 s while the runtime ticks once a second. */
async function flood(broker: TestBroker, dir: string, n: number, maxLiveDispatches?: number): Promise<void> {
  const r = await rig(broker.url, `bench-flood-${maxLiveDispatches ?? 'unbounded'}`, dir, ['dispatch/response'], { maxLiveDispatches });
  // the runtime's clock moves one tick period per real second
  const driver = setInterval(() => r.clock.advance(1000), 1000);
  const lag = monitorEventLoopDelay({ resolution: 10 });
  try {
    await new Promise((res) => setTimeout(res, 1500));
    lag.enable();
    const t0 = performance.now();
    const startAt = Date.now() + 3_600_000;
    for (let i = 0; i < n; i++) {
      // overlapping: each starts within the hour of the previous one
      r.agg.client.publish(`${r.root}/dispatch`, JSON.stringify({ id: `flood-${i}`, powerW: -1000 - (i % 7) * 100, durationS: 3600, start: new Date(startAt + i * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z') }), { qos: 1 });
      if (i % 250 === 249) await new Promise((res) => setTimeout(res, Math.max(0, t0 + ((i + 1) / n) * 2000 - performance.now())));
    }
    const sentMs = performance.now() - t0;
    await until(() => r.uplink.stats().commands + r.uplink.stats().invalid >= n, 'the flood taken in', 120_000);
    // a few more ticks to take in and answer what arrived
    await new Promise((res) => setTimeout(res, 3000));
    lag.disable();
    const bound = maxLiveDispatches ? `live-dispatch bound ${maxLiveDispatches}` : 'no live-dispatch bound';
    console.log(`flood of ${n} valid dispatches published in ${fmt(sentMs / 1000, 1)} s (${bound}): ${r.uplink.stats().commands} reached the core, ${r.uplink.stats().invalid} refused at intake`);
    // the runtime ticks from a timer on the same event loop: the longest block is the worst tick delay
    console.log(`  worst tick delay (longest event-loop block) ${fmt(lag.max / 1e6, 0)} ms, p99 ${fmt(lag.percentile(99) / 1e6, 0)} ms (target < 1000 ms, one tick period)`);
  } finally {
    clearInterval(driver);
    await r.close();
  }
}

export async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'wallbox-bench-uplink-'));
  // an aggregator that cares about latency turns Nagle off on its broker and its client (docs/mqtt.md);
  // the device's own socket has it off always
  const broker = await startBroker({ extraConfig: ['set_tcp_nodelay true'] });
  try {
    // BENCH_ONLY=idle,flood runs those parts alone
    const only = (process.env.BENCH_ONLY ?? '').split(',').filter(Boolean);
    const on = (name: string) => only.length === 0 || only.includes(name);
    const n = Number(process.env.BENCH_DISPATCHES ?? 1000);
    if (on('idle')) await idleCpu(broker, dir, Number(process.env.BENCH_IDLE_S ?? 30));
    if (on('flood')) {
      await flood(broker, dir, 5000);
      await flood(broker, dir, 5000, 100);
    }
    if (on('latency')) {
      await latency(broker, dir, n, true);
      await latency(broker, dir, n, false);
    }
    if (on('bytes')) await bytesPerHour(broker, dir);
  } finally {
    await broker.stop();
  }
  try {
    if ((process.env.BENCH_ONLY ?? '') === '' || (process.env.BENCH_ONLY ?? '').includes('drain')) await drain(dir, 10_000);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().then(
    () => process.exit(0),
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
}
