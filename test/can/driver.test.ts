/**
 * The CAN BMS driver on the in-memory bus under the virtual clock, with a simulated hybrid inverter on the
 * other end: periods, limits following the setpoint, the stop without 0 V, keepalive loss, restarts, garbage,
 * the measurement source, the bus going away. Expected currents are worked out here from the setpoint, the
 * 0.95 efficiency and the 51.2 V bus (floor to 0.1 A), not taken from the driver.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decodeFrame } from '../../hal/inverter/can/codec.ts';
import { Incarnation } from '../../hal/sim/incarnation.ts';
import { PROFILES } from '../../hal/inverter/can/profiles.ts';
import { canRig, framesWithId, type CanRig } from './harness.ts';

async function withRig(o: Parameters<typeof canRig>[0], fn: (r: CanRig) => Promise<void>): Promise<void> {
  const r = await canRig(o);
  try {
    await fn(r);
  } finally {
    await r.dispose();
  }
}

const limitsOf = (r: CanRig, from = 'bms') =>
  framesWithId(r, 0x351, from).map((f) => {
    const d = decodeFrame(f, PROFILES['pylontech-1.3']);
    assert.ok(d.ok);
    return { atMs: f.atMs!, ...(d.values as { chargeCurrentLimitA: number; dischargeCurrentLimitA: number; chargeVoltageLimitV: number; dischargeVoltageLimitV: number }) };
  });

/** Gaps between consecutive frames of an id, ms. */
const gaps = (atMs: number[]) => atMs.slice(1).map((t, i) => t - atMs[i]);

describe('CAN BMS driver: the frame cycle', () => {
  for (const [profile, periodMs] of [['pylontech-1.3', 1000], ['sma', 100]] as const) {
    it(`${profile}: every frame of the set every ${periodMs} ms, and a command never leaves a gap longer than the period`, () =>
      withRig({ profile }, async (r) => {
        await r.driver.open();
        r.run(30);
        for (const id of PROFILES[profile].frames) {
          const g = gaps(framesWithId(r, id, 'bms').map((f) => f.atMs!));
          assert.ok(g.length >= (30_000 / periodMs) - 1, `0x${id.toString(16)}: ${g.length + 1} frames`);
          assert.deepEqual([...new Set(g)], [periodMs], `0x${id.toString(16)} gaps`);
        }
        // commands at odd times (a 1 s tick off the cycle's phase): each goes out at once, the period restarts
        const before = r.frames.length;
        for (let i = 0; i < 20; i++) {
          r.run(0.37);
          await r.driver.setPowerW(i % 2 ? 2000 : -2000);
        }
        r.run(2);
        const times = framesWithId({ frames: r.frames.slice(before) }, 0x351, 'bms').map((f) => f.atMs!);
        assert.ok(Math.max(...gaps(times)) <= periodMs, `longest gap ${Math.max(...gaps(times))} ms`);
      }));
  }
});

