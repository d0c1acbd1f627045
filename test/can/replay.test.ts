/**
 * A capture replays through the driver: a live run (driver + simulated Sunny-Island-style inverter on the
 * in-memory bus) is recorded in candump format, then the inverter's side of that log is played into a fresh
 * driver under a fresh virtual clock with the same commands. The port readings and faults must be the same
 * at every refresh.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { formatCandumpLine, parseCandump } from '../../hal/inverter/can/candump.ts';
import { FRAME_LAYOUTS } from '../../hal/inverter/can/codec.ts';
import { CanBmsInverter } from '../../hal/inverter/can/driver.ts';
import { resolveProfile } from '../../hal/inverter/can/profiles.ts';
import { ReplayChannel } from '../../hal/inverter/can/replay-channel.ts';
import { VirtualClock } from '../../hal/sim/virtual-clock.ts';
import { canRig, PACK } from './harness.ts';

const START = Date.UTC(2026, 0, 15, 12);
/** What the runtime does at these seconds after open. */
const COMMANDS: [number, number][] = [
  [1, -4000],
  [10, 3000],
  [40, 0],
  [45, -1500],
];

interface Observation {
  t: number;
  fault?: string;
  reading?: { atMs: number; acPowerW: number; setpointW?: number; state: string };
  source?: string;
}

async function drive(driver: CanBmsInverter, advance: (ms: number) => void, nowMs: () => number, during?: (t: number) => void): Promise<Observation[]> {
  await driver.open();
  const seen: Observation[] = [];
  for (let halfS = 1; halfS <= 120; halfS++) {
    advance(500);
    const t = halfS / 2;
    during?.(t);
    for (const [at, w] of COMMANDS) if (at === t) await driver.setPowerW(w);
    await driver.refresh();
    const s = driver.state();
    const r = s.reading;
    seen.push({ t, fault: s.fault?.code, reading: r && { atMs: r.atMs - START, acPowerW: r.acPowerW, setpointW: r.setpointW, state: r.state }, source: driver.measurement?.source });
  }
  assert.ok(nowMs() >= START + 60_000);
  return seen;
}

describe('CAN capture replay', () => {
  it('a candump log of a live run gives the same port readings when replayed through the driver', async () => {
    const profile = resolveProfile('sma');
    // live: the driver's measurement is the inverter's own 0x305 (the car facts give only the SoC)
    const r = await canRig({ profile: 'sma' });
    const log: string[] = [];
    r.bus.tap((f) => log.push(formatCandumpLine(f, 'can0', r.clock.wallMs())));
    const liveDriver = r.makeDriver({ car: () => ({ socPct: 70, socAtMs: r.clock.nowMs() }) });
    const live = await drive(
      liveDriver,
      (ms) => r.run(ms / 1000),
      () => r.clock.nowMs(),
      // the inverter goes quiet for 12 s: keepalive lost, then back
      (t) => {
        if (t === 20) r.sim.faults.silent = true;
        if (t === 32) r.sim.faults.silent = false;
      },
    );
    await liveDriver.close();
    await r.dispose();

    // the capture is what an installer would bring back: text
    const text = log.join('\n') + '\n';
    const parsed = parseCandump(text);
    assert.equal(parsed.errors.length, 0);
    assert.ok(parsed.frames.length > 3000, `${parsed.frames.length} frames`);

    const clock = new VirtualClock(START);
    const replay = new ReplayChannel(parsed.frames, { clock, filter: (lf) => FRAME_LAYOUTS[lf.frame.id]?.from === 'inverter' });
    const replayDriver = new CanBmsInverter({
      channel: () => replay,
      profile,
      pack: PACK,
      ratedW: 11000,
      efficiency: 0.95,
      keepaliveTimeoutMs: 10_000,
      socMaxAgeMs: 30_000,
      car: () => ({ socPct: 70, socAtMs: clock.nowMs() }),
      clock,
    });
    const replayed = await drive(replayDriver, (ms) => clock.advance(ms), () => clock.nowMs());
    await replayDriver.close();

    assert.deepEqual(replayed, live);
    // and the run had something to compare: power both ways, the keepalive fault and its end
    assert.ok(live.some((o) => (o.reading?.acPowerW ?? 0) < -3900));
    assert.ok(live.some((o) => (o.reading?.acPowerW ?? 0) > 2900));
    assert.ok(live.some((o) => o.fault === 'keepalive_lost'));
    assert.equal(live.at(-1)!.fault, undefined);
    assert.equal(live.at(-1)!.source, 'inverter 0x305');
    assert.ok(replay.sentCount > 0, 'the driver kept sending into the replay');
  });
});
