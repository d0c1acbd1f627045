/**
 * Canonical JSON: the byte string a dispatch signature covers and the core compares for the duplicate-id
 * rule. Object keys sorted by UTF-16 code units (JavaScript's default sort), no whitespace, strings and
 * numbers as `JSON.stringify` writes them. An aggregator reproduces it with `jq -cS` or a sorted
 * `JSON.stringify` (docs/mqtt.md).
 */
export function canonicalJson(value: unknown, depth = 0): string {
  // the codec only hands in parsed JSON of a few KiB; the bound keeps a hostile structure from recursing far
  if (depth > 64) throw new RangeError('canonicalJson: nesting deeper than 64');
  if (value === null || typeof value === 'number' || typeof value === 'boolean' || typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v, depth + 1)).join(',')}]`;
  if (typeof value === 'object') {
    const obj = value as Record<string, unknown>;
    const keys = Object.keys(obj)
      .filter((k) => obj[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k], depth + 1)}`).join(',')}}`;
  }
  throw new TypeError(`canonicalJson: ${typeof value} is not JSON`);
}
