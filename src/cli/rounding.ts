/**
 * Figures rounded to the precision they are measured with, by the unit in their name (style: names carry
 * units): SoC and other percentages 0.1 % (ISO 15118 / EVerest report SoC to 0.1 % at best), power 1 W
 * (SunSpec W has a scale factor of 0 on the inverters we drive), energy 1 Wh (SunSpec WH accumulators
 * count whole Wh), hours 0.1 h, durations 1 s, money 0.01. Everything else is left as it is.
 */
const RULES: [RegExp, number][] = [
  [/Pct$/, 1],
  [/Wh$/, 0],
  [/W$/, 0],
  [/^hours|Hours$|H$/, 1],
  [/S$/, 0],
  [/^(amount|reward|rewardAmount)$/, 2],
];

function digitsFor(key: string): number | undefined {
  for (const [re, d] of RULES) if (re.test(key)) return d;
  return undefined;
}

function round(v: number, digits: number): number {
  const f = 10 ** digits;
  const r = Math.round(v * f) / f;
  return Object.is(r, -0) ? 0 : r;
}

/** A deep copy of `v` with every number under a unit-named key rounded; non-finite numbers become null. */
export function roundMeasured(v: unknown, key = ''): unknown {
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) return null;
    const d = digitsFor(key);
    return d === undefined ? v : round(v, d);
  }
  if (Array.isArray(v)) return v.map((x) => roundMeasured(x, key));
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, roundMeasured(x, k)]));
  return v;
}
