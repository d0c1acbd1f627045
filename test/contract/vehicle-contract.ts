/**
 * Behavioural contract of the vehicle link port, shared by every implementation: the in-process
 * SimVehicleLink and the EVerest link over MQTT with the simulated bridge. Each builder hands back a port
 * wired to a SimCar and the knobs the suite needs to move the car's data to the port.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { VehicleLinkPort, VehicleState } from '../../hal/ports.ts';
import type { SimCar } from '../../hal/sim/car.ts';

export interface VehicleHarness {
  port: VehicleLinkPort;
  car: SimCar;
  /** Move the car's present state to the port (a bridge period delivered, or a refresh). */
  settle(): Promise<void>;
  /** Make the link to the car vanish (the broker stops, the bridge dies). */
  cutLink(): Promise<void>;
  /** Release everything the harness started; safe after any test step. */
  dispose(): Promise<void>;
}

/** The port's readings are of the right types and in range, whatever the back-end. */
export function assertVehicleStateShape(s: VehicleState, where = 'state()'): void {
  assert.equal(typeof s, 'object', where);
  assert.ok(typeof s.atMs === 'number' && Number.isFinite(s.atMs), `${where}: atMs`);
  assert.equal(typeof s.connected, 'boolean', `${where}: connected`);
  for (const k of ['socPct', 'minSocPct', 'targetSocPct', 'maxSocPct'] as const)
    if (s[k] !== undefined) assert.ok(Number.isFinite(s[k]) && s[k]! >= 0 && s[k]! <= 100, `${where}: ${k}=${s[k]}`);
  for (const k of ['maxChargeW', 'maxDischargeW', 'chargedWh', 'dischargedWh'] as const)
    if (s[k] !== undefined) assert.ok(Number.isFinite(s[k]) && s[k]! >= 0, `${where}: ${k}=${s[k]}`);
  for (const k of ['socAtMs', 'departureAtMs'] as const) if (s[k] !== undefined) assert.ok(Number.isFinite(s[k]), `${where}: ${k}`);
  if (s.capacityWh !== undefined) assert.ok(Number.isFinite(s.capacityWh) && s.capacityWh > 0, `${where}: capacityWh`);
  if (s.bidirectional !== undefined) assert.equal(typeof s.bidirectional, 'boolean', `${where}: bidirectional`);
  if (s.socPct !== undefined) assert.notEqual(s.socAtMs, undefined, `${where}: a SoC carries its time`);
  if (s.fault !== undefined) {
    assert.equal(typeof s.fault.code, 'string', `${where}: fault.code`);
    assert.ok(s.fault.message.length > 0, `${where}: fault.message`);
    assert.ok(Number.isFinite(s.fault.sinceMs), `${where}: fault.sinceMs`);
  }
}

export function vehicleContract(name: string, build: () => Promise<VehicleHarness>): void {
  describe(`VehicleLinkPort contract: ${name}`, () => {
    it('has kind "vehicle" and a well-formed state() even before open()', async () => {
      const h = await build();
      try {
        assert.equal(h.port.kind, 'vehicle');
        assertVehicleStateShape(h.port.state(), 'before open');
      } finally {
        await h.dispose();
      }
    });

    it('open() resolves and the car shows: connected, SoC, capacity, limits', async () => {
      const h = await build();
      try {
        await h.port.open();
        await h.settle();
        const s = h.port.state();
        assertVehicleStateShape(s, 'after open');
        assert.equal(s.connected, true);
        assert.ok(Math.abs((s.socPct ?? -1) - h.car.socPct) < 0.01, `socPct ${s.socPct} vs ${h.car.socPct}`);
        assert.equal(s.capacityWh, h.car.capacityWh);
        assert.ok((s.maxChargeW ?? 0) > 0);
        assert.equal(s.fault, undefined);
      } finally {
        await h.dispose();
      }
    });

    it('follows the car: SoC and energy after it moves', async () => {
      const h = await build();
      try {
        await h.port.open();
        await h.settle();
        h.car.step(7_000, 900);
        await h.settle();
        const s = h.port.state();
        assertVehicleStateShape(s);
        assert.ok(Math.abs((s.socPct ?? -1) - h.car.socPct) < 0.01);
        assert.ok(Math.abs((s.chargedWh ?? -1) - 1_750) < 0.01, `chargedWh ${s.chargedWh}`);
      } finally {
        await h.dispose();
      }
    });

    it('setPowerLimitW() and refresh() resolve for charge, discharge, zero and nonsense', async () => {
      const h = await build();
      try {
        await h.port.open();
        for (const w of [5_000, -5_000, 0, -0, Number.NaN, Number.POSITIVE_INFINITY]) await h.port.setPowerLimitW(w);
        await h.port.refresh();
        assertVehicleStateShape(h.port.state());
      } finally {
        await h.dispose();
      }
    });

    it('onChange() fires on unplug and plug-in, and stops after unsubscribing', async () => {
      const h = await build();
      try {
        await h.port.open();
        await h.settle();
        let n = 0;
        const off = h.port.onChange(() => n++);
        h.car.connected = false;
        await h.settle();
        assert.equal(h.port.state().connected, false);
        assert.equal(h.port.state().socPct, undefined, 'no SoC of a car that is not there');
        assert.equal(n, 1);
        off();
        h.car.connected = true;
        await h.settle();
        assert.equal(h.port.state().connected, true);
        assert.equal(n, 1);
      } finally {
        await h.dispose();
      }
    });

    it('after the link vanishes nothing rejects or throws; state() reports a fault with its cause', async () => {
      const h = await build();
      const rejections: unknown[] = [];
      const onRejection = (e: unknown) => rejections.push(e);
      process.on('unhandledRejection', onRejection);
      try {
        await h.port.open();
        await h.settle();
        await h.cutLink();
        await h.port.refresh();
        await h.port.setPowerLimitW(-3_000);
        const s = h.port.state();
        assertVehicleStateShape(s, 'after the link vanished');
        assert.ok(s.fault, 'a fault is reported');
        await new Promise((r) => setTimeout(r, 100));
        await h.port.close();
        await h.port.close();
        assert.deepEqual(rejections, []);
      } finally {
        process.off('unhandledRejection', onRejection);
        await h.dispose();
      }
    });

    it('close() resolves, twice, and without open()', async () => {
      const h = await build();
      try {
        await h.port.close();
        await h.port.open();
        await h.port.close();
        await h.port.close();
      } finally {
        await h.dispose();
      }
    });
  });
}
