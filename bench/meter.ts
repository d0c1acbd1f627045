/**
 * Site meter figures.
 *
 * 1. Meter step → setpoint reduced: a house-load step that would trip a 25 A main fuse, with the car
 *    charging at 11 kW; the time from the step to the first setpoint at or below what the fuse leaves.
 *    - virtual time: the whole runtime on the virtual clock with the simulated site's meter (what the
 *      tick period makes of it: the step lands anywhere in a tick);
 *    - real time: the runtime on the system clock reading the simulated meter through the real SunSpec
 *      driver over Modbus TCP, the inverter in process.
 * 2. RS-485 bus time per tick with the inverter and the meter on one line: computed from the frames one
 *    tick puts on the wire (11 bits/char, 3.5-char gaps) at 9600 and 19200 baud, and measured over a
 *    socat pseudo-terminal pair (which moves bytes at once, whatever the baud rate: the figure is the
 *    drivers' and the serial stack's own time per tick, to which the line time adds).
 *
 * Usage: tsx bench/meter.ts [--steps N] [--real-steps N] [--ticks N] [--json]
 */
import { performance } from 'node:perf_hooks';
import { createRequire } from 'node:module';
import { VirtualClock } from '../hal/sim/virtual-clock.ts';
import { SimSite } from '../hal/sim/site.ts';
import { SimCar } from '../hal/sim/car.ts';
import { SimInverter } from '../hal/sim/inverter.ts';
import { systemClock } from '../hal/system-clock.ts';
import { createSimSunspecDevice } from '../hal/sim/sunspec-server.ts';
import { createSimMeterDevice, startSimModbusGateway, unitRouter } from '../hal/sim/meter-server.ts';
import { SunspecInverter } from '../hal/inverter/sunspec/driver.ts';
import { SunspecMeter } from '../hal/meter/sunspec/driver.ts';
import { ModbusBuses } from '../hal/modbus/bus.ts';
import { loadConfig } from '../src/config/load.ts';
import { Runtime } from '../src/runtime.ts';
import { freePort } from '../test/helpers/broker.ts';
import { rtuBusMs } from './sunspec.ts';
import { fmt, rssMiB, runIfMain, summarize } from './stats.ts';
import { ptyPair, rtuSkipReason } from '../test/helpers/pty.ts';

const V = 230;
const FUSE_A = 25;
const QUIET_W = 500;
const STEP_W = 8000;
/** What the fuse leaves the car after the step: (25 A − 8000 W / 690 V) × 690 V. */
const ALLOWED_W = (FUSE_A - STEP_W / (3 * V)) * 3 * V;

function config(tickS = 1) {
  return loadConfig(null, {
    timezone: 'UTC',
    vehicle: { departureTime: null, chargeStrategy: 'immediate', targetSocPct: 100 },
    site: { fuseA: FUSE_A, gridImportLimitW: null },
    control: { tickS },
    uplink: { url: null },
  });
}

function newSite(clock: VirtualClock | typeof systemClock): SimSite {
  return new SimSite({ clock, vehicle: { capacityWh: 200_000, socPct: 10, maxChargeW: 11000, maxDischargeW: 11000 }, inverter: { ratedW: 11000, efficiency: 0.95 }, houseLoadW: QUIET_W });
}

/** Virtual time from each step to the cut, ms. Steps land at pseudo-random points of the tick. */
async function virtualSteps(n: number): Promise<number[]> {
  const clock = new VirtualClock(Date.UTC(2026, 5, 21, 10));
  const site = newSite(clock);
  site.startPhysics(50);
  const rt = new Runtime({ ports: site.ports(), config: config() });
  await rt.start();
  const advance = async (ms: number) => {
    const until = clock.nowMs() + ms;
    while (clock.nowMs() < until) {
      clock.advance(Math.min(10, until - clock.nowMs()));
      await rt.settled();
    }
  };
  const out: number[] = [];
  let seed = 12345;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let i = 0; i < n; i++) {
    site.setLoads({ houseLoadW: QUIET_W });
    await advance(4000 + Math.floor(rand() * 100) * 10);
    const stepAt = clock.nowMs();
    const seen = site.actuationCount;
    site.setLoads({ houseLoadW: STEP_W });
    let cutAt: number | undefined;
    for (let t = 0; t < 5000 && cutAt === undefined; t += 10) {
      await advance(10);
      const fresh = site.actuationCount - seen;
      const cut = fresh > 0 ? site.actuations.slice(-fresh).find((a) => a.what === 'setpoint' && (a.value as number) <= ALLOWED_W + 1) : undefined;
      if (cut) cutAt = cut.atMs;
    }
    if (cutAt === undefined) throw new Error(`step ${i}: no cut within 5 s`);
    out.push(cutAt - stepAt);
  }
  await rt.stop();
  site.stopPhysics();
  return out;
}

