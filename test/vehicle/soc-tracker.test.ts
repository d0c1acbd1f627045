/**
 * SoC tracking from metered energy: properties over random inputs, a full 20 → 100 → 20 % cycle of a
 * SimCar that sends no SoC, and the same cycle through the simulated bridge and the EVerest link.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { initialSocTracker, sessionCounterDeltaWh, updateSocTracker, type SocTrackerState } from '../../src/control/soc-tracker.ts';
import { SimCar } from '../../hal/sim/car.ts';
import { VirtualClock } from '../../hal/sim/virtual-clock.ts';
import { startSimEverestBridge } from '../../hal/sim/everest-bridge.ts';
import { EverestVehicleLink } from '../../hal/vehicle/everest.ts';
import { startBroker, type TestBroker } from '../helpers/broker.ts';
import { T0_MS, waitFor } from './helpers.ts';

/** The tracking arithmetic on its own, without the age and throughput bounds (tested separately). */
const UNBOUNDED = { maxAgeMs: Number.POSITIVE_INFINITY, maxThroughputPct: Number.POSITIVE_INFINITY };

describe('one SoC for safety', () => {
  it("the car's SoC is trusted too long", () => {
    // 60 kWh, the car says 51 % and keeps saying it (whole percent) while 800 Wh leave the battery:
    // the figure for safety is what is left, 51 − 800 / 60 000 × 100 = 49.67 %, below a 50 % floor
    let r = updateSocTracker(initialSocTracker(60_000), { atMs: T0_MS, reportedSocPct: 51, reportedAtMs: T0_MS, carSideWh: 0 });
    for (let i = 1; i <= 8; i++) r = updateSocTracker(r.state, { atMs: T0_MS + i * 1000, reportedSocPct: 51, reportedAtMs: T0_MS + i * 1000, carSideWh: -100 });
    assert.ok(Math.abs((r.socPct ?? Number.NaN) - (51 - (800 / 60_000) * 100)) < 1e-9, `socPct ${r.socPct}`);
    assert.equal(r.socSource, 'tracked');
    // charging does not lift it above the car's own figure
    r = updateSocTracker(r.state, { atMs: T0_MS + 9000, reportedSocPct: 51, reportedAtMs: T0_MS + 9000, carSideWh: 5000 });
    assert.equal(r.socPct, 51);
    assert.equal(r.socSource, 'vehicle');
  });

  it('with the capacity unknown, what went out is counted on the small 10 kWh assumption', () => {
    let r = updateSocTracker(initialSocTracker(), { atMs: T0_MS, reportedSocPct: 60, carSideWh: 0 });
    r = updateSocTracker(r.state, { atMs: T0_MS + 1000, reportedSocPct: 60, carSideWh: -500 });
    assert.ok(Math.abs((r.socPct ?? Number.NaN) - 55) < 1e-9, `socPct ${r.socPct}`);
  });

  it('a figure is never fresher than the link: a silent bridge makes it stale', () => {
    let r = updateSocTracker(initialSocTracker(60_000), { atMs: T0_MS, reportedSocPct: 70, reportedAtMs: T0_MS, linkAtMs: T0_MS, carSideWh: 0 });
    assert.equal(r.socAtMs, T0_MS);
    r = updateSocTracker(r.state, { atMs: T0_MS + 40_000, reportedSocPct: 70, reportedAtMs: T0_MS, linkAtMs: T0_MS + 39_000, carSideWh: 0 });
    assert.equal(r.socAtMs, T0_MS + 39_000);
    r = updateSocTracker(r.state, { atMs: T0_MS + 80_000, reportedSocPct: 70, reportedAtMs: T0_MS, linkAtMs: T0_MS + 39_000, carSideWh: 0 });
    assert.equal(r.socAtMs, T0_MS + 39_000, 'the age runs from the last time the link heard anything');
  });

  it('a figure ages with time: past maxAgeMs since the car last sent it, no SoC', () => {
    let r = updateSocTracker(initialSocTracker(60_000), { atMs: T0_MS, reportedSocPct: 70, reportedAtMs: T0_MS, carSideWh: 0 });
    r = updateSocTracker(r.state, { atMs: T0_MS + 3600_000, reportedSocPct: 70, reportedAtMs: T0_MS, carSideWh: 0, maxAgeMs: 3600_000 });
    assert.equal(r.socPct, 70);
    r = updateSocTracker(r.state, { atMs: T0_MS + 3600_001, reportedSocPct: 70, reportedAtMs: T0_MS, carSideWh: 0, maxAgeMs: 3600_000 });
    assert.deepEqual([r.socSource, r.socPct, r.expired, r.measuredAtMs], ['none', undefined, 'age', T0_MS]);
    // the car sending its figure again (even the same one) makes it usable again
    r = updateSocTracker(r.state, { atMs: T0_MS + 3700_000, reportedSocPct: 70, reportedAtMs: T0_MS + 3700_000, carSideWh: 0, maxAgeMs: 3600_000 });
    assert.equal(r.socPct, 70);
  });

  it('a figure ages with throughput: past maxThroughputPct of the capacity moved since, no SoC', () => {
    // 20 % of 50 kWh = 10 kWh either way, after the car's last figure change
    let r = updateSocTracker(initialSocTracker(50_000), { atMs: T0_MS, reportedSocPct: 50, carSideWh: 0 });
    r = updateSocTracker(r.state, { atMs: T0_MS + 1000, carSideWh: 6000, maxThroughputPct: 20 });
    r = updateSocTracker(r.state, { atMs: T0_MS + 2000, carSideWh: -4000, maxThroughputPct: 20 });
    assert.deepEqual([r.socSource, r.socPct], ['tracked', 54]);
    r = updateSocTracker(r.state, { atMs: T0_MS + 3000, carSideWh: -1, maxThroughputPct: 20 });
    assert.deepEqual([r.socSource, r.socPct, r.expired], ['none', undefined, 'throughput']);
    // a new figure from the car starts a new count
    r = updateSocTracker(r.state, { atMs: T0_MS + 4000, reportedSocPct: 53, carSideWh: 0, maxThroughputPct: 20 });
    assert.deepEqual([r.socSource, r.socPct], ['vehicle', 53]);
  });
});

