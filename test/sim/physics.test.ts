/**
 * The simulated devices behave physically (issue 14, point 8): the inverter leaves grid-forming after
 * its exit delay, a stuck contactor's feedback shows where the contact really is, a hanging inverter
 * costs every call its full timeout, injected alarms are reported, the records stay bounded; and the
 * safety monitor counts what it is meant to count, from the devices alone.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SimSite } from '../../hal/sim/site.ts';
import { SimCar } from '../../hal/sim/car.ts';
import { SimInverter } from '../../hal/sim/inverter.ts';
import { SimLine } from '../../hal/sim/lines.ts';
import { BoundedLog } from '../../hal/sim/bounded-log.ts';
import { Incarnation } from '../../hal/sim/incarnation.ts';
import { SafetyMonitor } from '../../hal/sim/safety-monitor.ts';
import { VirtualClock } from '../../hal/sim/virtual-clock.ts';

const T0 = Date.UTC(2026, 10, 23, 18);

function site(o: { contactorDelayMs?: number; formingExitDelayMs?: number; reconnectDelayS?: number } = {}) {
  const clock = new VirtualClock(T0);
  const s = new SimSite({
    clock,
    vehicle: { capacityWh: 40000, socPct: 80, maxChargeW: 11000, maxDischargeW: 11000 },
    inverter: { ratedW: 11000, efficiency: 0.95, formingExitDelayMs: o.formingExitDelayMs },
    houseLoadW: 1000,
    contactorDelayMs: o.contactorDelayMs ?? 50,
    gridSenseDebounceMs: 20,
    reconnectDelayS: o.reconnectDelayS ?? 30,
  });
  return { clock, s };
}

describe('simulated inverter', () => {
  it('keeps forming for its exit delay after being told to stop (200 ms by default in a home), and a reading says so', async () => {
    const { clock, s } = site();
    await s.inverter.setGridForming(true);
    assert.equal(s.inverter.gridForming, true);
    await s.inverter.setGridForming(false);
    await s.inverter.refresh();
    assert.equal(s.inverter.state().reading?.gridForming, true, 'still forming right after the command');
    clock.advance(199);
    assert.equal(s.inverter.gridForming, true);
    clock.advance(1);
    assert.equal(s.inverter.gridForming, false);
    await s.inverter.refresh();
    assert.equal(s.inverter.state().reading?.gridForming, false);
  });

  it('told to form again during its exit delay, it keeps forming', async () => {
    const { clock, s } = site({ formingExitDelayMs: 500 });
    await s.inverter.setGridForming(true);
    await s.inverter.setGridForming(false);
    clock.advance(300);
    await s.inverter.setGridForming(true);
    clock.advance(1000);
    assert.equal(s.inverter.gridForming, true);
  });

  it('a bare SimInverter (driver tests) leaves at once unless given a delay', async () => {
    const clock = new VirtualClock(T0);
    const inv = new SimInverter({ ratedW: 11000, efficiency: 0.95 }, new SimCar({ capacityWh: 40000, socPct: 50, maxChargeW: 11000, maxDischargeW: 11000 }), clock);
    await inv.setGridForming(true);
    await inv.setGridForming(false);
    assert.equal(inv.gridForming, false);
  });

  it('hanging: every call takes the full timeout and fails with a timeout fault; the command is not taken; answering again clears it', async () => {
    const clock = new VirtualClock(T0);
    const inv = new SimInverter({ ratedW: 11000, efficiency: 0.95, hangMs: 2000 }, new SimCar({ capacityWh: 40000, socPct: 50, maxChargeW: 11000, maxDischargeW: 11000 }), clock);
    await inv.open();
    let changes = 0;
    inv.onChange(() => changes++);
    inv.faults.hang = true;
    let done = false;
    const p = inv.setPowerW(-5000).then(() => (done = true));
    await new Promise((r) => setImmediate(r));
    clock.advance(1999);
    await new Promise((r) => setImmediate(r));
    assert.equal(done, false, 'still waiting before the timeout');
    clock.advance(1);
    await p;
    assert.equal(inv.setpointW, 0, 'the command was not taken');
    assert.equal(inv.state().fault?.code, 'timeout');
    assert.match(inv.state().fault!.message, /setpoint write not answered within 2000 ms/);
    assert.equal(changes, 1);
    inv.faults.hang = false;
    await inv.refresh();
    assert.equal(inv.state().fault, undefined);
    await inv.setPowerW(-5000);
    assert.equal(inv.setpointW, -5000);
  });

  it('opening a hanging inverter rejects after the timeout with a clear error', async () => {
    const clock = new VirtualClock(T0);
    const inv = new SimInverter({ ratedW: 11000, efficiency: 0.95, hangMs: 500 }, new SimCar({ capacityWh: 40000, socPct: 50, maxChargeW: 11000, maxDischargeW: 11000 }), clock);
    inv.faults.hang = true;
    const p = assert.rejects(inv.open(), /simulated inverter: no answer within 500 ms/);
    await new Promise((r) => setImmediate(r));
    clock.advance(500);
    await p;
  });

  it('reports injected 701 alarm bits with its own', async () => {
    const { s } = site();
    s.inverter.faults.alarms = ['AC_OVER_VOLT'];
    s.setGrid(false);
    await s.inverter.refresh();
    assert.deepEqual(s.inverter.state().reading?.alarms, ['AC_OVER_VOLT', 'GRID_DISCONNECT']);
    s.inverter.faults.alarms = [];
    s.setGrid(true);
    await s.inverter.refresh();
    assert.deepEqual(s.inverter.state().reading?.alarms, []);
  });

  it('keeps a bounded command log with a total count', async () => {
    const clock = new VirtualClock(T0);
    const inv = new SimInverter({ ratedW: 11000, efficiency: 0.95, logCapacity: 10 }, new SimCar({ capacityWh: 40000, socPct: 50, maxChargeW: 11000, maxDischargeW: 11000 }), clock);
    for (let i = 0; i < 25; i++) await inv.setPowerW(i);
    assert.equal(inv.commands.length, 10);
    assert.equal(inv.commandCount, 25);
    assert.deepEqual(inv.commands.map((c) => c.value), [15, 16, 17, 18, 19, 20, 21, 22, 23, 24]);
  });
});

describe('simulated contactor', () => {
  it('follows its coil after the mechanical delay; the feedback shows the contact', async () => {
    const { clock, s } = site({ contactorDelayMs: 80 });
    await s.lines.contactor.write(0);
    assert.equal(s.contactorClosed(), true);
    clock.advance(79);
    assert.equal(s.lines.contactorFeedback.read(), 1);
    clock.advance(1);
    assert.equal(s.contactorClosed(), false);
    assert.equal(s.lines.contactorFeedback.read(), 0);
  });

  it('welded closed: does not open when commanded, and the feedback says closed', async () => {
    const { clock, s } = site();
    s.stickContactor('closed');
    await s.lines.contactor.write(0);
    clock.advance(1000);
    assert.equal(s.contactorClosed(), true);
    assert.equal(s.lines.contactorFeedback.read(), 1);
    s.stickContactor(undefined);
    clock.advance(50);
    assert.equal(s.contactorClosed(), false, 'freed, it follows the coil again');
  });

  it('stuck open: once open it does not close again, and the feedback says open', async () => {
    const { clock, s } = site();
    s.stickContactor('open');
    assert.equal(s.contactorClosed(), true, 'a contactor that will not pull in stays where it is until it drops out');
    await s.lines.contactor.write(0);
    clock.advance(50);
    assert.equal(s.contactorClosed(), false);
    await s.lines.contactor.write(1);
    clock.advance(1000);
    assert.equal(s.contactorClosed(), false);
    assert.equal(s.lines.contactorFeedback.read(), 0);
  });

  it('line writes are kept bounded', async () => {
    const line = new SimLine('x', 0);
    for (let i = 0; i < 5000; i++) await line.write((i % 2) as 0 | 1);
    assert.equal(line.writes.length, 4096);
    assert.equal(line.writeCount, 5000);
  });

  it('BoundedLog refuses a capacity that is not a positive integer', () => {
    assert.throws(() => new BoundedLog(0), /capacity must be a positive integer, got 0/);
  });
});

describe('safety monitor (from the devices only)', () => {
  it('counts a close onto a forming inverter, and the time it forms behind the closed contact', async () => {
    const { clock, s } = site({ formingExitDelayMs: 300 });
    s.setGrid(false);
    await s.lines.contactor.write(0);
    clock.advance(50);
    await s.inverter.setGridForming(true);
    assert.equal(s.monitor.islandings, 1);
    clock.advance(10_000);
    // the fault path of issue 14: forming off and contactor closed back to back
    await s.inverter.setGridForming(false);
    await s.lines.contactor.write(1);
    clock.advance(50);
    assert.equal(s.monitor.unsafeContactorCloses, 1);
    assert.match(s.monitor.unsafeCloses.toArray()[0].why, /while the inverter was grid-forming/);
    clock.advance(250);
    const c = s.monitor.counters();
    assert.equal(s.monitor.formingWithContactClosedMs, 250);
    assert.equal(c.backfeedS, 0.25, 'the grid was down: the island energized it');
  });

  it('counts a close onto a grid back for less than the reconnect delay, not one after it', async () => {
    const { clock, s } = site({ reconnectDelayS: 30 });
    s.setGrid(false);
    await s.lines.contactor.write(0);
    clock.advance(1000);
    s.setGrid(true);
    clock.advance(5000);
    await s.lines.contactor.write(1);
    clock.advance(50);
    assert.equal(s.monitor.unsafeContactorCloses, 1);
    assert.match(s.monitor.unsafeCloses.toArray()[0].why, /grid back for 5000 ms when commanded \(reconnect delay 30 s\)/);
    await s.lines.contactor.write(0);
    clock.advance(30_000);
    await s.lines.contactor.write(1);
    clock.advance(50);
    assert.equal(s.monitor.unsafeContactorCloses, 1, 'after the delay a close is fine');
  });

  it('does not hold against a close a grid change within the sense debounce, which nothing could have seen', async () => {
    const { clock, s } = site({ reconnectDelayS: 5 });
    await s.lines.contactor.write(0);
    clock.advance(100);
    clock.advance(60_000);
    s.setGrid(false);
    clock.advance(10);
    await s.lines.contactor.write(1);
    clock.advance(50);
    assert.equal(s.monitor.unsafeContactorCloses, 0);
  });

  it('measures grid loss to the contactor-open command at the relay', async () => {
    const { clock, s } = site();
    s.setGrid(false);
    clock.advance(37);
    await s.lines.contactor.write(0);
    assert.equal(s.monitor.maxGridLossToContactorOpenMs, 37);
    const o = s.monitor.outages.toArray();
    assert.equal(o.length, 1);
    assert.equal(o[0].openCommandAtMs! - o[0].downAtMs, 37);
    clock.advance(1000);
    s.setGrid(true);
    assert.equal(o[0].upAtMs! - o[0].downAtMs, 1037);
  });

  it('counts dark time with the grid up (contact open, not forming)', async () => {
    const { clock, s } = site();
    await s.lines.contactor.write(0);
    clock.advance(50 + 3000);
    assert.equal(s.monitor.counters().darkWithGridS, 3);
  });

  it('lowest SoC while the car serves the island', () => {
    const clock = new VirtualClock(T0);
    const m = new SafetyMonitor(clock, { gridUp: false, contactClosed: false, gridForming: true, contactorCommandClosed: false });
    m.sampleSoc(40, -800);
    m.sampleSoc(39.5, -800);
    m.sampleSoc(10, 0);
    assert.equal(m.minServingSocPct, 39.5);
  });
});

describe('process incarnations (restart without cleanup)', () => {
  it('a killed process: timers dropped, port actions go nowhere and never settle, device events stop reaching it', async () => {
    const { clock, s } = site();
    const life = new Incarnation(clock);
    const ports = life.ports(s.ports(life.clock));
    let fired = 0;
    life.clock.setTimer(() => fired++, 1000);
    let events = 0;
    ports.inverter.onChange(() => events++);
    await ports.inverter.setPowerW(1000);
    assert.equal(s.inverter.setpointW, 1000);
    life.kill();
    clock.advance(5000);
    assert.equal(fired, 0, 'the dead process timer did not fire');
    let settled = false;
    void ports.inverter.setPowerW(0).then(() => (settled = true));
    await new Promise((r) => setImmediate(r));
    assert.equal(settled, false);
    assert.equal(s.inverter.setpointW, 1000, 'the device keeps what it was last told');
    s.inverter.faults.hang = true;
    void s.inverter.refresh();
    clock.advance(5000);
    await new Promise((r) => setImmediate(r));
    assert.equal(events, 0, 'a device event does not reach the dead process');
    assert.equal(ports.inverter.state().fault?.code, 'timeout', 'state is still readable');
    const store = life.store({ write: () => 1 });
    assert.throws(() => store.write(), /the process that owned this store is gone/);
  });
});
