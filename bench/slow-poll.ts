/**
 * Dispatch published → setpoint written when the inverter's polls are slower than the tick (issue 14,
 * point 4, Figures): the real daemon (`wallbox run`) with a 1 s tick against a SunSpec device that takes
 * 650 ms per request, so a poll (two reads) takes 1.3 s. The device is the simulated SunSpec map behind
 * test/sunspec/hostile-server.ts (real Modbus TCP on 127.0.0.1, the delay in real time); dispatches come
 * from an mqtt.js client through Mosquitto on loopback, each superseding the last with another power,
 * every 3-7 s. The lag must stay bounded: the worst over the run is the figure, and the first and last
 * thirds are compared (a backlog shows as a growing lag).
 *
 * Usage: tsx bench/slow-poll.ts [--minutes M] [--delay-ms D] [--json]   (default 10 minutes, 650 ms)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import mqtt from 'mqtt';
import { decodeRaw } from '../hal/inverter/sunspec/codec.ts';
import { systemClock } from '../hal/system-clock.ts';
import { brokerProtocolVersion, startBroker } from '../test/helpers/broker.ts';
import { startHostileServer } from '../test/sunspec/hostile-server.ts';
import { epochMs, measure, startWallbox, type WsetDevice } from './dispatch-latency.ts';
import { fmt, summarize, runIfMain } from './stats.ts';

export interface SlowPollFigures {
  minutes: number;
  requestDelayMs: number;
  samples: number;
  medianMs: number;
  p99Ms: number;
  worstMs: number;
  firstThirdWorstMs: number;
  lastThirdWorstMs: number;
}

export async function main(argv: string[] = process.argv.slice(2)): Promise<SlowPollFigures> {
  const arg = (name: string, dflt: number): number => {
    const i = argv.indexOf(name);
    return i >= 0 ? Number(argv[i + 1]) : dflt;
  };
  const minutes = arg('--minutes', 10);
  const delayMs = arg('--delay-ms', 650);
  const json = argv.includes('--json');
  const dir = mkdtempSync(join(tmpdir(), 'wallbox-slow-poll-'));
  const broker = await startBroker();
  const h = await startHostileServer({ clock: systemClock, opts: { delayMs } });
  // the power stage follows its setpoint (else the driver's command-following check would rightly fault it)
  const physics = setInterval(() => h.inverter.step(0.2, { gridOnBus: true, islandLoadW: 0 }), 200);
  const wsetAt = h.device.addressOf(704, 'WSet');
  // the device's WSet writes on the epoch clock (hostile-server stamps with performance.now())
  const device: WsetDevice = {
    port: h.port,
    get writes() {
      return h.writes
        .filter((w) => w.address <= wsetAt && wsetAt + 2 <= w.address + w.values.length)
        .map((w) => ({ atMs: w.atMs + (epochMs() - performance.now()), wsetW: ((decodeRaw('int32', w.values.slice(wsetAt - w.address, wsetAt - w.address + 2)) as number) / 10) || 0 }));
    },
    stop: () => h.close(),
  };
  const deviceId = 'slowpoll';
  const topic = `wallbox/${deviceId}/dispatch`;
  const agg = await mqtt.connectAsync(broker.url, { clientId: 'aggregator', protocolVersion: brokerProtocolVersion() });
  // the device answers each request after `delayMs`: the driver's timeout must allow for it, and the
  // runtime's bound on a port call (control.portCallTimeoutMs) must allow for a whole poll
  const timeoutMs = Math.max(1000, 2 * delayMs);
  const wb = await startWallbox({ dir, broker, modbusPort: h.port, deviceId, tickS: 1, timeoutMs, portCallTimeoutMs: 2 * timeoutMs * 2 });
  try {
    await new Promise((r) => setTimeout(r, 5000));
    const endAt = performance.now() + minutes * 60_000;
    const lags: number[] = [];
    let i = 0;
    while (performance.now() < endAt) {
      const [lag] = await measure({ agg, topic, device, samples: 1, gapMs: () => 3000 + Math.random() * 4000, idPrefix: `s${i++}`, timeoutMs: 60_000 });
      lags.push(lag);
      if (!json && lags.length % 20 === 0) console.log(`  ${lags.length} dispatches, worst so far ${fmt(Math.max(...lags), 0)} ms`);
    }
    const third = Math.max(1, Math.floor(lags.length / 3));
    const s = summarize(lags);
    const f: SlowPollFigures = {
      minutes,
      requestDelayMs: delayMs,
      samples: lags.length,
      medianMs: s.median,
      p99Ms: s.p99,
      worstMs: s.max,
      firstThirdWorstMs: Math.max(...lags.slice(0, third)),
      lastThirdWorstMs: Math.max(...lags.slice(-third)),
    };
    if (json) console.log(JSON.stringify(f));
    else {
      console.log(`dispatch published -> WSet written, ${minutes} min, tick 1 s, device ${delayMs} ms per request (a poll = 2 reads = ${2 * delayMs} ms), ${lags.length} dispatches:`);
      console.log(`  p50 ${fmt(f.medianMs, 0)} ms, p99 ${fmt(f.p99Ms, 0)} ms, worst ${fmt(f.worstMs, 0)} ms; worst in the first third ${fmt(f.firstThirdWorstMs, 0)} ms, in the last third ${fmt(f.lastThirdWorstMs, 0)} ms`);
    }
    return f;
  } catch (e) {
    console.error(`wallbox log (last lines):\n${wb.log.slice(-15).join('\n')}`);
    throw e;
  } finally {
    clearInterval(physics);
    await wb.stop();
    await agg.endAsync();
    await h.close();
    await broker.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

runIfMain(import.meta.url, main);