describe('SoC tracker (pure)', () => {
  it('without a reported SoC ever and without capacity: none', () => {
    let s = initialSocTracker();
    for (let i = 0; i < 5; i++) {
      const r = updateSocTracker(s, { atMs: T0_MS + i * 1000, carSideWh: 100 });
      assert.equal(r.socSource, 'none');
      assert.equal(r.socPct, undefined);
      s = r.state;
    }
  });

  it('a capacity without a known point is still none; a report without capacity tracks nothing after it stops', () => {
    let r = updateSocTracker(initialSocTracker(60_000), { atMs: T0_MS, carSideWh: 500 });
    assert.equal(r.socSource, 'none');
    r = updateSocTracker(initialSocTracker(), { atMs: T0_MS, reportedSocPct: 50, carSideWh: 0 });
    assert.equal(r.socSource, 'vehicle');
    r = updateSocTracker(r.state, { atMs: T0_MS + 1000, carSideWh: 600 });
    assert.equal(r.socSource, 'none');
    // the capacity arriving later (the homeowner configured it) makes the tracked figure usable
    r = updateSocTracker(r.state, { atMs: T0_MS + 2000, carSideWh: 600, capacityWh: 60_000 });
    assert.equal(r.socSource, 'tracked');
    assert.ok(Math.abs((r.socPct ?? 0) - 52) < 1e-9);
  });

  it('the car reports: vehicle; reports stop: tracked from the last report; a new report re-anchors', () => {
    let r = updateSocTracker(initialSocTracker(50_000), { atMs: T0_MS, reportedSocPct: 40, reportedAtMs: T0_MS - 500, carSideWh: 0 });
    assert.deepEqual([r.socSource, r.socPct, r.socAtMs, r.measuredAtMs], ['vehicle', 40, T0_MS, T0_MS - 500]);
    r = updateSocTracker(r.state, { atMs: T0_MS + 1000, carSideWh: 1000 });
    assert.deepEqual([r.socSource, r.socPct, r.socAtMs], ['tracked', 42, T0_MS + 1000]);
    r = updateSocTracker(r.state, { atMs: T0_MS + 2000, carSideWh: -2000 });
    assert.equal(r.socPct, 38);
    r = updateSocTracker(r.state, { atMs: T0_MS + 3000, reportedSocPct: 37, carSideWh: 10 });
    assert.deepEqual([r.socSource, r.socPct, r.state.anchorSocPct, r.state.integratedWh], ['vehicle', 37, 37, 0]);
  });

  it('a repeated figure (a confirmation) keeps the anchor and the energy since it', () => {
    let r = updateSocTracker(initialSocTracker(50_000), { atMs: T0_MS, reportedSocPct: 60, carSideWh: 0 });
    r = updateSocTracker(r.state, { atMs: T0_MS + 1000, reportedSocPct: 60, carSideWh: 200 });
    r = updateSocTracker(r.state, { atMs: T0_MS + 2000, reportedSocPct: 60, carSideWh: 200 });
    assert.equal(r.socSource, 'vehicle');
    assert.equal(r.state.integratedWh, 400);
    assert.ok(Math.abs((r.trackedSocPct ?? 0) - 60.8) < 1e-9);
    // after a gap the same figure is a new measurement
    r = updateSocTracker(r.state, { atMs: T0_MS + 3000, carSideWh: 0 });
    r = updateSocTracker(r.state, { atMs: T0_MS + 4000, reportedSocPct: 60, carSideWh: 0 });
    assert.equal(r.state.integratedWh, 0);
  });

  it('a known SoC from the runtime becomes the anchor, still tracked', () => {
    let r = updateSocTracker(initialSocTracker(40_000), { atMs: T0_MS, knownSocPct: 100, carSideWh: 0 });
    assert.deepEqual([r.socSource, r.socPct], ['tracked', 100]);
    r = updateSocTracker(r.state, { atMs: T0_MS + 1000, carSideWh: -4000 });
    assert.equal(r.socPct, 90);
  });

  it('ignores out-of-range reports and non-finite energy', () => {
    let r = updateSocTracker(initialSocTracker(10_000), { atMs: T0_MS, reportedSocPct: 50, carSideWh: 0 });
    r = updateSocTracker(r.state, { atMs: T0_MS + 1, reportedSocPct: 140, carSideWh: Number.NaN });
    assert.deepEqual([r.socSource, r.socPct], ['tracked', 50]);
    r = updateSocTracker(r.state, { atMs: T0_MS + 2, reportedSocPct: -1, carSideWh: Number.POSITIVE_INFINITY });
    assert.deepEqual([r.socSource, r.socPct], ['tracked', 50]);
  });

  const step = fc.record({
    reportedSocPct: fc.option(fc.double({ min: -20, max: 120, noNaN: true }), { nil: undefined, freq: 4 }),
    carSideWh: fc.double({ min: -30_000, max: 30_000, noNaN: true }),
    capacityWh: fc.option(fc.double({ min: 1, max: 200_000, noNaN: true }), { nil: undefined, freq: 3 }),
    knownSocPct: fc.option(fc.double({ min: 0, max: 100, noNaN: true }), { nil: undefined, freq: 10 }),
  });

  it('property: the SoC is always within [0, 100], and none only without a known point or a capacity', () => {
    fc.assert(
      fc.property(fc.option(fc.double({ min: 1, max: 200_000, noNaN: true }), { nil: undefined }), fc.array(step, { maxLength: 60 }), (cap, steps) => {
        let s: SocTrackerState = initialSocTracker(cap);
        steps.forEach((st, i) => {
          const r = updateSocTracker(s, { atMs: T0_MS + i * 1000, ...st });
          s = r.state;
          if (r.socPct !== undefined) assert.ok(r.socPct >= 0 && r.socPct <= 100, `socPct ${r.socPct}`);
          if (r.trackedSocPct !== undefined) assert.ok(r.trackedSocPct >= 0 && r.trackedSocPct <= 100);
          if (r.socSource === 'none') assert.ok(s.anchorSocPct === undefined || s.capacityWh === undefined || r.expired !== undefined);
          else assert.notEqual(r.socPct, undefined);
          if (r.socSource === 'vehicle') assert.equal(r.socPct, st.reportedSocPct);
          // one SoC for safety: never above what the car reports
          if (r.socPct !== undefined && st.reportedSocPct !== undefined && st.reportedSocPct >= 0 && st.reportedSocPct <= 100) assert.ok(r.socPct <= st.reportedSocPct);
        });
      }),
      { numRuns: 300 },
    );
  });

  it('property: without reports, tracked = anchor + energy / capacity while it stays inside the battery', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: 100, noNaN: true }),
        fc.double({ min: 1_000, max: 200_000, noNaN: true }),
        fc.array(fc.double({ min: -2_000, max: 2_000, noNaN: true }), { maxLength: 80 }),
        (anchor, cap, deltas) => {
          let r = updateSocTracker(initialSocTracker(cap), { atMs: T0_MS, reportedSocPct: anchor, carSideWh: 0 });
          let sum = 0;
          let inside = true;
          deltas.forEach((d, i) => {
            r = updateSocTracker(r.state, { atMs: T0_MS + (i + 1) * 1000, carSideWh: d, ...UNBOUNDED });
            sum += d;
            const expected = anchor + (sum / cap) * 100;
            if (expected < 0 || expected > 100) inside = false;
            assert.equal(r.socSource, 'tracked');
            if (inside) assert.ok(Math.abs((r.socPct ?? NaN) - expected) < 1e-6, `${r.socPct} vs ${expected}`);
            assert.ok(r.socPct! >= 0 && r.socPct! <= 100);
          });
        },
      ),
      { numRuns: 300 },
    );
  });

  it('property: energy past either end of the battery is not counted (the car stopped it)', () => {
    fc.assert(
      fc.property(fc.double({ min: 1_000, max: 100_000, noNaN: true }), fc.double({ min: 1, max: 5, noNaN: true }), (cap, overshoot) => {
        let r = updateSocTracker(initialSocTracker(cap), { atMs: T0_MS, reportedSocPct: 50, carSideWh: 0 });
        r = updateSocTracker(r.state, { atMs: T0_MS + 1, carSideWh: cap * overshoot, ...UNBOUNDED });
        assert.equal(r.socPct, 100);
        r = updateSocTracker(r.state, { atMs: T0_MS + 2, carSideWh: -cap * 0.25, ...UNBOUNDED });
        assert.ok(Math.abs(r.socPct! - 75) < 1e-6);
      }),
      { numRuns: 200 },
    );
  });

  it('session counters: deltas signed, a reset or a missing counter moves nothing', () => {
    assert.equal(sessionCounterDeltaWh(undefined, { chargedWh: 10 }), 0);
    assert.equal(sessionCounterDeltaWh({ chargedWh: 10, dischargedWh: 5 }, { chargedWh: 25, dischargedWh: 5 }), 15);
    assert.equal(sessionCounterDeltaWh({ chargedWh: 10, dischargedWh: 5 }, { chargedWh: 10, dischargedWh: 45 }), -40);
    assert.equal(sessionCounterDeltaWh({ chargedWh: 900, dischargedWh: 50 }, { chargedWh: 0, dischargedWh: 0 }), 0);
    assert.equal(sessionCounterDeltaWh({ chargedWh: 10 }, { dischargedWh: 3 }), 0);
  });
});