/** Real time from each step to the setpoint reaching the inverter, ms, with the meter read over Modbus TCP. */
async function realSteps(n: number): Promise<number[]> {
  const site = newSite(systemClock);
  site.startPhysics(100);
  const port = await freePort();
  const dev = createSimMeterDevice({ model: 203, unitId: 2, read: () => ({ gridPowerW: site.gridPowerW(), phaseCurrentsA: site.phaseCurrentsA(), importedWh: 1, exportedWh: 1 }) });
  const gw = await startSimModbusGateway({ port, devices: [dev] });
  const meter = new SunspecMeter({ link: { kind: 'tcp', host: '127.0.0.1', port, unitId: 2 }, base: null, invertSign: false, timeoutMs: 500, retries: 0, clock: systemClock });
  let stepAt: number | undefined;
  let resolveCut: ((ms: number) => void) | undefined;
  const prev = site.inverter.onCommand;
  site.inverter.onCommand = (what, value) => {
    prev?.(what, value);
    if (what === 'setpoint' && stepAt !== undefined && (value as number) <= ALLOWED_W + 1) {
      const ms = performance.now() - stepAt;
      stepAt = undefined;
      resolveCut?.(ms);
    }
  };
  const rt = new Runtime({ ports: { ...site.ports(systemClock), siteMeter: meter }, config: config() });
  await rt.start();
  const out: number[] = [];
  try {
    for (let i = 0; i < n; i++) {
      site.setLoads({ houseLoadW: QUIET_W });
      // back to full power, then a step at a point of the tick that drifts from step to step
      await new Promise((r) => setTimeout(r, 2500 + ((i * 137) % 1000)));
      const cut = new Promise<number>((resolve, reject) => {
        resolveCut = resolve;
        setTimeout(() => reject(new Error(`step ${i}: no cut within 5 s`)), 5000).unref();
      });
      stepAt = performance.now();
      site.setLoads({ houseLoadW: STEP_W });
      out.push(await cut);
    }
  } finally {
    await rt.stop();
    await meter.close();
    await gw.close();
    site.stopPhysics();
  }
  return out;
}

interface BusFigures {
  inverter: { reads: number; writes: number; registersRead: number; registersWritten: number };
  meter: { reads: number; writes: number; registersRead: number; registersWritten: number };
  computedMs: Record<9600 | 19200, { inverter: number; meter: number; both: number }>;
  measured?: Record<number, { median: number; p99: number }>;
  measuredSkip?: string;
}

