/**
 * Behavioural contract of the inverter port (hal/ports.ts InverterPort), shared by every implementation:
 * the in-process simulator and the SunSpec driver talking to the simulated SunSpec server. Each suite
 * takes a builder that hands back the port and the knobs a test needs to play the device's side.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { InverterPort } from '../../hal/ports.ts';

export interface InverterHarness {
  port: InverterPort;
  /** Current time of the clock the port was given (epoch ms). */
  nowMs(): number;
  /** Run the power stage for `dtS` seconds with the grid on the bus. */
  step(dtS: number): void;
  /** The device goes away (stops answering, or its link reports a fault). */
  vanish(): Promise<void>;
  /** Stop everything the builder started. */
  dispose(): Promise<void>;
}

export function inverterContract(name: string, build: () => Promise<InverterHarness>): void {
  describe(`inverter port contract: ${name}`, () => {
    const withPort = async (fn: (h: InverterHarness) => Promise<void>): Promise<void> => {
      const h = await build();
      try {
        await fn(h);
      } finally {
        await h.port.close();
        await h.dispose();
      }
    };

    it('open() then refresh() gives a timestamped reading and the ratings', () =>
      withPort(async (h) => {
        await h.port.open();
        await h.port.refresh();
        const s = h.port.state();
        assert.ok(s.reading, 'a reading after refresh');
        assert.equal(typeof s.reading.atMs, 'number');
        assert.ok(Number.isFinite(s.reading.atMs));
        assert.ok(s.reading.atMs <= h.nowMs());
        assert.ok(Array.isArray(s.reading.alarms));
        assert.equal(typeof s.reading.gridForming, 'boolean');
        assert.ok(s.ratings && s.ratings.ratedW > 0 && s.ratings.maxChargeW > 0 && s.ratings.maxDischargeW > 0);
        assert.ok(s.ratings.efficiency > 0 && s.ratings.efficiency <= 1);
        assert.equal(s.fault, undefined);
      }));

    it('setPowerW() is reflected in setpointW and acPowerW after the device steps, with positive = into the car', () =>
      withPort(async (h) => {
        await h.port.open();
        await h.port.setPowerW(3000);
        h.step(1);
        await h.port.refresh();
        let r = h.port.state().reading!;
        assert.equal(r.setpointW, 3000);
        assert.ok(Math.abs(r.acPowerW - 3000) <= 30, `acPowerW ${r.acPowerW}`);
        await h.port.setPowerW(-2000);
        h.step(1);
        await h.port.refresh();
        r = h.port.state().reading!;
        assert.equal(r.setpointW, -2000);
        assert.ok(Math.abs(r.acPowerW + 2000) <= 20, `acPowerW ${r.acPowerW}`);
        await h.port.setPowerW(0);
        h.step(1);
        await h.port.refresh();
        assert.equal(h.port.state().reading!.acPowerW, 0);
      }));

    it('commands issued without waiting for each other: the latest setpoint is the one in force', () =>
      withPort(async (h) => {
        await h.port.open();
        await Promise.all([h.port.setPowerW(1000), h.port.setGridForming(false), h.port.setPowerW(-1500), h.port.setPowerW(2500), h.port.refresh()]);
        h.step(1);
        await h.port.refresh();
        const r = h.port.state().reading!;
        assert.equal(r.setpointW, 2500);
        assert.equal(r.gridForming, false);
        assert.equal(h.port.state().fault, undefined);
      }));

    it('a command outside the ratings is clamped, and the clamp shows in setpointW', () =>
      withPort(async (h) => {
        await h.port.open();
        const rt = h.port.state().ratings!;
        await h.port.setPowerW(10 * rt.maxChargeW);
        await h.port.refresh();
        assert.equal(h.port.state().reading!.setpointW, rt.maxChargeW);
        await h.port.setPowerW(-10 * rt.maxDischargeW);
        await h.port.refresh();
        assert.equal(h.port.state().reading!.setpointW, -rt.maxDischargeW);
      }));

    it('a non-finite command (NaN, ±Infinity) is ignored: the last command stays in force, no fault', () =>
      withPort(async (h) => {
        await h.port.open();
        await h.port.setPowerW(1500);
        await h.port.refresh();
        for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
          await h.port.setPowerW(bad);
          h.step(1);
          await h.port.refresh();
          assert.equal(h.port.state().reading!.setpointW, 1500, `after setPowerW(${bad})`);
        }
        assert.equal(h.port.state().fault, undefined);
      }));

    it('after open, nothing rejects when the device vanishes: the fault is set with code, message and time', () =>
      withPort(async (h) => {
        await h.port.open();
        const off = h.port.onChange(() => undefined);
        assert.equal(typeof off, 'function');
        await h.vanish();
        await h.port.refresh();
        await h.port.setPowerW(1000);
        await h.port.setGridForming(false);
        await h.port.refresh();
        const f = h.port.state().fault;
        assert.ok(f, 'fault set');
        assert.ok(f.code.length > 0);
        assert.ok(f.message.length > 0);
        assert.ok(f.sinceMs <= h.nowMs());
        assert.ok(h.port.state().reading, 'the last good reading is kept');
        off();
      }));

    it('close() resolves, also twice', () =>
      withPort(async (h) => {
        await h.port.open();
        await h.port.close();
        await h.port.close();
      }));
  });
}
