import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  checkMeterSettings, initialMeterState, integratePowerWh, meterTick, plausibleTickWh,
  type MeterReading, type MeterSettings, type MeterSource, type MeterState,
} from '../../src/control/metering.ts';

const settings: MeterSettings = { efficiency: 0.95, maxPowerW: 11000, counterModulusWh: 1_000_000 };
const close = (a: number, b: number, eps = 1e-6) => assert.ok(Math.abs(a - b) <= eps, `${a} != ${b} (±${eps})`);

function run(readings: MeterReading[], s: MeterSettings = settings) {
  let state: MeterState = initialMeterState();
  const ticks = [];
  for (const r of readings) {
    const t = meterTick(state, r, s);
    state = t.state;
    ticks.push(t);
  }
  return ticks;
}

describe('metering: table', () => {
  const T0 = 1_800_000_000_000;
  // every row: two readings one second apart, then what the second tick books
  const cases: { name: string; a: Omit<MeterReading, 'atMs'>; b: Omit<MeterReading, 'atMs'>; exportedWh: number; importedWh: number; exp: MeterSource; imp: MeterSource }[] = [
    { name: 'counters move', a: { acPowerW: -3600, exportedWh: 100, importedWh: 50 }, b: { acPowerW: -3600, exportedWh: 101, importedWh: 50 }, exportedWh: 1, importedWh: 0, exp: 'counter', imp: 'counter' },
    { name: 'export counter wraps', a: { acPowerW: -7200, exportedWh: 999_999, importedWh: 5 }, b: { acPowerW: -7200, exportedWh: 1, importedWh: 5 }, exportedWh: 2, importedWh: 0, exp: 'wrap', imp: 'counter' },
    { name: 'export counter resets (inverter replaced)', a: { acPowerW: -3600, exportedWh: 500_000, importedWh: 5 }, b: { acPowerW: -3600, exportedWh: 0, importedWh: 0 }, exportedWh: 1, importedWh: 0, exp: 'reset', imp: 'reset' },
    { name: 'counter leaps up (new inverter with a higher count)', a: { acPowerW: -3600, exportedWh: 10, importedWh: 5 }, b: { acPowerW: -3600, exportedWh: 70_000, importedWh: 5 }, exportedWh: 1, importedWh: 0, exp: 'jump', imp: 'counter' },
    { name: 'counters missing: integrate power', a: { acPowerW: -3600 }, b: { acPowerW: -7200 }, exportedWh: 1.5, importedWh: 0, exp: 'missing', imp: 'missing' },
    { name: 'counter appears: integrate this tick, count from the next', a: { acPowerW: 3600 }, b: { acPowerW: 3600, importedWh: 42, exportedWh: 7 }, exportedWh: 0, importedWh: 1, exp: 'baseline', imp: 'baseline' },
    { name: 'counter vanishes: integrate', a: { acPowerW: 3600, importedWh: 42 }, b: { acPowerW: 3600 }, exportedWh: 0, importedWh: 1, exp: 'missing', imp: 'missing' },
    { name: 'power changes sign within the tick', a: { acPowerW: 3600 }, b: { acPowerW: -3600 }, exportedWh: 0.25, importedWh: 0.25, exp: 'missing', imp: 'missing' },
    { name: 'garbage counter (NaN) is missing', a: { acPowerW: -3600, exportedWh: 10 }, b: { acPowerW: -3600, exportedWh: Number.NaN }, exportedWh: 1, importedWh: 0, exp: 'missing', imp: 'missing' },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const [first, second] = run([{ atMs: T0, ...c.a }, { atMs: T0 + 1000, ...c.b }]);
      assert.deepEqual(first.delta, { exportedWh: 0, importedWh: 0, carSideWh: 0 });
      close(second.delta.exportedWh, c.exportedWh);
      close(second.delta.importedWh, c.importedWh);
      close(second.delta.carSideWh, c.importedWh * 0.95 - c.exportedWh / 0.95);
      assert.equal(second.exported, c.exp);
      assert.equal(second.imported, c.imp);
    });
  }

  it('after a reset, counting resumes from the new counter value', () => {
    const t = run([
      { atMs: T0, acPowerW: -3600, exportedWh: 500_000 },
      { atMs: T0 + 1000, acPowerW: -3600, exportedWh: 0 },
      { atMs: T0 + 2000, acPowerW: -3600, exportedWh: 1 },
    ]);
    assert.equal(t[2].exported, 'counter');
    close(t[2].delta.exportedWh, 1);
  });

  it('a repeated reading moves nothing and keeps the state', () => {
    const [a, b] = run([{ atMs: T0, acPowerW: -3600, exportedWh: 5 }, { atMs: T0, acPowerW: -3600, exportedWh: 6 }]);
    assert.deepEqual(b.delta, { exportedWh: 0, importedWh: 0, carSideWh: 0 });
    assert.deepEqual(b.state, a.state);
  });

  it('a long gap is not integrated (power unknown), but counters still account for it', () => {
    const noCounter = run([{ atMs: T0, acPowerW: -7000 }, { atMs: T0 + 600_000, acPowerW: -7000 }]);
    assert.equal(noCounter[1].delta.exportedWh, 0);
    const withCounter = run([{ atMs: T0, acPowerW: -7000, exportedWh: 100 }, { atMs: T0 + 600_000, acPowerW: 0, exportedWh: 800 }]);
    assert.equal(withCounter[1].delta.exportedWh, 700);
  });

  it('integratePowerWh splits a sign change at the zero crossing', () => {
    const r = integratePowerWh(3000, -1000, 3600);
    close(r.importedWh, (3000 * 0.75) / 2);
    close(r.exportedWh, (1000 * 0.25) / 2);
  });

  it('bad settings are named', () => {
    assert.throws(() => checkMeterSettings({ efficiency: 0, maxPowerW: 1 }), /efficiency/);
    assert.throws(() => checkMeterSettings({ efficiency: 0.9, maxPowerW: -1 }), /maxPowerW/);
    assert.throws(() => checkMeterSettings({ efficiency: 0.9, maxPowerW: 1, counterModulusWh: 0 }), /counterModulusWh/);
    checkMeterSettings(settings);
  });
});

