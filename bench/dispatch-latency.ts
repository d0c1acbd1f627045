/**
 * Dispatch published → setpoint written, measured from outside the wallbox (issue 14, Figures):
 * - the inverter is NOT this project's simulator: bench/pymodbus-inverter.py (pymodbus, Debian
 *   python3-pymodbus) serving SunSpec models 1/701/702/704 on 127.0.0.1, printing the time each 704 WSet
 *   write reached it;
 * - the aggregator is an mqtt.js client publishing dispatches to Mosquitto on a free loopback port;
 * - the wallbox is the real daemon (`wallbox run`, a separate process) with the SunSpec driver;
 * - in the same run, against the same broker and inverter, a bare bridge (mqtt.js + modbus-serial, below,
 *   ~40 lines) that writes WSet the moment a dispatch arrives: the floor any design pays for MQTT + Modbus.
 * Each dispatch supersedes the previous one with another power, so every dispatch changes the setpoint.
 * Goal: the wallbox's p99 within 2× the bridge's.
 *
 * Usage: tsx bench/dispatch-latency.ts [--samples N] [--json]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import * as modbusSerial from 'modbus-serial';
import type { ModbusRTU } from 'modbus-serial/ModbusRTU.js';
import mqtt, { type MqttClient } from 'mqtt';
import { brokerProtocolVersion, freePort, startBroker, type TestBroker } from '../test/helpers/broker.ts';
import { fmt, summarize, runIfMain } from './stats.ts';

const ROOT = new URL('..', import.meta.url).pathname;
const CLI = join(ROOT, 'src/cli.ts');
const ModbusClient = (modbusSerial as unknown as { default: typeof ModbusRTU }).default;

/**
 * Epoch milliseconds with sub-millisecond resolution, on the system clock the Python side stamps with
 * (time.time_ns()): performance.timeOrigin can sit milliseconds away from it, so the offset is measured.
 */
const clockOffsetMs = (() => {
  let best = Infinity;
  let offset = 0;
  for (let i = 0; i < 2000; i++) {
    const a = performance.now();
    const wall = Date.now();
    const b = performance.now();
    if (b - a < best) {
      best = b - a;
      // Date.now() truncates to the millisecond: on average it reads 0.5 ms early
      offset = wall + 0.5 - (performance.timeOrigin + (a + b) / 2);
    }
  }
  return offset;
})();
export const epochMs = (): number => performance.timeOrigin + performance.now() + clockOffsetMs;

/** A device that reports each WSet it takes: when (epoch ms) and the value (W, 704 sign: + = out of the car). */
export interface WsetDevice {
  port: number;
  writes: { atMs: number; wsetW: number }[];
  stop(): Promise<void>;
}

