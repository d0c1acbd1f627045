/**
 * The plots a homeowner reads (`wallbox simulate --plot`), for the 24 h scenarios: each SVG under 200 KB,
 * parsed by Chromium's own DOMParser (real Chromium through playwright-core; skipped without it), and
 * checked for what it must show: clock time in the scenario's zone, the dispatch window and the departure
 * marked, legend labels whole, the fixed mode colours (idle grey, not red), the shed loads, the effective
 * floor drawn apart from the discharge floor, and the energy figures.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../src/config/load.ts';
import { loadScenarioFile, runScenario } from '../../src/simulate.ts';
import { plotContext, plotSvg } from '../../src/plot.ts';
import { localParts } from '../../src/control/time.ts';

function chromiumPath(): string | undefined {
  for (const p of [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'].filter(Boolean) as string[]) if (existsSync(p)) return p;
  return undefined;
}

interface Parsed {
  parseError: string | null;
  texts: string[];
  axisLabels: string[];
  /** Legend label → its symbol's fill colour. */
  legend: Record<string, string>;
  /** Fill colours of the rectangles behind the SoC and power lines (dispatch windows). */
  windowFills: string[];
  rules: number;
  /** Areas drawn (the effective floor's shade). */
  areas: number;
}

const browserPath = chromiumPath();
const SCENARIOS = ['daily-cycle.json', 'outage-24h.json', 'outage-heavy-house.json'];

describe('homeowner plots of the 24 h scenarios', { skip: browserPath ? false : 'Chromium is not installed (apt-get install chromium)' }, () => {
  let browser: import('playwright-core').Browser;
  let page: import('playwright-core').Page;
  before(async () => {
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath: browserPath, args: ['--no-sandbox'] });
    page = await browser.newPage();
  });
  after(async () => {
    await browser?.close();
  });

  const parse = (svg: string): Promise<Parsed> =>
    page.evaluate((text) => {
      const doc = new DOMParser().parseFromString(text, 'image/svg+xml');
      const err = doc.querySelector('parsererror');
      const legend: Record<string, string> = {};
      for (const label of doc.querySelectorAll('.role-legend-label text')) {
        const symbol = label.parentElement?.previousElementSibling?.querySelector('path');
        legend[label.textContent ?? ''] = symbol?.getAttribute('fill') ?? symbol?.getAttribute('stroke') ?? '';
      }
      return {
        parseError: err ? err.textContent : null,
        texts: [...doc.querySelectorAll('text')].map((t) => t.textContent ?? ''),
        axisLabels: [...doc.querySelectorAll('.role-axis-label text')].map((t) => t.textContent ?? ''),
        legend,
        windowFills: [...doc.querySelectorAll('.mark-rect path')].filter((p) => p.getAttribute('opacity') === '0.15').map((p) => p.getAttribute('fill') ?? ''),
        rules: doc.querySelectorAll('.mark-rule line, .mark-rule path').length,
        areas: doc.querySelectorAll('.mark-area path').length,
      };
    }, svg);

  for (const file of SCENARIOS) {
    test(file, async () => {
      const sc = loadScenarioFile(join(PROJECT_ROOT, 'config/scenarios', file));
      const r = await runScenario(sc, { name: file });
      const svg = await plotSvg(r.samples, sc.description ?? file, plotContext(r));
      const bytes = Buffer.byteLength(svg);
      assert.ok(bytes < 200 * 1024, `${file}: ${bytes} bytes`);
      const p = await parse(svg);
      assert.equal(p.parseError, null);

      // clock time in the scenario's zone: the start's local HH:MM is the first tick, every tick is HH:MM
      const zone = sc.timezone ?? 'UTC';
      const start = localParts(Date.parse(sc.start!), zone);
      const startLabel = `${String(start.hour).padStart(2, '0')}:${String(start.minute).padStart(2, '0')}`;
      assert.equal(p.axisLabels[0], startLabel, `first tick ${p.axisLabels[0]}, the scenario starts at ${startLabel} ${zone}`);
      const clock = p.axisLabels.filter((l) => /^\d\d:\d\d$/.test(l));
      assert.ok(clock.length >= 10, `clock labels: ${clock.length}`);
      assert.ok(p.texts.includes(`time (${zone})`));

      // legend labels whole (vega cuts a long one with an ellipsis)
      for (const label of ['car (+ charging, − giving back)', 'grid (+ import, − export)', 'effective floor', 'discharge floor', 'backup floor', 'SoC'])
        assert.ok(label in p.legend, `legend label "${label}" missing or cut: ${Object.keys(p.legend).join(' | ')}`);
      assert.ok(!Object.keys(p.legend).some((l) => l.includes('…')), 'a legend label is cut');
      // fixed mode colours: idle grey, fault red, whatever modes the run had
      assert.equal(p.legend.idle, '#bdbdbd');
      assert.equal(p.legend.fault, '#d62728');
      assert.notEqual(p.legend.idle, p.legend.fault);
      // the effective floor drawn apart from the discharge floor: its own colour and a shaded area under it
      assert.notEqual(p.legend['effective floor'], p.legend['discharge floor']);
      assert.ok(p.areas >= 1, 'no effective-floor area');
      // energy figures in the subtitle
      assert.ok(p.texts.some((t) => /^car: \+\d+\.\d kWh in/.test(t)), 'no energy line');

      // dispatch windows and departures marked where the scenario has them
      const dispatchIds = (sc.events ?? []).flatMap((e) => (e.dispatch ? [String(e.dispatch.id)] : []));
      for (const id of dispatchIds) assert.ok(p.texts.some((t) => t.startsWith(`${id} `)), `dispatch ${id} not marked`);
      if (dispatchIds.length) assert.ok(p.windowFills.length >= dispatchIds.length, 'no dispatch window drawn');
      if (r.summary.departures.length) {
        assert.ok(p.rules >= r.summary.departures.length, 'no departure rule');
        assert.ok(p.texts.some((t) => t.startsWith('departure ')), 'no departure label');
      }
      // shed loads shown where loads were shed
      if (r.samples.some((s) => s.shedTiers.length > 0)) assert.ok(Object.keys(p.legend).some((l) => l.startsWith('shed: tier')), 'shed loads not shown');
      if (file === 'daily-cycle.json') assert.ok(p.texts.some((t) => /from PV \d+\.\d, from the grid \d+\.\d/.test(t)), 'no PV/grid split');
    });
  }
});