describe('CAN BMS driver: limits follow the setpoint', () => {
  it('charge, discharge and stop: the current limits, the enable bits, and never 0 V', () =>
    withRig({ profile: 'pylontech-1.2' }, async (r) => {
      await r.driver.open();
      await r.driver.setPowerW(5000);
      r.run(1);
      // 5000 W × 0.95 / 51.2 V = 92.77 A → 92.7 A
      assert.deepEqual(pick(r.sim.lastLimits!), { cha: 92.7, dis: 0, cvl: 55.2, dvl: 46 });
      assert.equal(lastRequests(r), 0x80, '0x35C: charge enabled only');
      await r.driver.refresh();
      // 92.7 A × 51.2 V = 4746.2 W DC at the car → 4996.0 W AC
      assert.ok(Math.abs(r.driver.state().reading!.acPowerW - 4746.24 / 0.95) < 1);
      await r.driver.setPowerW(-3000);
      r.run(1);
      // 3000 W / 0.95 / 51.2 V = 61.68 A → 61.6 A
      assert.deepEqual(pick(r.sim.lastLimits!), { cha: 0, dis: 61.6, cvl: 55.2, dvl: 46 });
      assert.equal(lastRequests(r), 0x40, '0x35C: discharge enabled only');
      await r.driver.setPowerW(0);
      r.run(1);
      assert.deepEqual(pick(r.sim.lastLimits!), { cha: 0, dis: 0, cvl: 55.2, dvl: 46 });
      assert.equal(lastRequests(r), 0x00, '0x35C: both off');
      assert.equal(r.sim.acPowerW, 0);
      assert.equal(r.sim.zeroVoltageSeen, false);
      assert.ok(limitsOf(r).every((l) => l.chargeVoltageLimitV === 55.2 && l.dischargeVoltageLimitV === 46), 'no frame ever carries 0 V');
    }));

  it('the limits never exceed the command: the inverter drawing all it may stays within the setpoint', () =>
    withRig({}, async (r) => {
      await r.driver.open();
      for (const w of [1234, -777, 10999, -10450, 50, -50, 0]) {
        await r.driver.setPowerW(w);
        r.run(1);
        await r.driver.refresh();
        const { acPowerW: ac, setpointW } = r.driver.state().reading!;
        // clamped to the ratings: 200 A × 51.2 V / 0.95 = 10778 W in, 200 A × 51.2 V × 0.95 = 9728 W out
        assert.equal(setpointW, Math.max(-9728, Math.min(10778, w)));
        const sp = setpointW!;
        if (sp >= 0) assert.ok(ac >= 0 && ac <= sp + 1e-6, `${w}: ${ac}`);
        else assert.ok(ac <= 0 && ac >= sp - 1e-6, `${w}: ${ac}`);
        // and within one 0.1 A step of it
        assert.ok(Math.abs(ac - sp) <= (0.1 * 51.2) / 0.95 + 1, `${w}: ${ac}`);
      }
    }));

  it('the car SoC stale (link quiet): the limits still follow the setpoint (the core decides on SoC), the last SoC is shown with the BMS-internal warning', () =>
    withRig({}, async (r) => {
      // the link goes quiet: its last SoC, with its time, is all there is
      let quiet: { socPct: number; socAtMs: number } | undefined;
      r.driver = r.makeDriver({ car: () => ({ ...r.facts(), ...quiet }) });
      await r.driver.open();
      await r.driver.setPowerW(-4000);
      quiet = { socPct: r.car.socPct, socAtMs: r.clock.nowMs() };
      r.run(1);
      const socShown = () => {
        const d = decodeFrame(framesWithId(r, 0x355, 'bms').at(-1)!, PROFILES['pylontech-1.3']);
        assert.ok(d.ok);
        return d.values.socHiResPct as number;
      };
      const warning = () => {
        const d = decodeFrame(framesWithId(r, 0x35a, 'bms').at(-1)!, PROFILES['pylontech-1.3']);
        assert.ok(d.ok);
        return d.values['warning.bmsInternal'];
      };
      assert.equal(socShown(), 70);
      assert.equal(warning(), 'ok');
      r.run(35);
      // 4000 W / 0.95 / 51.2 V = 82.24 A → 82.2 A
      assert.equal(r.sim.lastLimits!.dischargeCurrentLimitA, 82.2);
      assert.equal(socShown(), 70, 'the last SoC known, not the car\'s present one');
      // 82.2 A × 51.2 V for 35 s out of 60 kWh: about 0.07 %
      assert.ok(r.car.socPct < 69.95, `${r.car.socPct}`);
      assert.equal(warning(), 'active');
      quiet = undefined;
      r.run(1);
      assert.equal(warning(), 'ok');
      assert.ok(Math.abs(socShown() - r.car.socPct) <= 0.005, `${socShown()} vs ${r.car.socPct}`);
    }));
});