export async function startPymodbusInverter(): Promise<WsetDevice & { wsetAddress: number }> {
  const port = await freePort();
  const py = spawn('/usr/bin/python3', [join(ROOT, 'bench/pymodbus-inverter.py'), '--port', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const writes: { atMs: number; wsetW: number }[] = [];
  let err = '';
  py.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  let buf = '';
  let ready: () => void = () => undefined;
  const up = new Promise<void>((r) => (ready = r));
  py.stdout!.on('data', (b: Buffer) => {
    buf += b.toString();
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const [kind, a, v] = buf.slice(0, i).split(' ');
      buf = buf.slice(i + 1);
      if (kind === 'READY') ready();
      if (kind === 'WSET') writes.push({ atMs: Number(BigInt(a) / 1000n) / 1000, wsetW: Number(v) });
    }
  });
  const exited = new Promise<void>((r) => py.on('exit', () => r()));
  await Promise.race([up, exited.then(() => Promise.reject(new Error(`pymodbus inverter exited: ${err.trim().split('\n').slice(-3).join(' | ')}`)))]);
  // 704 at 40277 on this map (1 at 40002 L 66, 701 at 40070 L 153, 702 at 40225 L 50); WSet at offset 24
  return {
    port,
    writes,
    wsetAddress: 40277 + 24,
    async stop() {
      py.kill('SIGTERM');
      await exited;
    },
  };
}

/** The wallbox daemon as a separate process, with the SunSpec driver on `modbusPort`. */
export async function startWallbox(o: { dir: string; broker: TestBroker; modbusPort: number; deviceId: string; tickS?: number; timeoutMs?: number; portCallTimeoutMs?: number }): Promise<{ stop(): Promise<void>; log: string[] }> {
  const configPath = join(o.dir, 'local.json');
  writeFileSync(configPath, JSON.stringify({
    deviceId: o.deviceId,
    inverter: { driver: 'sunspec', modbus: { host: '127.0.0.1', port: o.modbusPort, unitId: 1 }, reversionS: 60, timeoutMs: o.timeoutMs ?? 1000 },
    vehicleLink: { driver: 'sim' },
    gpio: { driver: 'sim' },
    uplink: { url: o.broker.url },
    control: { tickS: o.tickS ?? 1, ...(o.portCallTimeoutMs ? { portCallTimeoutMs: o.portCallTimeoutMs } : {}) },
    storage: { path: join(o.dir, 'wallbox.db') },
    vehicle: { v2gEnabled: true }, // the built-in default is off until the homeowner turns it on
    simulation: { vehicle: { socPct: 95, capacityWh: 200_000 }, serveInverter: false },
  }));
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', CLI, 'run', '--config', configPath], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const log: string[] = [];
  let onReady: () => void = () => undefined;
  const ready = new Promise<void>((r) => (onReady = r));
  const collect = (b: Buffer): void => {
    for (const l of b.toString().split('\n')) {
      if (l) log.push(l);
      if (l.includes('uplink: connected')) onReady();
    }
  };
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  const exited = new Promise<void>((r) => child.on('exit', () => r()));
  await Promise.race([ready, exited.then(() => Promise.reject(new Error(`wallbox exited: ${log.slice(-5).join(' | ')}`)))]);
  return {
    log,
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/**
 * The bare bridge: a dispatch arrives, WSetEna + WSetMod + WSet go out in one FC 16. Nothing else: no
 * validation, no limits, no readings, no ledger. The floor for MQTT in, Modbus out.
 */
export async function startBareBridge(brokerUrl: string, topic: string, modbusPort: number, wsetAddress: number): Promise<{ stop(): Promise<void> }> {
  const mb = new ModbusClient();
  await mb.connectTCP('127.0.0.1', { port: modbusPort });
  mb.setID(1);
  mb.setTimeout(1000);
  const sub = await mqtt.connectAsync(brokerUrl, { clientId: 'bare-bridge', protocolVersion: brokerProtocolVersion() });
  sub.on('message', (_t, body) => {
    const { powerW } = JSON.parse(body.toString()) as { powerW: number };
    const wset = -powerW; // 704 WSet: + = generating (out of the car)
    const v = wset >>> 0;
    void mb.writeRegisters(wsetAddress - 2, [1, 1, v >>> 16, v & 0xffff]).catch(() => undefined); // WSetEna, WSetMod, WSet
  });
  await sub.subscribeAsync(topic, { qos: 1 });
  return {
    async stop() {
      await sub.endAsync();
      await new Promise<void>((r) => mb.close(() => r()));
    },
  };
}

/**
 * Publish dispatches, alternating power, and time each from just before the publish to the first WSet
 * write after it that carries a new value.
 */
export async function measure(o: { agg: MqttClient; topic: string; device: WsetDevice; samples: number; gapMs: () => number; idPrefix: string; timeoutMs?: number; onSample?: (i: number, lagMs: number) => void }): Promise<number[]> {
  const lags: number[] = [];
  for (let i = 0; i < o.samples; i++) {
    const before = o.device.writes.at(-1)?.wsetW;
    const powerW = before === 4000 ? -5000 : -4000;
    const from = o.device.writes.length;
    const body = JSON.stringify({ id: `${o.idPrefix}-${i}`, powerW, durationS: 3600 });
    const t0 = epochMs();
    await o.agg.publishAsync(o.topic, body, { qos: 1 });
    const limit = performance.now() + (o.timeoutMs ?? 10_000);
    let hit: { atMs: number } | undefined;
    while (!hit && performance.now() < limit) {
      hit = o.device.writes.slice(from).find((w) => w.atMs >= t0 && w.wsetW !== before);
      if (!hit) await new Promise((r) => setTimeout(r, 1));
    }
    if (!hit) throw new Error(`dispatch ${i} (${powerW} W) published at ${t0.toFixed(1)}: no new WSet within ${o.timeoutMs ?? 10_000} ms (device writes: ${JSON.stringify(o.device.writes.slice(-4))})`);
    lags.push(hit.atMs - t0);
    o.onSample?.(i, hit.atMs - t0);
    await new Promise((r) => setTimeout(r, o.gapMs()));
  }
  return lags;
}

export interface DispatchLatencyFigures {
  broker: string;
  samples: number;
  wallbox: { medianMs: number; p99Ms: number; maxMs: number };
  bridge: { medianMs: number; p99Ms: number; maxMs: number };
  /** wallbox p99 / bridge p99; goal <= 2. */
  p99Ratio: number;
}

export async function main(argv: string[] = process.argv.slice(2)): Promise<DispatchLatencyFigures> {
  const at = argv.indexOf('--samples');
  const samples = at >= 0 ? Number(argv[at + 1]) : 300;
  const json = argv.includes('--json');
  const dir = mkdtempSync(join(tmpdir(), 'wallbox-dispatch-lat-'));
  const broker = await startBroker();
  const inverter = await startPymodbusInverter();
  const deviceId = 'benchlat';
  const topic = `wallbox/${deviceId}/dispatch`;
  const agg = await mqtt.connectAsync(broker.url, { clientId: 'aggregator', protocolVersion: brokerProtocolVersion() });
  // the gap between dispatches is random so they do not lock onto the tick
  const gapMs = () => 150 + Math.random() * 250;
  try {
    const wb = await startWallbox({ dir, broker, modbusPort: inverter.port, deviceId });
    let wallbox: number[];
    try {
      await new Promise((r) => setTimeout(r, 2000)); // open, first ticks, controls armed
      await measure({ agg, topic, device: inverter, samples: 3, gapMs, idPrefix: 'warm' });
      wallbox = await measure({ agg, topic, device: inverter, samples, gapMs, idPrefix: 'wb' });
    } catch (e) {
      console.error(`wallbox log (last lines):\n${wb.log.slice(-15).join('\n')}`);
      throw e;
    } finally {
      await wb.stop();
    }
    const bridge = await startBareBridge(broker.url, topic, inverter.port, inverter.wsetAddress);
    let bare: number[];
    try {
      await measure({ agg, topic, device: inverter, samples: 3, gapMs, idPrefix: 'bwarm' });
      bare = await measure({ agg, topic, device: inverter, samples, gapMs, idPrefix: 'br' });
    } finally {
      await bridge.stop();
    }
    const w = summarize(wallbox);
    const b = summarize(bare);
    const f: DispatchLatencyFigures = {
      broker: broker.kind,
      samples,
      wallbox: { medianMs: w.median, p99Ms: w.p99, maxMs: w.max },
      bridge: { medianMs: b.median, p99Ms: b.p99, maxMs: b.max },
      p99Ratio: w.p99 / b.p99,
    };
    if (json) console.log(JSON.stringify(f));
    else {
      console.log(`dispatch published -> WSet written at a pymodbus SunSpec inverter, ${samples} dispatches each, ${broker.kind} on loopback, tick 1 s:`);
      console.log(`  wallbox run (SunSpec driver): p50 ${fmt(f.wallbox.medianMs)} ms, p99 ${fmt(f.wallbox.p99Ms)} ms, max ${fmt(f.wallbox.maxMs)} ms`);
      console.log(`  bare mqtt.js + modbus-serial bridge: p50 ${fmt(f.bridge.medianMs)} ms, p99 ${fmt(f.bridge.p99Ms)} ms, max ${fmt(f.bridge.maxMs)} ms`);
      console.log(`  p99 ratio ${fmt(f.p99Ratio, 1)}x (goal <= 2x), p50 ratio ${fmt(w.median / b.median, 1)}x`);
    }
    return f;
  } finally {
    await agg.endAsync();
    await inverter.stop();
    await broker.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

runIfMain(import.meta.url, main);
