/**
 * Metering into the ledger: a dispatch metered tick by tick through counter wraps, counter resets and
 * missing counters, settled, and (for a crash) recovered from the checkpoint plus the counters.
 */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { meterTick, type MeterReading, type MeterSettings, type MeterState } from '../../src/control/metering.ts';
import { openStore, type MeterCheckpoint } from '../../src/store/index.ts';
import { dbIn, record, responseMsg, T0, tempDir } from './helpers.ts';

const EFF = 0.95;
const POWER_W = -7000;
const TICKS = 600;
const oneTickWh = 7000 / 3600;

interface CounterCase {
  name: string;
  settings: MeterSettings;
  /** Export counter at tick i given the true export since the start (Wh); undefined = not reported. */
  counter: (i: number, trueWh: number) => number | undefined;
}

const cases: CounterCase[] = [
  { name: 'counter wraps at 2^16 Wh', settings: { efficiency: EFF, maxPowerW: 11000, counterModulusWh: 65_536 }, counter: (_i, wh) => (65_536 - 500 + wh) % 65_536 },
  { name: 'counter resets mid-dispatch (inverter replaced)', settings: { efficiency: EFF, maxPowerW: 11000 }, counter: (i, wh) => (i < 300 ? 123_456 + wh : wh - 300 * oneTickWh + 0.5) },
  { name: 'counter missing (integrated power)', settings: { efficiency: EFF, maxPowerW: 11000 }, counter: () => undefined },
  { name: 'counter missing now and then', settings: { efficiency: EFF, maxPowerW: 11000 }, counter: (i, wh) => (i % 50 < 10 ? undefined : 1000 + wh) },
];

function readingAt(c: CounterCase, i: number): MeterReading {
  const trueWh = i * oneTickWh;
  return { atMs: T0 + i * 1000, acPowerW: POWER_W, exportedWh: c.counter(i, trueWh), importedWh: 0 };
}

describe('metering into the ledger', () => {
  for (const c of cases) {
    it(`${c.name}: the ledger holds the energy moved, within one tick`, (t) => {
      const s = openStore(dbIn(tempDir(t)), { reward: { ratePerKWh: 0.3, currency: 'EUR' } });
      let meter: MeterState = {};
      let rec = record('d1', { status: 'active', startedMs: T0 });
      s.recordDispatch(rec, T0);
      for (let i = 0; i <= TICKS; i++) {
        const tick = meterTick(meter, readingAt(c, i), c.settings);
        meter = tick.state;
        assert.ok(tick.delta.exportedWh >= 0 && tick.delta.exportedWh <= 2 * oneTickWh + 1, `tick ${i}: ${tick.delta.exportedWh} Wh`);
        rec = { ...rec, exportedWh: rec.exportedWh + tick.delta.exportedWh, importedWh: rec.importedWh + tick.delta.importedWh, carSideWh: rec.carSideWh + tick.delta.carSideWh };
        s.saveMeterState({ atMs: T0 + i * 1000, meter, dispatches: [{ id: rec.id, exportedWh: rec.exportedWh, importedWh: rec.importedWh, carSideWh: rec.carSideWh }] });
      }
      const done = { ...rec, status: 'completed' as const, endedMs: T0 + TICKS * 1000 };
      s.settleDispatch(done, [responseMsg('d1', 'completed')], done.endedMs);
      const [row] = s.ledger();
      const trueWh = TICKS * oneTickWh;
      assert.ok(Math.abs(row.exportedWh - trueWh) <= oneTickWh, `ledger ${row.exportedWh} Wh, moved ${trueWh} Wh`);
      assert.ok(Math.abs(row.carSideWh - -row.exportedWh / EFF) < 1e-6);
      assert.ok(Math.abs((row.rewardAmount ?? 0) - (row.exportedWh / 1000) * 0.3) < 1e-3);
      s.close();
    });

    it(`${c.name}: killed mid-dispatch, settled on restart from the checkpoint and the counters`, (t) => {
      const path = dbIn(tempDir(t));
      const s = openStore(path, { storage: { meterCheckpointS: 5 } });
      let meter: MeterState = {};
      let rec = record('d1', { status: 'active', startedMs: T0 });
      s.recordDispatch(rec, T0);
      const killAt = 437;
      for (let i = 0; i <= killAt; i++) {
        const tick = meterTick(meter, readingAt(c, i), c.settings);
        meter = tick.state;
        rec = { ...rec, exportedWh: rec.exportedWh + tick.delta.exportedWh, importedWh: rec.importedWh + tick.delta.importedWh, carSideWh: rec.carSideWh + tick.delta.carSideWh };
        s.saveMeterState({ atMs: T0 + i * 1000, meter, dispatches: [{ id: rec.id, exportedWh: rec.exportedWh, importedWh: rec.importedWh, carSideWh: rec.carSideWh }] });
      }
      s.db.close(); // kill -9
      // the inverter goes to 0 W by its own watchdog; its counters stay where they were
      const restart = openStore(path);
      const cp = restart.loadMeterState<MeterState>() as MeterCheckpoint<MeterState>;
      const [open] = restart.interruptedDispatches();
      assert.equal(open.interrupted, true);
      const nowReading: MeterReading = { ...readingAt(c, killAt), atMs: T0 + (killAt + 30) * 1000, acPowerW: 0 };
      const since = meterTick(cp.meter, nowReading, c.settings);
      const settled = { ...open.record, exportedWh: open.record.exportedWh + since.delta.exportedWh, endedMs: nowReading.atMs };
      restart.settleDispatch(settled, [responseMsg('d1', 'completed', { reason: 'interrupted' })], nowReading.atMs, { interrupted: true });
      const [row] = restart.ledger();
      const trueWh = killAt * oneTickWh;
      // counters bridge the gap; without them only what the last checkpoint held (at most 5 s old) is known
      const counterAtKill = c.counter(killAt, trueWh);
      const counterAtCheckpoint = cp.meter.exportedWh;
      const tolerance = counterAtKill !== undefined && counterAtCheckpoint !== undefined ? oneTickWh : 6 * oneTickWh;
      assert.ok(Math.abs(row.exportedWh - trueWh) <= tolerance, `ledger ${row.exportedWh} Wh, moved ${trueWh} Wh (±${tolerance})`);
      assert.ok(row.exportedWh <= trueWh + oneTickWh, 'never more than was moved');
      assert.equal(row.interrupted, true);
      restart.close();
    });
  }
});