/** The traffic one tick puts on the line (inverter refresh + a changed setpoint, meter poll), and its time. */
async function busTime(ticks: number): Promise<BusFigures> {
  // traffic per tick, counted over loopback TCP (the same frames go over RTU)
  const car = new SimCar({ capacityWh: 60000, socPct: 60, maxChargeW: 11000, maxDischargeW: 11000 });
  const simInv = new SimInverter({ ratedW: 11000, efficiency: 0.95 }, car, systemClock);
  const invDev = createSimSunspecDevice({ inverter: simInv, car, clock: systemClock });
  const meterDev = createSimMeterDevice({ model: 203, unitId: 2, read: () => ({ gridPowerW: 1234, phaseCurrentsA: [5, 5, 5], importedWh: 1, exportedWh: 1 }) });
  const port = await freePort();
  const gw = await startSimModbusGateway({ port, devices: [invDev, meterDev] });
  const buses = new ModbusBuses(systemClock);
  const tcp = { kind: 'tcp' as const, host: '127.0.0.1', port };
  const inverter = new SunspecInverter({ link: { ...tcp, unitId: 1 }, channel: buses.channel({ ...tcp, unitId: 1 }, { timeoutMs: 1000, retries: 0 }, 'inverter'), timeoutMs: 1000, retries: 0, reversionS: 60, efficiency: 0.95, clock: systemClock });
  const meterCh = buses.channel({ ...tcp, unitId: 2 }, { timeoutMs: 1000, retries: 0 }, 'meter');
  const meter = new SunspecMeter({ link: { ...tcp, unitId: 2 }, channel: meterCh, base: null, invertSign: false, timeoutMs: 1000, retries: 0, clock: systemClock });
  let inv0 = { reads: 0, writes: 0, registersRead: 0, registersWritten: 0 };
  let met0 = { ...inv0 };
  const n = 50;
  try {
    await inverter.open();
    await meter.open();
    inv0 = { ...inverter.busStats };
    met0 = { ...meterCh.stats };
    for (let i = 0; i < n; i++) {
      await inverter.refresh();
      await inverter.setPowerW(i % 2 ? 4000 : 3000);
      await meter.refresh();
    }
  } finally {
    await meter.close();
    await inverter.close();
    await gw.close();
    invDev.stop();
  }
  const per = (a: typeof inv0, b: typeof inv0) => ({ reads: (a.reads - b.reads) / n, writes: (a.writes - b.writes) / n, registersRead: (a.registersRead - b.registersRead) / n, registersWritten: (a.registersWritten - b.registersWritten) / n });
  const invPer = per(inverter.busStats, inv0);
  const metPer = per(meterCh.stats, met0);
  const both = { reads: invPer.reads + metPer.reads, writes: invPer.writes + metPer.writes, registersRead: invPer.registersRead + metPer.registersRead, registersWritten: invPer.registersWritten + metPer.registersWritten };
  const computedMs = {} as BusFigures['computedMs'];
  for (const baud of [9600, 19200] as const) computedMs[baud] = { inverter: rtuBusMs(invPer, baud).ms, meter: rtuBusMs(metPer, baud).ms, both: rtuBusMs(both, baud).ms };
  const f: BusFigures = { inverter: invPer, meter: metPer, computedMs };
  const skip = rtuSkipReason() || undefined;
  if (skip) f.measuredSkip = skip;
  else f.measured = { 9600: await ptyTicks(9600, ticks), 19200: await ptyTicks(19200, ticks) };
  return f;
}

const require = createRequire(import.meta.url);