/** Charge 20 → 100 % then discharge to 20 % in 60 s steps, calling `onStep` after each. */
function fullCycle(car: SimCar, onStep: (i: number) => void | Promise<void>): Promise<void> {
  return (async () => {
    let i = 0;
    // bounded: the taper above 80 % makes the last per mille slow (about 350 steps from 80 to 99.9 %)
    for (; i < 2000 && car.socPct < 99.9; i++) {
      car.step(11_000, 60);
      await onStep(i);
    }
    assert.ok(car.socPct >= 99.9);
    for (let j = 0; j < 1000 && car.socPct > 20; j++, i++) {
      car.step(-Math.min(10_000, ((car.socPct - 20) / 100) * car.capacityWh * 60), 60);
      await onStep(i);
    }
    assert.ok(Math.abs(car.socPct - 20) < 1e-6);
  })();
}

describe('SoC tracked over a full cycle of a car that sends no SoC', () => {
  it('from SimCar car-side energy: within 1 % of the battery all the way', async () => {
    const car = new SimCar({ capacityWh: 60_000, socPct: 20, maxChargeW: 11_000, maxDischargeW: 10_000 });
    // the homeowner configured the capacity; the known point is the car's one report at plug-in
    let r = updateSocTracker(initialSocTracker(60_000), { atMs: T0_MS, reportedSocPct: 20, carSideWh: 0 });
    let last = { chargedWh: car.chargedWh, dischargedWh: car.dischargedWh };
    let worst = 0;
    await fullCycle(car, (i) => {
      const cur = { chargedWh: car.chargedWh, dischargedWh: car.dischargedWh };
      r = updateSocTracker(r.state, { atMs: T0_MS + (i + 1) * 60_000, carSideWh: sessionCounterDeltaWh(last, cur), ...UNBOUNDED });
      last = cur;
      assert.equal(r.socSource, 'tracked');
      worst = Math.max(worst, Math.abs(r.socPct! - car.socPct));
    });
    assert.ok(worst < 1, `worst error ${worst} %`);
  });

  it('without a configured capacity nothing is tracked (and the car offers no SoC for discharge)', async () => {
    const car = new SimCar({ capacityWh: 60_000, socPct: 20, maxChargeW: 11_000, maxDischargeW: 10_000 });
    let r = updateSocTracker(initialSocTracker(undefined), { atMs: T0_MS, carSideWh: 0 });
    await fullCycle(car, (i) => {
      r = updateSocTracker(r.state, { atMs: T0_MS + (i + 1) * 60_000, carSideWh: 183 });
      assert.equal(r.socSource, 'none');
      assert.equal(r.socPct, undefined);
    });
  });

  describe('through the simulated bridge and the EVerest link (AC session: soc omitted after plug-in)', () => {
    let broker: TestBroker;
    before(async () => {
      broker = await startBroker();
    });
    after(async () => {
      await broker.stop();
    });

    it('tracks from session_info counters within 1 %', async () => {
      const clock = new VirtualClock(T0_MS);
      const car = new SimCar({ capacityWh: 60_000, socPct: 20, maxChargeW: 11_000, maxDischargeW: 10_000 });
      const link = new EverestVehicleLink({ url: broker.url, evseId: 'evse_manager', clock, forwardLimit: false });
      await link.open();
      const bridge = await startSimEverestBridge({ url: broker.url, evseId: 'evse_manager', car, clock, periodMs: 60_000 });
      const sent = () => Object.values(bridge.published).reduce((a, b) => a + b, 0);
      try {
        await waitFor(() => link.state().socPct === 20, 'the one SoC report');
        bridge.omitSoc = true;
        let r = updateSocTracker(initialSocTracker(), { atMs: clock.nowMs(), reportedSocPct: 20, reportedAtMs: link.state().socAtMs, carSideWh: 0 });
        let prev = { chargedWh: link.state().chargedWh, dischargedWh: link.state().dischargedWh };
        let worst = 0;
        let sawNoSoc = false;
        await fullCycle(car, async () => {
          clock.advance(60_000);
          await waitFor(() => link.counters.messages >= sent(), 'the period arrived');
          const v = link.state();
          sawNoSoc ||= v.socPct === undefined;
          const cur = { chargedWh: v.chargedWh, dischargedWh: v.dischargedWh };
          // the runtime's tick: configured capacity (the car sends none in this session), the car's report if any
          r = updateSocTracker(r.state, { atMs: clock.nowMs(), reportedSocPct: v.socPct, reportedAtMs: v.socAtMs, carSideWh: sessionCounterDeltaWh(prev, cur), capacityWh: 60_000, ...UNBOUNDED });
          prev = cur;
          worst = Math.max(worst, Math.abs(r.socPct! - car.socPct));
        });
        assert.ok(sawNoSoc);
        assert.equal(r.socSource, 'tracked');
        assert.ok(worst < 1, `worst error ${worst} %`);
      } finally {
        await bridge.stop();
        await link.close();
      }
    });
  });
});