describe('CAN BMS driver: the inverter side', () => {
  it('keepalive lost for the configured time is fault keepalive_lost; the reading then ages; it clears when 0x305 is back', () =>
    withRig({}, async (r) => {
      await r.driver.open();
      let changes = 0;
      r.driver.onChange(() => changes++);
      r.run(5);
      await r.driver.refresh();
      assert.equal(r.driver.state().fault, undefined);
      r.sim.faults.silent = true;
      const lastKeepaliveMs = framesWithId(r, 0x305, 'inverter').at(-1)!.atMs!;
      r.run(9);
      await r.driver.refresh();
      assert.equal(r.driver.state().fault, undefined, 'not yet: 9 s < 10 s');
      r.run(2);
      await r.driver.refresh();
      const f = r.driver.state().fault!;
      assert.equal(f.code, 'keepalive_lost');
      assert.match(f.message, /0x305/);
      assert.ok(f.sinceMs > lastKeepaliveMs + 10_000 && f.sinceMs <= lastKeepaliveMs + 10_000 + 1000, 'noticed within a period');
      assert.ok(changes >= 1, 'listeners told');
      const staleAt = r.driver.state().reading!.atMs;
      r.run(3);
      await r.driver.refresh();
      assert.equal(r.driver.state().reading!.atMs, staleAt, 'no new reading while the inverter is silent');
      r.sim.faults.silent = false;
      r.run(1.1);
      await r.driver.refresh();
      assert.equal(r.driver.state().fault, undefined);
      assert.ok(r.driver.state().reading!.atMs > staleAt);
    }));

  it('garbage on the bus (unknown ids, wrong DLC, out-of-range values) is counted and ignored', () =>
    withRig({}, async (r) => {
      await r.driver.open();
      const ch = r.bus.channel('noise');
      await ch.open();
      ch.send({ id: 0x123, data: new Uint8Array([1, 2]) });
      ch.send({ id: 0x305, data: new Uint8Array([0, 0, 0]) });
      ch.send({ id: 0x307, data: new Uint8Array(2) });
      ch.send({ id: 0x355, data: new Uint8Array([0x65, 0, 0x62, 0]) });
      r.sim.faults.garbage = { id: 0x7ff, data: new Uint8Array(8) };
      r.run(3);
      await r.driver.refresh();
      assert.equal(r.driver.state().fault, undefined);
      const ig = r.driver.stats.ignored;
      assert.equal(ig.unknown_id, 4, '0x123 once, 0x7FF with each of 3 keepalives');
      assert.equal(ig.wrong_dlc, 2);
      assert.equal(ig.out_of_range, 1);
      assert.equal(r.driver.stats.keepalives, 3);
    }));

  it('a second battery on the bus is counted and named in the log', () =>
    withRig({}, async (r) => {
      await r.driver.open();
      const ch = r.bus.channel('other-bms');
      await ch.open();
      ch.send({ id: 0x356, data: new Uint8Array([0x7a, 0x13, 0xf2, 0xfe, 0x6b, 0x01]) });
      assert.equal(r.driver.stats.ignored.foreign_bms, 1);
      assert.ok(r.logs.some((l) => /another node sends BMS frames/.test(l)));
    }));

  it('SMA: the power comes from the inverter\'s own 0x305 (DC V and I), stamped with the frame\'s time', () =>
    withRig({ profile: 'sma' }, async (r) => {
      // the car facts give a SoC but no power: 0x305 is the only measurement
      r.driver = r.makeDriver({ car: () => ({ socPct: 70, socAtMs: r.clock.nowMs() }) });
      await r.driver.open();
      await r.driver.refresh();
      assert.equal(r.driver.state().fault?.code, 'no_measurement', 'nothing measured before the first 0x305');
      await r.driver.setPowerW(-4000);
      r.run(2.05);
      await r.driver.refresh();
      const s = r.driver.state();
      assert.equal(s.fault, undefined);
      assert.equal(r.driver.measurement!.source, 'inverter 0x305');
      // the port says where its power figure comes from, and the figure's own time is its age
      assert.equal(s.reading!.measurementSource, 'inverter 0x305');
      const lastKeepalive = framesWithId(r, 0x305, 'inverter').at(-1)!;
      assert.equal(s.reading!.atMs, lastKeepalive.atMs);
      // the sim's DC power as 0x305 carries it: 0.1 A steps at 51.2 V
      const d = decodeFrame(lastKeepalive, PROFILES.sma);
      assert.ok(d.ok);
      const dcW = (d.values.dcVoltageV as number) * (d.values.dcCurrentA as number);
      assert.ok(Math.abs(s.reading!.acPowerW - dcW * 0.95) < 0.1, `${s.reading!.acPowerW} vs ${dcW * 0.95}`);
      assert.ok(Math.abs(s.reading!.acPowerW + 4000) < 10);
    }));

  it('an inverter drawing beyond the limits is not_following, and the frames say high current', () =>
    withRig({}, async (r) => {
      await r.driver.open();
      await r.driver.setPowerW(2000);
      r.run(1);
      r.sim.faults.ignoreLimitsAcW = -4000;
      r.run(6);
      await r.driver.refresh();
      const f = r.driver.state().fault!;
      assert.equal(f.code, 'not_following');
      assert.match(f.message, /beyond the advertised current limits/);
      r.run(1);
      const a = decodeFrame(framesWithId(r, 0x35a, 'bms').at(-1)!, PROFILES['pylontech-1.3']);
      assert.ok(a.ok && a.values['warning.highCurrent'] === 'active');
      r.sim.faults.ignoreLimitsAcW = undefined;
      r.run(1);
      await r.driver.refresh();
      assert.equal(r.driver.state().fault, undefined);
    }));

  it('drawing less than the limit is the inverter\'s choice (followMode limits), a fault with followMode setpoint', async () => {
    for (const followMode of ['limits', 'setpoint'] as const) {
      await withRig({ sim: { demandAcW: () => 500 }, driver: { followMode } }, async (r) => {
        await r.driver.open();
        await r.driver.setPowerW(6000);
        r.run(12);
        await r.driver.refresh();
        assert.ok(Math.abs(r.driver.state().reading!.acPowerW - 500) < 5);
        assert.equal(r.driver.state().fault?.code, followMode === 'limits' ? undefined : 'not_following');
      });
    }
  });
});

