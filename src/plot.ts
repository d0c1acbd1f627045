/**
 * SVG plot of a simulation: SoC with its floors, power and house load, and grid state over time.
 * Rendered headless by vega-lite/vega (no browser, no canvas).
 */
import * as vega from 'vega';
import * as vl from 'vega-lite';
import type { SimulationSample } from './simulate.ts';

export async function plotSvg(samples: SimulationSample[], title: string): Promise<string> {
  const hours = (t: number) => Math.round((t / 3600) * 1000) / 1000;
  const soc = samples.flatMap((s) => [
    ...(s.socPct !== null ? [{ h: hours(s.t), series: 'SoC', v: s.socPct }] : []),
    { h: hours(s.t), series: 'effective floor', v: s.effectiveFloorPct },
    { h: hours(s.t), series: 'discharge floor', v: s.dischargeFloorPct },
    { h: hours(s.t), series: 'backup floor', v: s.backupFloorPct },
  ]);
  const power = samples.flatMap((s) => [
    { h: hours(s.t), series: 'car power (+ into car)', v: s.powerW / 1000 },
    { h: hours(s.t), series: 'house load', v: s.houseLoadW / 1000 },
  ]);
  const grid = samples.map((s, i) => ({ h: hours(s.t), h2: hours(samples[i + 1]?.t ?? s.t), grid: s.gridUp ? 'up' : 'down', mode: s.mode }));
  const width = 900;
  const x = { field: 'h', type: 'quantitative', title: 'hours from start' } as const;
  const spec: vl.TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    vconcat: [
      {
        width, height: 220, data: { values: soc }, mark: { type: 'line', interpolate: 'step-after' },
        encoding: {
          x, y: { field: 'v', type: 'quantitative', title: 'SoC / floors (%)', scale: { domain: [0, 100] } },
          color: { field: 'series', type: 'nominal', title: null },
          strokeDash: { condition: { test: "datum.series !== 'SoC'", value: [4, 3] }, value: [1, 0] },
        },
      },
      {
        width, height: 180, data: { values: power }, mark: { type: 'line', interpolate: 'step-after' },
        encoding: { x, y: { field: 'v', type: 'quantitative', title: 'power (kW)' }, color: { field: 'series', type: 'nominal', title: null } },
      },
      {
        width, height: 40, data: { values: grid }, mark: 'rect',
        encoding: {
          x, x2: { field: 'h2' },
          color: { field: 'grid', type: 'nominal', title: 'grid', scale: { domain: ['up', 'down'], range: ['#8fd18f', '#e06666'] } },
          tooltip: [{ field: 'mode' }],
        },
      },
      {
        width, height: 40, data: { values: grid }, mark: 'rect',
        encoding: { x, x2: { field: 'h2' }, color: { field: 'mode', type: 'nominal', title: 'mode' } },
      },
    ],
    resolve: { scale: { color: 'independent' } },
  };
  const compiled = vl.compile(spec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