describe('metering: properties', () => {
  const T0 = 1_800_000_000_000;
  const modulus = 65_536;
  const s: MeterSettings = { efficiency: 0.9, maxPowerW: 11000, counterModulusWh: modulus };

  it('sum of deltas equals the counter delta modulo wrap', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: modulus - 1 }),
        fc.integer({ min: 0, max: modulus - 1 }),
        fc.array(fc.record({ dtMs: fc.integer({ min: 100, max: 5000 }), expFrac: fc.double({ min: 0, max: 1, noNaN: true }), impFrac: fc.double({ min: 0, max: 1, noNaN: true }) }), { minLength: 1, maxLength: 200 }),
        (exp0, imp0, steps) => {
          let atMs = T0;
          let exp = exp0;
          let imp = imp0;
          let totalExp = 0;
          let totalImp = 0;
          const readings: MeterReading[] = [{ atMs, acPowerW: 0, exportedWh: exp, importedWh: imp }];
          for (const st of steps) {
            atMs += st.dtMs;
            // a step no larger than the rating could deliver: always real energy
            const maxWh = (s.maxPowerW * st.dtMs) / 3_600_000;
            const dExp = st.expFrac * maxWh;
            const dImp = st.impFrac * maxWh;
            totalExp += dExp;
            totalImp += dImp;
            exp = (exp + dExp) % modulus;
            imp = (imp + dImp) % modulus;
            readings.push({ atMs, acPowerW: -1000, exportedWh: exp, importedWh: imp });
          }
          const ticks = run(readings, s);
          const sumExp = ticks.reduce((a, t) => a + t.delta.exportedWh, 0);
          const sumImp = ticks.reduce((a, t) => a + t.delta.importedWh, 0);
          close(sumExp, totalExp, 1e-6);
          close(sumImp, totalImp, 1e-6);
        },
      ),
      { numRuns: 300 },
    );
  });

  const anyCounter = fc.option(fc.oneof(fc.double({ min: 0, max: 2 * modulus, noNaN: true }), fc.constant(Number.NaN), fc.constant(-5)), { nil: undefined });
  const anyReadings = fc.array(
    fc.record({ dtMs: fc.integer({ min: -1000, max: 20_000 }), acPowerW: fc.double({ min: -11000, max: 11000, noNaN: true }), exportedWh: anyCounter, importedWh: anyCounter }),
    { minLength: 1, maxLength: 100 },
  );

  it('never negative, never more than the inverter could move in the tick (no jump on reset)', () => {
    fc.assert(
      fc.property(anyReadings, (steps) => {
        let atMs = T0;
        const readings = steps.map((st) => ({ ...st, atMs: (atMs += st.dtMs) }));
        for (const t of run(readings, s)) {
          for (const wh of [t.delta.exportedWh, t.delta.importedWh]) {
            assert.ok(Number.isFinite(wh) && wh >= 0, `delta ${wh}`);
            assert.ok(wh <= plausibleTickWh(s, t.dtS) + 1e-9, `delta ${wh} Wh in ${t.dtS} s is a jump`);
          }
          close(t.delta.carSideWh, t.delta.importedWh * s.efficiency - t.delta.exportedWh / s.efficiency, 1e-9);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('a reset books integrated power for that tick only', () => {
    fc.assert(
      fc.property(fc.integer({ min: 10_000, max: 60_000 }), fc.integer({ min: 0, max: 100 }), fc.double({ min: -11000, max: 0, noNaN: true }), (before, after, powerW) => {
        const [, t] = run([{ atMs: T0, acPowerW: powerW, exportedWh: before }, { atMs: T0 + 1000, acPowerW: powerW, exportedWh: after }], { ...s, counterModulusWh: undefined });
        assert.equal(t.exported, 'reset');
        close(t.delta.exportedWh, -powerW / 3600, 1e-9);
      }),
    );
  });
});