describe('CAN BMS driver: restarts and the bus', () => {
  it('a restart of the runtime never sends a frame with wider limits than the last ones', () =>
    withRig({}, async (r) => {
      const life1 = new Incarnation(r.clock);
      const d1 = r.makeDriver({ clock: life1.clock });
      await d1.open();
      await d1.setPowerW(-6000);
      r.run(3);
      const last = limitsOf(r).at(-1)!;
      assert.ok(last.dischargeCurrentLimitA > 0);
      life1.kill(); // SIGKILL: no clean stop, the inverter keeps the last limits until its own timeout
      r.run(0.5);
      const mark = r.frames.length;
      const d2 = r.makeDriver();
      await d2.open();
      r.run(5);
      const after = limitsOf({ ...r, frames: r.frames.slice(mark) } as CanRig);
      assert.ok(after.length >= 5);
      for (const l of after) {
        assert.ok(l.dischargeCurrentLimitA <= last.dischargeCurrentLimitA && l.chargeCurrentLimitA <= last.chargeCurrentLimitA, JSON.stringify(l));
        assert.equal(l.chargeVoltageLimitV, 55.2);
      }
      assert.equal(r.sim.acPowerW, 0, 'the new process starts with the inverter held');
      await d2.close();
    }));

  it('close() leaves the inverter told 0 A both ways', () =>
    withRig({}, async (r) => {
      await r.driver.open();
      await r.driver.setPowerW(-5000);
      r.run(2);
      await r.driver.close();
      assert.deepEqual(pick(r.sim.lastLimits!), { cha: 0, dis: 0, cvl: 55.2, dvl: 46 });
    }));

  it('the interface going down is fault disconnected; the driver reopens it when it is back and sends again', () =>
    withRig({}, async (r) => {
      await r.driver.open();
      await r.driver.setPowerW(1000);
      r.bus.down();
      await r.driver.refresh();
      assert.equal(r.driver.state().fault?.code, 'disconnected');
      await r.driver.setPowerW(2000);
      r.run(5);
      assert.equal(r.driver.state().fault?.code, 'disconnected');
      r.bus.restore();
      await r.sim.stop();
      await r.sim.start();
      r.run(3);
      await new Promise((resolve) => setImmediate(resolve)); // the reopen's open() settles
      await r.driver.refresh();
      assert.equal(r.driver.state().fault, undefined);
      r.run(1);
      // 2000 W × 0.95 / 51.2 V = 37.1 A: the command given while down is the one in force
      assert.equal(r.sim.lastLimits!.chargeCurrentLimitA, 37.1);
    }));
});

function pick(l: { chargeCurrentLimitA: number; dischargeCurrentLimitA: number; chargeVoltageLimitV: number; dischargeVoltageLimitV: number }) {
  return { cha: l.chargeCurrentLimitA, dis: l.dischargeCurrentLimitA, cvl: l.chargeVoltageLimitV, dvl: l.dischargeVoltageLimitV };
}

function lastRequests(r: CanRig): number {
  return framesWithId(r, 0x35c, 'bms').at(-1)!.data[0];
}
