/**
 * What the driver does with setpoints the device cannot hold, and with a device that does not follow its
 * setpoint (issue 14, point 7): both are port faults with their cause, never a silent `active`.
 * Driver tests run against the simulated SunSpec server over Modbus TCP on 127.0.0.1 with a virtual clock;
 * the shared checker and the command queue are tested on their own in command-pure.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeRaw } from '../../hal/inverter/sunspec/codec.ts';
import { VirtualClock } from '../../hal/sim/virtual-clock.ts';
import { GRID_ON, rig, type Rig } from './harness.ts';

const T0 = Date.UTC(2026, 0, 15, 12);

/** WSet as the device holds it, in W as the port signs them (this device's own WSet_SF is -1). */
function wsetW(r: Rig): number {
  const raw = decodeRaw('int32', r.server.registers(r.server.addressOf(704, 'WSet'), 2)) as number;
  return raw === 0 ? 0 : -raw / 10;
}

/** Serve a scale factor other than the device's own (as a device with another resolution would report it). */
function serveSf(r: Rig, point: string, sf: number): void {
  r.server.faults.overrides.set(r.server.addressOf(704, point), sf & 0xffff);
}

test('setpoint unrepresentable with WSet_SF -10 (-11 kW needs a raw value beyond int32): a port fault naming the point and SF, nothing written, no flapping', async () => {
  const clock = new VirtualClock(T0);
  const r = await rig({ clock });
  try {
    await r.driver.open();
    await r.driver.setPowerW(2000);
    assert.equal(wsetW(r), 2000);
    serveSf(r, 'WSet_SF', -10);
    await r.driver.refresh();
    await r.driver.setPowerW(-11000);
    let f = r.driver.state().fault;
    assert.equal(f?.code, 'unrepresentable', f?.message);
    assert.match(f!.message, /setpoint -11000 W: 704 WSet \(register \d+\) with WSet_SF = -10 cannot hold 11000/);
    assert.equal(wsetW(r), 2000, 'nothing else was written in its place');
    for (let i = 0; i < 3; i++) {
      clock.advance(1000);
      await r.driver.refresh();
      f = r.driver.state().fault;
      assert.equal(f?.code, 'unrepresentable', `tick ${i}: the fault stays while the command stands (${f?.code ?? 'none'})`);
    }
    // a command the device can hold (0 W is, at any SF) clears it
    await r.driver.setPowerW(0);
    assert.equal(r.driver.state().fault, undefined);
  } finally {
    await r.dispose();
  }
});

test('setpoint unrepresentable with WSet_SF +10 (-11 kW rounds to 0): a port fault, not a silent 0 W', async () => {
  const clock = new VirtualClock(T0);
  const r = await rig({ clock });
  try {
    await r.driver.open();
    await r.driver.setPowerW(2000);
    serveSf(r, 'WSet_SF', 10);
    await r.driver.refresh();
    await r.driver.setPowerW(-11000);
    const f = r.driver.state().fault;
    assert.equal(f?.code, 'unrepresentable', f?.message);
    assert.match(f!.message, /WSet_SF = 10 cannot hold 11000: the nearest value it can hold is 0/);
    assert.notEqual(wsetW(r), 0, 'the command was not turned into 0 W');
    clock.advance(1000);
    await r.driver.refresh();
    assert.equal(r.driver.state().fault?.code, 'unrepresentable');
  } finally {
    await r.dispose();
  }
});

/** Serve 701 W as this raw value (W_SF 0 on this device; 701 W is positive when the car discharges). */
function serveGenW(r: Rig, genW: number | undefined): void {
  const at = r.server.addressOf(701, 'W');
  if (genW === undefined) r.server.faults.overrides.delete(at);
  else r.server.faults.overrides.set(at, genW & 0xffff);
}

/** One tick: the clock moves 1 s, the power stage steps, the driver polls. */
async function tick(r: Rig, clock: VirtualClock): Promise<void> {
  clock.advance(1000);
  r.inverter.step(1, GRID_ON);
  await r.driver.refresh();
}

test('an inverter reporting 20 kW of charging while commanded to discharge 11 kW is a not_following fault with the cause; it clears when the device follows again', async () => {
  const clock = new VirtualClock(T0);
  const r = await rig({ clock });
  try {
    await r.driver.open();
    await r.driver.setPowerW(-11000);
    serveGenW(r, -20000);
    // settle time for 0 -> -11 kW on an 11 kW inverter: 5 s + 11 kW at 20 % of 11 kW per second = 10 s
    for (let s = 1; s < 10; s++) {
      await tick(r, clock);
      assert.equal(r.driver.state().fault, undefined, `t = ${s} s, still settling: ${r.driver.state().fault?.message}`);
    }
    await tick(r, clock);
    await tick(r, clock);
    const f = r.driver.state().fault;
    assert.equal(f?.code, 'not_following', f?.message);
    assert.match(f!.message, /commanded -11000 W \(discharging\), measured 20000 W \(charging\) \(power flows the wrong way; tolerance ±550 W\)/);
    serveGenW(r, undefined);
    await tick(r, clock);
    assert.equal(r.driver.state().fault, undefined, 'the device follows again');
  } finally {
    await r.dispose();
  }
});

test('a device within the tolerance is not a fault; a ramp inside the settle time is not; nothing flowing after it is', async () => {
  const clock = new VirtualClock(T0);
  const r = await rig({ clock });
  try {
    await r.driver.open();
    await r.driver.setPowerW(-11000);
    serveGenW(r, 10500); // 500 W short of the command, inside max(5 % x 11 kW, 300 W) = 550 W
    for (let s = 0; s < 15; s++) await tick(r, clock);
    assert.equal(r.driver.state().fault, undefined, r.driver.state().fault?.message);

    await r.driver.setPowerW(6000); // a swing of 17 kW: 5 s + 17 kW / 2.2 kW/s = 12.7 s to settle
    for (let s = 1; s <= 12; s++) {
      serveGenW(r, -Math.min(6000, 500 * s)); // ramping slowly up to the new setpoint
      await tick(r, clock);
      assert.equal(r.driver.state().fault, undefined, `t = ${s} s: ${r.driver.state().fault?.message}`);
    }
    serveGenW(r, 0);
    await tick(r, clock);
    await tick(r, clock);
    assert.equal(r.driver.state().fault?.code, 'not_following');
    assert.match(r.driver.state().fault!.message, /commanded 6000 W \(charging\), measured 0 W \(no power flows/);
  } finally {
    await r.dispose();
  }
});
