/**
 * SVG plot of a simulation for a homeowner: clock time in the scenario's zone on one axis for SoC with its
 * floors, PV / house / grid / car power, the grid state, the mode and the shed loads; dispatch windows and
 * departures marked; the energy and money figures in the subtitle. Rendered headless by vega-lite/vega.
 * Kept small (well under 200 KB): power is averaged into buckets, state bands are merged into runs.
 */
import * as vega from 'vega';
import * as vl from 'vega-lite';
import type { SimulationResult, SimulationSample, SimulationSummary } from './simulate.ts';
import { scenarioStartMs } from './simulate.ts';
import { zoneOffsetMs } from './control/time.ts';

/** What the plot marks besides the samples. */
export interface PlotContext {
  /** Scenario time zero, epoch ms, and the zone the clock axis shows. */
  startMs: number;
  timeZone: string;
  /** Dispatch windows, seconds from the start. */
  dispatches: { id: string; fromS: number; toS: number; powerW: number }[];
  /** Departures, seconds from the start. */
  departures: { atS: number; socPct: number; targetPct: number }[];
  summary?: SimulationSummary;
}

/** Fixed mode colours, the same in every plot: idle is grey (nothing wrong), fault red. */
export const MODE_COLOURS: Record<string, string> = {
  idle: '#bdbdbd', charge: '#4c9be8', discharge: '#f2a93b', backup: '#8e6bbf', fault: '#d62728',
};
const POWER_COLOURS: Record<string, string> = { PV: '#e8c31b', house: '#7f7f7f', 'grid (+ import, − export)': '#2ca02c', 'car (+ charging, − giving back)': '#1f5fa8' };
const SOC_COLOURS: Record<string, string> = { SoC: '#1f5fa8', 'effective floor': '#d62728', 'discharge floor': '#ff9896', 'backup floor': '#9467bd' };

/** Points a line keeps at most (a 24 h run: one every 4 minutes). */
const MAX_POINTS = 360;

/** The context of a finished run: its dispatch windows and departures. */
export function plotContext(r: Pick<SimulationResult, 'scenario' | 'summary' | 'config'>): PlotContext {
  const startMs = scenarioStartMs(r.scenario);
  const dispatches: PlotContext['dispatches'] = [];
  for (const e of r.scenario.events ?? []) {
    const d = e.dispatch as { id?: string; start?: string; durationS?: number; powerW?: number } | undefined;
    if (!d || typeof d.id !== 'string' || typeof d.durationS !== 'number') continue;
    const fromMs = d.start ? Date.parse(d.start) : startMs + e.at * 1000;
    dispatches.push({ id: d.id, fromS: Math.max(e.at, (fromMs - startMs) / 1000), toS: (fromMs - startMs) / 1000 + d.durationS, powerW: d.powerW ?? 0 });
  }
  const departures = r.summary.departures.map((d) => ({ atS: (Date.parse(d.at) - startMs) / 1000, socPct: d.socPct, targetPct: d.targetPct }));
  return { startMs, timeZone: r.config.timezone ?? 'UTC', dispatches, departures, summary: r.summary };
}

/** Average power over buckets (energy-true), the last value of a level (SoC, floors). */
function buckets(samples: SimulationSample[]): { t: number; from: number; to: number }[] {
  const n = Math.max(1, Math.ceil(samples.length / MAX_POINTS));
  const out: { t: number; from: number; to: number }[] = [];
  for (let i = 0; i < samples.length; i += n) out.push({ t: samples[i].t, from: i, to: Math.min(samples.length, i + n) });
  return out;
}

/** Consecutive samples with the same value merged into one band. */
function runs<T>(samples: SimulationSample[], value: (s: SimulationSample) => T): { from: number; to: number; v: T }[] {
  const out: { from: number; to: number; v: T }[] = [];
  samples.forEach((s, i) => {
    const v = value(s);
    const end = samples[i + 1]?.t ?? s.t;
    const last = out.at(-1);
    if (last && last.v === v) last.to = end;
    else out.push({ from: s.t, to: end, v });
  });
  return out;
}