/** Wall time per tick (inverter refresh + setpoint + meter poll) over one shared pty "line", ms. */
async function ptyTicks(baud: number, ticks: number): Promise<{ median: number; p99: number }> {
  const pty = ptyPair('bench-meter');
  const { a, b } = pty;
  const car = new SimCar({ capacityWh: 60000, socPct: 60, maxChargeW: 11000, maxDischargeW: 11000 });
  const simInv = new SimInverter({ ratedW: 11000, efficiency: 0.95 }, car, systemClock);
  const invDev = createSimSunspecDevice({ inverter: simInv, car, clock: systemClock });
  const meterDev = createSimMeterDevice({ model: 203, unitId: 2, read: () => ({ gridPowerW: 1234, phaseCurrentsA: [5, 5, 5], importedWh: 1, exportedWh: 1 }) });
  let server: { close(cb: (e: Error | null) => void): void } | undefined;
  const rtu = { kind: 'rtu' as const, path: a, baudRate: baud, parity: 'none' as const, stopBits: 1 as const, dataBits: 8 as const };
  const buses = new ModbusBuses(systemClock);
  const inverter = new SunspecInverter({ link: { ...rtu, unitId: 1 }, channel: buses.channel({ ...rtu, unitId: 1 }, { timeoutMs: 1000, retries: 0 }, 'inverter'), timeoutMs: 1000, retries: 0, reversionS: 60, efficiency: 0.95, clock: systemClock });
  const meter = new SunspecMeter({ link: { ...rtu, unitId: 2 }, channel: buses.channel({ ...rtu, unitId: 2 }, { timeoutMs: 1000, retries: 0 }, 'meter'), base: null, invertSign: false, timeoutMs: 1000, retries: 0, clock: systemClock });
  try {
    await pty.ready();
    const { ServerSerial } = require('modbus-serial');
    await new Promise<void>((resolve, reject) => {
      server = new ServerSerial(unitRouter([invDev, meterDev]), { path: b, baudRate: baud, unitID: 255 });
      (server as unknown as NodeJS.EventEmitter).on('initialized', () => resolve());
      (server as unknown as NodeJS.EventEmitter).on('error', (e: Error) => reject(e));
    });
    await inverter.open();
    await meter.open();
    const samples: number[] = [];
    for (let i = 0; i < ticks; i++) {
      const t0 = performance.now();
      await inverter.refresh();
      await inverter.setPowerW(i % 2 ? 4000 : 3000);
      await meter.refresh();
      samples.push(performance.now() - t0);
      if (inverter.state().fault || meter.state().fault) throw new Error(`fault during the benchmark: ${(inverter.state().fault ?? meter.state().fault)!.message}`);
    }
    const s = summarize(samples);
    return { median: s.median, p99: s.p99 };
  } finally {
    await meter.close();
    await inverter.close();
    if (server) await new Promise<void>((resolve) => server!.close(() => resolve()));
    invDev.stop();
    pty.stop();
  }
}

function arg(argv: string[], name: string, dflt: number): number {
  const i = argv.indexOf(name);
  return i >= 0 ? Number(argv[i + 1]) : dflt;
}

export async function main(argv: string[] = process.argv.slice(2)): Promise<unknown> {
  const json = argv.includes('--json');
  const virtual = summarize(await virtualSteps(arg(argv, '--steps', 200)));
  const real = summarize(await realSteps(arg(argv, '--real-steps', 12)));
  const bus = await busTime(arg(argv, '--ticks', 300));
  const out = { allowedW: Math.round(ALLOWED_W), virtual, real, bus, rssMiB: rssMiB() };
  if (json) {
    console.log(JSON.stringify(out));
    return out;
  }
  console.log(`Meter step → setpoint reduced (house ${QUIET_W} → ${STEP_W} W with the car at 11 kW, ${FUSE_A} A fuse: cut to ≤ ${Math.round(ALLOWED_W)} W), tick 1 s:`);
  console.log(`  virtual time, in-process meter, ${virtual.n} steps: median ${fmt(virtual.median, 0)} ms, p99 ${fmt(virtual.p99, 0)} ms, max ${fmt(virtual.max, 0)} ms`);
  console.log(`  real time, SunSpec meter over Modbus TCP, ${real.n} steps: median ${fmt(real.median, 0)} ms, p99 ${fmt(real.p99, 0)} ms, max ${fmt(real.max, 0)} ms`);
  const t = (r: { reads: number; writes: number; registersRead: number; registersWritten: number }) => `${r.reads} reads (${r.registersRead} registers), ${r.writes} writes (${r.registersWritten} registers)`;
  console.log(`RS-485 bus time per tick, inverter and meter on one line (inverter: ${t(bus.inverter)}; meter: ${t(bus.meter)}):`);
  for (const baud of [9600, 19200] as const) {
    const c = bus.computedMs[baud];
    const m = bus.measured?.[baud];
    console.log(`  ${baud} baud: computed ${fmt(c.both, 1)} ms (inverter ${fmt(c.inverter, 1)} + meter ${fmt(c.meter, 1)}; 11 bits/char, 3.5-char gaps, no device turnaround)` +
      (m ? `; measured over a socat pty pair (no line delay): median ${fmt(m.median, 1)} ms, p99 ${fmt(m.p99, 1)} ms` : `; pty measurement skipped: ${bus.measuredSkip}`));
  }
  console.log(`  RSS ${out.rssMiB} MiB`);
  return out;
}

runIfMain(import.meta.url, main);
