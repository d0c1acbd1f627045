/**
 * CAN BMS profile on the in-memory bus, in real time (system clock): frame jitter (how far each gap between two
 * frames of the same id is from the period: median, p99, max) and the CPU the driver and the simulated inverter
 * take per second of bus time, at the SMA profile's 100 ms period and the Pylontech 1 s period. The runtime's
 * tick repeats the setpoint every second and changes it every 10 s (a changed command goes out at once and
 * restarts the period: that gap is left out of the jitter, and shows in the longest 0x351 gap instead).
 *
 * Usage: tsx bench/can.ts [--seconds N] [--json]
 */
import { performance } from 'node:perf_hooks';
import { CanBmsInverter } from '../hal/inverter/can/driver.ts';
import { InMemoryCanBus } from '../hal/inverter/can/memory-bus.ts';
import { resolveProfile } from '../hal/inverter/can/profiles.ts';
import { SimCar } from '../hal/sim/car.ts';
import { SimCanInverter } from '../hal/sim/can-inverter.ts';
import { systemClock } from '../hal/system-clock.ts';
import { fmt, rssMiB, runIfMain, summarize } from './stats.ts';

export interface CanFigures {
  profile: string;
  periodMs: number;
  seconds: number;
  framesPerS: number;
  /** |gap − period| between consecutive frames of one id when no command came between them, ms. */
  jitterMedianMs: number;
  jitterP99Ms: number;
  jitterMaxMs: number;
  /** Longest gap between two 0x351 frames, ms (commands included; never above the period plus jitter). */
  longestGapMs: number;
  /** CPU time of this process per second of bus time, ms/s (= ‰ of one core). */
  cpuMsPerS: number;
  rssMiB: number;
}

const PACK = { voltageV: 51.2, chargeVoltageV: 55.2, dischargeVoltageV: 46, maxChargeA: 200, maxDischargeA: 200, sohPct: 100, temperatureC: 25, capacityAh: 1000 };

async function measure(profileName: string, seconds: number): Promise<CanFigures> {
  const profile = resolveProfile(profileName);
  const bus = new InMemoryCanBus(systemClock, 'bench');
  const car = new SimCar({ capacityWh: 60000, socPct: 70, maxChargeW: 11000, maxDischargeW: 11000 });
  const sim = new SimCanInverter({ profile, ratedW: 11000, efficiency: 0.95, busVoltageV: 51.2 }, car, bus.channel('inverter'), systemClock);
  await sim.start();
  sim.startPhysics(100);
  const driver = new CanBmsInverter({
    channel: () => bus.channel('bms'),
    profile,
    pack: PACK,
    ratedW: 11000,
    efficiency: 0.95,
    keepaliveTimeoutMs: 10_000,
    socMaxAgeMs: 30_000,
    car: () => ({ socPct: car.socPct, socAtMs: systemClock.nowMs(), dcPowerW: sim.dcPowerW, powerAtMs: sim.lastStepAtMs }),
    clock: systemClock,
  });
  // arrival times in real time, per id, and whether a command was sent since the previous frame of the set
  const arrivals = new Map<number, { t: number; afterCommand: boolean }[]>();
  let commanded = new Set<number>();
  bus.tap((f, from) => {
    if (from !== 'bms') return;
    const list = arrivals.get(f.id) ?? [];
    list.push({ t: performance.now(), afterCommand: commanded.has(f.id) });
    commanded.delete(f.id);
    arrivals.set(f.id, list);
  });
  await driver.open();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let k = 0;
  // the runtime's 1 s tick: the same setpoint every tick, a new one every 10 s (a dispatch step)
  const tick = setInterval(() => {
    const w = Math.floor(k++ / 10) % 2 ? 3000 : -3000;
    if (k % 10 === 1) commanded = new Set(profile.frames);
    void driver.setPowerW(w);
    void driver.refresh();
  }, 1000);
  await new Promise((r) => setTimeout(r, seconds * 1000));
  clearInterval(tick);
  const cpu = process.cpuUsage(cpu0);
  const wallS = (performance.now() - t0) / 1000;
  await driver.close();
  await sim.stop();
  const jitter: number[] = [];
  let longest = 0;
  for (const [id, list] of arrivals) {
    for (let i = 1; i < list.length; i++) {
      const gap = list[i].t - list[i - 1].t;
      if (id === 0x351) longest = Math.max(longest, gap);
      // a command restarts the period on purpose: that gap is shorter by design, not jitter
      if (!list[i].afterCommand) jitter.push(Math.abs(gap - profile.periodMs));
    }
  }
  const j = summarize(jitter);
  const frames = [...arrivals.values()].reduce((a, l) => a + l.length, 0);
  return {
    profile: profile.name,
    periodMs: profile.periodMs,
    seconds: Math.round(wallS * 10) / 10,
    framesPerS: Math.round((frames / wallS) * 10) / 10,
    jitterMedianMs: j.median,
    jitterP99Ms: j.p99,
    jitterMaxMs: j.max,
    longestGapMs: longest,
    cpuMsPerS: ((cpu.user + cpu.system) / 1000) / wallS,
    rssMiB: rssMiB(),
  };
}

export async function main(argv: string[] = process.argv.slice(2)): Promise<CanFigures[]> {
  const i = argv.indexOf('--seconds');
  const seconds = i >= 0 ? Number(argv[i + 1]) : 20;
  const out = [await measure('sma', seconds), await measure('pylontech-1.3', seconds)];
  if (argv.includes('--json')) console.log(JSON.stringify(out));
  else {
    for (const f of out) {
      console.log(
        `${f.profile.padEnd(14)} period ${String(f.periodMs).padStart(4)} ms over ${f.seconds} s: ${f.framesPerS} frames/s sent; ` +
          `jitter median ${fmt(f.jitterMedianMs)} ms, p99 ${fmt(f.jitterP99Ms)} ms, max ${fmt(f.jitterMaxMs)} ms; longest 0x351 gap ${fmt(f.longestGapMs)} ms; ` +
          `CPU ${fmt(f.cpuMsPerS)} ms/s (${fmt(f.cpuMsPerS / 10)} % of a core); RSS ${f.rssMiB} MiB`,
      );
    }
  }
  return out;
}

runIfMain(import.meta.url, main);
