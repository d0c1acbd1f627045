/** The status text a person reads: the site meter's figures after the grid line, in words and whole watts. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatStatus } from '../../src/status-format.ts';

const base = { deviceId: 'w1', version: '1', mode: 'idle', grid: 'up', socPct: 60, socSource: 'vehicle', socAgeS: 1, powerW: 0, setpointW: 0, reasons: [] };

test('status text: the meter\'s grid power says its direction; PV when measured; nothing without a meter', () => {
  const gridLine = (site: unknown) => formatStatus({ ...base, site }, 'UTC').split('\n').find((l) => l.startsWith('grid '))!;
  assert.equal(gridLine({ gridPowerW: 1234.4, pvPowerW: null }), 'grid         up, importing 1234 W');
  assert.equal(gridLine({ gridPowerW: -850, pvPowerW: 3400.2 }), 'grid         up, exporting 850 W, sun 3400 W');
  assert.equal(gridLine(null), 'grid         up');
  assert.equal(gridLine(undefined), 'grid         up');
  assert.equal(gridLine({ gridPowerW: null, pvPowerW: null }), 'grid         up');
});