/** The plot as an SVG document, rendered headless (no browser, no canvas). */
export async function plotSvg(samples: SimulationSample[], title: string, ctx?: PlotContext): Promise<string> {
  const compiled = vl.compile(plotSpec(samples, title, ctx)).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/**
 * The plot as a vega-lite spec with its data inline: what `plotSvg` renders, and what a page can hand to
 * vega-embed to draw the same chart in a browser.
 */
export function plotSpec(samples: SimulationSample[], title: string, ctx?: PlotContext): vl.TopLevelSpec {
  const startMs = ctx?.startMs ?? 0;
  const zone = ctx?.timeZone ?? 'UTC';
  // the axis shows the zone's clock: times shifted by the zone's offset and drawn as UTC
  const offsetMs = ctx ? zoneOffsetMs(startMs, zone) : 0;
  const at = (t: number) => startMs + offsetMs + Math.round(t) * 1000;
  const r2 = (x: number) => Math.round(x * 100) / 100;

  const soc: object[] = [];
  const floorArea: object[] = [];
  const power: object[] = [];
  for (const b of buckets(samples)) {
    const slice = samples.slice(b.from, b.to);
    const last = slice.at(-1)!;
    const mean = (f: (s: SimulationSample) => number) => r2(slice.reduce((a, s) => a + f(s), 0) / slice.length / 1000);
    const x = at(b.t);
    if (last.socPct !== null) soc.push({ x, series: 'SoC', v: last.socPct });
    floorArea.push({ x, v: last.effectiveFloorPct });
    soc.push({ x, series: 'effective floor', v: last.effectiveFloorPct }, { x, series: 'discharge floor', v: last.dischargeFloorPct }, { x, series: 'backup floor', v: last.backupFloorPct });
    power.push(
      { x, series: 'PV', v: mean((s) => s.pvW ?? 0) }, { x, series: 'house', v: mean((s) => s.houseLoadW) },
      { x, series: 'grid (+ import, − export)', v: mean((s) => s.gridW ?? 0) }, { x, series: 'car (+ charging, − giving back)', v: mean((s) => s.powerW) },
    );
  }
  const endT = samples.at(-1)?.t ?? 0;
  const band = (rows: { from: number; to: number; v: string }[]) => rows.map((r) => ({ x: at(r.from), x2: at(r.to), v: r.v }));
  const gridBand = band(runs(samples, (s) => (s.gridUp ? 'grid up' : 'grid down')));
  const modeBand = band(runs(samples, (s) => s.mode));
  const shedBand = band(runs(samples, (s) => ((s.shedTiers ?? []).length ? `shed: tier ${(s.shedTiers ?? []).join(', ')}` : 'all loads on')));
  const windows = (ctx?.dispatches ?? []).filter((d) => d.toS > 0 && d.fromS < endT).map((d) => ({ x: at(d.fromS), x2: at(Math.min(d.toS, endT)), label: `${d.id} ${d.powerW / 1000} kW` }));
  const departures = (ctx?.departures ?? []).map((d) => ({ x: at(d.atS), label: `departure ${d.socPct} % (target ${d.targetPct} %)` }));

  const width = 900;
  const x = { field: 'x', type: 'temporal', title: `time (${zone})`, scale: { type: 'utc' }, axis: { format: '%H:%M', labelOverlap: true } } as const;
  const legend = { labelLimit: 400, orient: 'right' } as const;
  const xLast = { ...x };
  const xTop = { ...x, title: null };
  const marks = (height: number): object[] => [
    ...(windows.length
      ? [{ data: { values: windows }, mark: { type: 'rect', opacity: 0.15, color: '#f2a93b' }, encoding: { x, x2: { field: 'x2' } } },
        ...(height > 100 ? [{ data: { values: windows }, mark: { type: 'text', align: 'left', baseline: 'top', dx: 3, dy: 3, fontSize: 10 }, encoding: { x, y: { value: 0 }, text: { field: 'label' } } }] : [])]
      : []),
    ...(departures.length
      ? [{ data: { values: departures }, mark: { type: 'rule', strokeDash: [6, 3], color: '#333' }, encoding: { x } },
        ...(height > 100 ? [{ data: { values: departures }, mark: { type: 'text', align: 'right', baseline: 'top', dx: -3, dy: 14, fontSize: 10 }, encoding: { x, y: { value: 0 }, text: { field: 'label' } } }] : [])]
      : []),
  ];
  const s = ctx?.summary;
  const subtitle = s
    ? [
      `car: +${kwh(s.importedWh)} kWh in${s.pvWh > 0 ? ` (from PV ${kwh(s.carFromPvWh)}, from the grid ${kwh(s.carFromGridWh)})` : ''}, −${kwh(s.exportedWh)} kWh out`
        + (s.pvWh > 0 ? `; PV ${kwh(s.pvWh)} kWh, self-consumed ${s.selfConsumptionPct ?? '-'} %` : '')
        + `; grid +${kwh(s.gridImportWh)} / −${kwh(s.gridExportWh)} kWh`
        + (s.outageS > 0 ? `; outage ${(s.outageS / 3600).toFixed(1)} h, house served ${s.hoursCovered} h` : '')
        + (s.reward ? `; reward ${s.reward.amount.toFixed(2)} ${s.reward.currency}` : ''),
    ]
    : [];
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: wrap(title, 140), subtitle, anchor: 'start', fontSize: 13 },
    vconcat: [
      {
        width, height: 220,
        layer: [
          ...marks(220),
          // below the effective floor nothing is given to the grid: shaded, so it shows where it lies on the discharge floor
          { data: { values: floorArea }, mark: { type: 'area', interpolate: 'step-after', color: '#d62728', opacity: 0.08 }, encoding: { x, y: { field: 'v', type: 'quantitative' } } },
          {
            data: { values: soc }, mark: { type: 'line', interpolate: 'step-after' },
            encoding: {
              x: xTop, y: { field: 'v', type: 'quantitative', title: 'SoC / floors (%)', scale: { domain: [0, 100] } },
              color: { field: 'series', type: 'nominal', title: null, scale: { domain: Object.keys(SOC_COLOURS), range: Object.values(SOC_COLOURS) }, legend },
              // the effective floor is drawn wider, dashed, over the discharge floor it often sits on
              strokeDash: { field: 'series', type: 'nominal', scale: { domain: Object.keys(SOC_COLOURS), range: [[1, 0], [8, 4], [2, 2], [4, 3]] }, legend: null },
              strokeWidth: { field: 'series', type: 'nominal', scale: { domain: Object.keys(SOC_COLOURS), range: [2, 2.5, 1.5, 1.5] }, legend: null },
            },
          },
        ],
      },
      {
        width, height: 200,
        layer: [
          ...marks(200),
          {
            data: { values: power }, mark: { type: 'line', interpolate: 'step-after', strokeWidth: 1.5 },
            encoding: {
              x: xTop, y: { field: 'v', type: 'quantitative', title: 'power (kW)' },
              color: { field: 'series', type: 'nominal', title: null, scale: { domain: Object.keys(POWER_COLOURS), range: Object.values(POWER_COLOURS) }, legend },
            },
          },
        ],
      },
      ...[['grid', gridBand, { domain: ['grid up', 'grid down'], range: ['#8fd18f', '#e06666'] }], ['mode', modeBand, { domain: Object.keys(MODE_COLOURS), range: Object.values(MODE_COLOURS) }], ['loads', shedBand, shedScale(shedBand)]].map(
        ([name, values, scale], i) => ({
          width, height: 22, data: { values }, mark: 'rect',
          encoding: { x: i === 2 ? xLast : xTop, x2: { field: 'x2' }, color: { field: 'v', type: 'nominal', title: name, scale, legend: { ...legend, columns: 3 } } },
        }),
      ),
    ],
    resolve: { scale: { color: 'independent', strokeDash: 'independent', strokeWidth: 'independent' } },
  } as vl.TopLevelSpec;
}

/** Shed-load colours: all loads on in pale grey, then deeper orange the more tiers are shed. */
const SHED_COLOURS = ['#fdd0a2', '#fdae6b', '#fd8d3c', '#f16913', '#d94801', '#a63603', '#7f2704'];

/** The load bands' scale: all loads on first, then by how many tiers are shed. */
function shedScale(rows: { v: string }[]): { domain: string[]; range: string[] } {
  const tiers = (v: string) => (v.startsWith('shed') ? v.split(',').length : 0);
  const domain = [...new Set(rows.map((r) => r.v))].sort((a, b) => tiers(a) - tiers(b) || a.localeCompare(b));
  return { domain, range: domain.map((v) => (tiers(v) === 0 ? '#e6e6e6' : SHED_COLOURS[Math.min(SHED_COLOURS.length - 1, tiers(v) - 1)])) };
}

/** A long title as lines (a vega title does not wrap by itself, and is cut at its limit). */
function wrap(text: string, maxChars: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line && line.length + 1 + word.length > maxChars) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines;
}

function kwh(wh: number): string {
  return (wh / 1000).toFixed(1);
}
