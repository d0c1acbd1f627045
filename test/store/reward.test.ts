import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { localDayMonth, localPeriodStarts, parseTariff, priceExport, rateAtMinute } from '../../src/store/reward.ts';

describe('reward tariff', () => {
  it('flat rate', () => {
    const t = parseTariff({ ratePerKWh: 0.25, currency: 'EUR' });
    assert.equal(priceExport(t, 'UTC', 4000, [], 0, 3_600_000), 1);
  });

  it('time-of-day windows, first match wins, a window may run past midnight', () => {
    const t = parseTariff({ ratePerKWh: null, currency: 'GBP', timeOfDay: [{ from: '17:00', to: '21:00', ratePerKWh: 0.4 }, { from: '22:00', to: '06:00', ratePerKWh: 0.05 }, { from: '16:00', to: '18:00', ratePerKWh: 9 }] });
    const at = (hh: number, mm: number) => rateAtMinute(t, hh * 60 + mm);
    assert.equal(at(17, 0), 0.4);
    assert.equal(at(20, 59), 0.4);
    assert.equal(at(21, 0), 0); // no flat rate: 0 outside the windows
    assert.equal(at(16, 30), 9);
    assert.equal(at(23, 0), 0.05);
    assert.equal(at(5, 59), 0.05);
    assert.equal(at(6, 0), 0);
    assert.equal(t.priced, true);
  });

  it('prices a profile in local time, scaled to the ledger energy', () => {
    // New York, 2026-11-23: UTC-5; 17:00 local = 22:00Z
    const t = parseTariff({ ratePerKWh: 0.1, currency: 'USD', timeOfDay: [{ from: '17:00', to: '18:00', ratePerKWh: 0.3 }] });
    const peak = Date.UTC(2026, 10, 23, 22, 0);
    const profile = [
      { atMs: peak - 60_000, exportedWh: 50 }, // 16:59 local: off-peak
      { atMs: peak, exportedWh: 50 }, // 17:00 local: peak
    ];
    // the ledger says 2 kWh; the profile says half of it went at each rate
    assert.equal(priceExport(t, 'America/New_York', 2000, profile, peak - 60_000, peak + 60_000), 0.4);
  });

  it('without a profile the energy is spread evenly over the dispatch', () => {
    const t = parseTariff({ ratePerKWh: 0, currency: 'EUR', timeOfDay: [{ from: '00:30', to: '01:00', ratePerKWh: 1 }] });
    assert.equal(priceExport(t, 'UTC', 1000, [], Date.UTC(2026, 0, 1, 0, 0), Date.UTC(2026, 0, 1, 1, 0)), 0.5);
  });

  it('unpriced tariff gives nothing', () => {
    const t = parseTariff({ ratePerKWh: null, currency: 'EUR' });
    assert.equal(t.priced, false);
    assert.equal(priceExport(t, 'UTC', 1000, [], 0, 1), 0);
  });

  it('bad input names the key', () => {
    assert.throws(() => parseTariff({ ratePerKWh: -1, currency: 'EUR' }), /reward\.ratePerKWh must be a number >= 0/);
    assert.throws(() => parseTariff({ ratePerKWh: 1, currency: 'euro' }), /reward\.currency must be a 3-letter ISO 4217 code/);
    assert.throws(() => parseTariff({ ratePerKWh: 1, currency: 'EUR', timeOfDay: [{ from: '25:00', to: '01:00', ratePerKWh: 1 }] }), /reward\.timeOfDay\[0\]\.from must be a local time "HH:MM"/);
    assert.throws(() => parseTariff({ ratePerKWh: 1, currency: 'EUR', timeOfDay: [{ from: '01:00', to: '02:00', ratePerKWh: 1 }, { from: '01:00', to: '7pm', ratePerKWh: 1 }] }), /reward\.timeOfDay\[1\]\.to/);
    assert.throws(() => parseTariff({ ratePerKWh: 1, currency: 'EUR', timeOfDay: [{ from: '01:00', to: '02:00', ratePerKWh: Number.NaN }] }), /reward\.timeOfDay\[0\]\.ratePerKWh/);
  });

  it('local day, month and their starts follow the zone, across DST', () => {
    // 2026-03-29 01:30Z: Paris switches to summer time at 01:00Z
    assert.deepEqual(localDayMonth(Date.UTC(2026, 2, 28, 23, 30), 'Europe/Paris'), { day: '2026-03-29', month: '2026-03' });
    const s = localPeriodStarts(Date.UTC(2026, 2, 29, 12, 0), 'Europe/Paris');
    assert.equal(new Date(s.dayStartMs).toISOString(), '2026-03-28T23:00:00.000Z');
    assert.equal(new Date(s.monthStartMs).toISOString(), '2026-02-28T23:00:00.000Z');
    const ny = localPeriodStarts(Date.UTC(2026, 10, 23, 3, 0), 'America/New_York');
    assert.equal(new Date(ny.dayStartMs).toISOString(), '2026-11-22T05:00:00.000Z');
  });
});
