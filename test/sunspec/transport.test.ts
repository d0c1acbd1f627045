/**
 * The Modbus transport: one request in flight at a time, retries after a lost frame, exceptions not
 * retried, reconnect with backoff on the injected clock.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtualClock } from '../../hal/sim/virtual-clock.ts';
import { ModbusError, ModbusTransport } from '../../hal/inverter/sunspec/transport.ts';
import { freePort } from '../helpers/broker.ts';
import { rig } from './harness.ts';

const T0 = Date.UTC(2026, 0, 15, 12);

test('one request in flight at a time: concurrent callers are queued, each gets its own answer', async () => {
  const clock = new VirtualClock(T0);
  const r = await rig({ clock });
  try {
    await r.driver.open();
    r.server.faults.delayMs = 5;
    r.server.maxInFlight = 0;
    await Promise.all([r.driver.refresh(), r.driver.setPowerW(1000), r.driver.refresh(), r.driver.setPowerW(-1000), r.driver.setGridForming(false), r.driver.refresh()]);
    assert.equal(r.server.maxInFlight, 1);
    assert.equal(r.driver.state().fault, undefined);
    assert.equal(r.inverter.setpointW, -1000, 'the last command wins, in call order');

    const t = new ModbusTransport({ kind: 'tcp', host: '127.0.0.1', port: r.port, unitId: 1 }, { timeoutMs: 500, retries: 0, clock });
    await t.connect();
    r.server.maxInFlight = 0;
    const addrs = [40000, 40002, 40070, 40225, 40277, 40344];
    const got = await Promise.all(addrs.map((a) => t.readHolding(a, 2)));
    assert.deepEqual(got.map((g) => g[0]), [0x5375, 1, 701, 702, 704, 713]);
    assert.equal(r.server.maxInFlight, 1);
    await t.close();
  } finally {
    await r.dispose();
  }
});

test('a lost frame is retried; an exception is an answer and is not', async () => {
  const clock = new VirtualClock(T0);
  const r = await rig({ clock });
  const t = new ModbusTransport({ kind: 'tcp', host: '127.0.0.1', port: r.port, unitId: 1 }, { timeoutMs: 200, retries: 1, clock });
  try {
    await t.connect();
    r.server.faults.dropRequests = 1;
    assert.deepEqual(await t.readHolding(40000, 2), [0x5375, 0x6e53]);
    assert.equal(t.requestCount, 2);

    const before = t.requestCount;
    await assert.rejects(t.readHolding(39000, 2), (e: unknown) => e instanceof ModbusError && e.code === 'exception' && e.exceptionCode === 2);
    assert.equal(t.requestCount - before, 1);

    r.server.faults.dropRequests = 2;
    await assert.rejects(t.readHolding(40000, 2), (e: unknown) => e instanceof ModbusError && e.code === 'timeout' && /attempt 2 of 2/.test(e.message));
  } finally {
    await t.close();
    await r.dispose();
  }
});

test('reconnect backoff runs on the injected clock and grows after each failed connect', async () => {
  const clock = new VirtualClock(T0);
  const port = await freePort();
  const t = new ModbusTransport({ kind: 'tcp', host: '127.0.0.1', port, unitId: 1 }, { timeoutMs: 200, retries: 0, clock, backoffMinMs: 1000, backoffMaxMs: 4000 });
  try {
    await assert.rejects(t.connect(), /cannot connect/);
    await assert.rejects(t.readHolding(40000, 2), /next reconnect attempt in 1 s/);
    clock.advance(1000);
    await assert.rejects(t.readHolding(40000, 2), /cannot connect/);
    await assert.rejects(t.readHolding(40000, 2), /next reconnect attempt in 2 s/);
    clock.advance(2000);
    await assert.rejects(t.readHolding(40000, 2), /cannot connect/);
    clock.advance(4000);
    await assert.rejects(t.readHolding(40000, 2), /cannot connect/);
    await assert.rejects(t.readHolding(40000, 2), /next reconnect attempt in 4 s/, 'capped');
  } finally {
    await t.close();
  }
});
