/**
 * SunSpec driver tick over loopback Modbus TCP against the simulated SunSpec server.
 *
 * One tick = refresh() (every measurement model) + setPowerW() with a new setpoint (one write).
 * Prints median and p99 tick time, Modbus requests per tick, and from the measured requests and register
 * counts the time the same tick would occupy an RS-485 line at 9600 and 19200 baud.
 *
 * Usage: tsx bench/sunspec.ts [--ticks N] [--json]
 */
import { performance } from 'node:perf_hooks';
import { SunspecInverter } from '../hal/inverter/sunspec/driver.ts';
import { SimCar } from '../hal/sim/car.ts';
import { SimInverter } from '../hal/sim/inverter.ts';
import { startSimSunspecServer } from '../hal/sim/sunspec-server.ts';
import { systemClock } from '../hal/system-clock.ts';
import { freePort } from '../test/helpers/broker.ts';
import { percentile, runIfMain } from './stats.ts';

/** Modbus RTU sends 11 bits per character (start, 8 data, parity or a second stop, stop). */
const BITS_PER_CHAR = 11;
/** Silence before each frame: 3.5 characters (at these baud rates the spec sets it in characters). */
const GAP_CHARS = 3.5;

export interface SunspecBusFigures {
  /** Static scale factors read once instead of every tick. */
  cacheStaticScaleFactors: boolean;
  ticks: number;
  medianMs: number;
  p99Ms: number;
  requestsPerTick: number;
  readsPerTick: number;
  writesPerTick: number;
  registersReadPerTick: number;
  registersWrittenPerTick: number;
  /** Requests per tick when the setpoint does not change (the command is then only refreshed for the watchdog). */
  steadyRequestsPerTick: number;
  rtuBytesPerTick: number;
  busMsAt9600: number;
  busMsAt19200: number;
}

/** Bytes on an RTU line for the given traffic: FC 3 = 8 + (5 + 2n), FC 16 = (9 + 2n) + 8, plus inter-frame gaps. */
export function rtuBusMs(t: { reads: number; writes: number; registersRead: number; registersWritten: number }, baud: number): { bytes: number; ms: number } {
  const bytes = t.reads * (8 + 5) + 2 * t.registersRead + t.writes * (9 + 8) + 2 * t.registersWritten;
  const frames = 2 * (t.reads + t.writes);
  const chars = bytes + frames * GAP_CHARS;
  return { bytes, ms: (chars * BITS_PER_CHAR * 1000) / baud };
}

export async function main(argv: string[] = process.argv.slice(2)): Promise<SunspecBusFigures[]> {
  const ticksArg = argv.indexOf('--ticks');
  const ticks = ticksArg >= 0 ? Number(argv[ticksArg + 1]) : 2000;
  const json = argv.includes('--json');
  const out = [await measure(ticks, false, json), await measure(ticks, true, json)];
  if (json) console.log(JSON.stringify(out));
  return out;
}

async function measure(ticks: number, cacheStaticScaleFactors: boolean, json: boolean): Promise<SunspecBusFigures> {
  const warm = Math.min(200, Math.floor(ticks / 10));
  const car = new SimCar({ capacityWh: 60000, socPct: 60, maxChargeW: 11000, maxDischargeW: 11000 });
  const inverter = new SimInverter({ ratedW: 11000, efficiency: 0.95 }, car, systemClock);
  const port = await freePort();
  const server = await startSimSunspecServer({ port, host: '127.0.0.1', inverter, car, clock: systemClock });
  const driver = new SunspecInverter({
    link: { kind: 'tcp', host: '127.0.0.1', port, unitId: 1 },
    timeoutMs: 1000,
    retries: 0,
    reversionS: 60,
    efficiency: 0.95,
    clock: systemClock,
    cacheStaticScaleFactors,
  });
  try {
    await driver.open();
    const samples: number[] = [];
    let before = driver.busStats;
    let beforeReq = driver.requestCount;
    for (let i = 0; i < warm + ticks; i++) {
      if (i === warm) {
        before = driver.busStats;
        beforeReq = driver.requestCount;
      }
      const setpointW = i % 2 === 0 ? 4000 : -3000;
      const a = performance.now();
      await driver.refresh();
      await driver.setPowerW(setpointW);
      const b = performance.now();
      inverter.step(1, { gridOnBus: true, islandLoadW: 0 });
      if (i >= warm) samples.push(b - a);
      if (driver.state().fault) throw new Error(`fault during the benchmark: ${driver.state().fault!.message}`);
    }
    const after = driver.busStats;
    const per = {
      reads: (after.reads - before.reads) / ticks,
      writes: (after.writes - before.writes) / ticks,
      registersRead: (after.registersRead - before.registersRead) / ticks,
      registersWritten: (after.registersWritten - before.registersWritten) / ticks,
    };
    const requestsPerTick = (driver.requestCount - beforeReq) / ticks;

    // the same setpoint every tick: no write until the watchdog refresh is due
    const steadyTicks = 200;
    const r0 = driver.requestCount;
    for (let i = 0; i < steadyTicks; i++) {
      await driver.refresh();
      await driver.setPowerW(2000);
    }
    const steadyRequestsPerTick = (driver.requestCount - r0) / steadyTicks;

    samples.sort((x, y) => x - y);
    const at9600 = rtuBusMs(per, 9600);
    const at19200 = rtuBusMs(per, 19200);
    const f: SunspecBusFigures = {
      cacheStaticScaleFactors,
      ticks,
      medianMs: percentile(samples, 50),
      p99Ms: percentile(samples, 99),
      requestsPerTick,
      readsPerTick: per.reads,
      writesPerTick: per.writes,
      registersReadPerTick: per.registersRead,
      registersWrittenPerTick: per.registersWritten,
      steadyRequestsPerTick,
      rtuBytesPerTick: at9600.bytes,
      busMsAt9600: at9600.ms,
      busMsAt19200: at19200.ms,
    };
    if (!json) {
      const plan = driver.readPlan.map((b) => `${b.count}@${b.address}`).join(' + ');
      console.log(
        `SunSpec tick over loopback Modbus TCP (models 701, 704, 713 read; 704 WSet written), ${ticks} ticks, ` +
          (cacheStaticScaleFactors ? 'static scale factors read once (inverter.cacheScaleFactors = true):' : 'scale factors read with their values (default):'),
      );
      console.log(`  tick time: median ${f.medianMs.toFixed(3)} ms, p99 ${f.p99Ms.toFixed(3)} ms`);
      console.log(`  requests per tick: ${f.requestsPerTick} (${f.readsPerTick} reads [${plan}], ${f.writesPerTick} write of ${f.registersWrittenPerTick} registers); unchanged setpoint: ${f.steadyRequestsPerTick.toFixed(2)}`);
      console.log(`  RS-485 bus time per tick (${f.rtuBytesPerTick} bytes, 11 bits/char, 3.5-char gaps, device turnaround not included): ${f.busMsAt9600.toFixed(1)} ms at 9600 baud, ${f.busMsAt19200.toFixed(1)} ms at 19200 baud`);
    }
    return f;
  } finally {
    await driver.close();
    await server.close();
  }
}

runIfMain(import.meta.url, main);
