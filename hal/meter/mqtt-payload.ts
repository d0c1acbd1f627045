/**
 * Reading a power figure out of an MQTT payload: a plain number (`"1234.5"`, Home Assistant's MQTT
 * statestream, many bridges), or a JSON document and a path to the number in it (Tasmota
 * `tele/<name>/SENSOR` → `ENERGY.Power`; EVerest's powermeter → `power_W.total`; Shelly Pro 3EM → `total_act_power`).
 * Pure; every failure says what was wrong with the payload.
 */

/** A path like `ENERGY.Power`, `$.power_W.total`, `meters[0].power` or `em:0.total_act_power`, split into keys. */
export function parsePath(path: string): (string | number)[] {
  const p = path.trim().replace(/^\$\.?/, '');
  if (p === '') return [];
  const keys: (string | number)[] = [];
  for (const part of p.split('.')) {
    const m = /^([^[\]]*)((?:\[\d+\])*)$/.exec(part);
    if (!m) throw new Error(`JSON path ${JSON.stringify(path)}: cannot read "${part}" (use key.key or key[0])`);
    if (m[1] !== '') keys.push(m[1]);
    for (const idx of m[2].matchAll(/\[(\d+)\]/g)) keys.push(Number(idx[1]));
    if (m[1] === '' && m[2] === '') throw new Error(`JSON path ${JSON.stringify(path)}: empty key`);
  }
  return keys;
}

/** The number in `payload` at `path` (none = the payload is the number), or an error naming what is wrong. */
export function readNumber(payload: Buffer | string, path: (string | number)[]): { value: number } | { error: string } {
  const text = (typeof payload === 'string' ? payload : payload.toString('utf8')).trim();
  const excerpt = text.length > 80 ? `${text.slice(0, 77)}...` : text;
  if (path.length === 0) {
    // a bare number, or a JSON number (a string holding one is accepted too: "1234")
    const n = text.startsWith('"') && text.endsWith('"') ? text.slice(1, -1) : text;
    if (n === '' || !/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(n)) return { error: `payload ${JSON.stringify(excerpt)} is not a number (set a JSON path for a JSON payload)` };
    return { value: Number(n) };
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return { error: `payload ${JSON.stringify(excerpt)} is not JSON` };
  }
  let at: unknown = doc;
  const walked: string[] = [];
  for (const k of path) {
    walked.push(typeof k === 'number' ? `[${k}]` : walked.length ? `.${k}` : k);
    if (at === null || typeof at !== 'object' || !(k in (at as Record<string | number, unknown>))) return { error: `payload ${JSON.stringify(excerpt)} has no ${walked.join('')}` };
    at = (at as Record<string | number, unknown>)[k];
  }
  if (typeof at === 'string' && /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(at.trim())) at = Number(at);
  if (typeof at !== 'number' || !Number.isFinite(at)) return { error: `${walked.join('')} in payload ${JSON.stringify(excerpt)} is ${JSON.stringify(at) ?? 'undefined'}, not a finite number` };
  return { value: at };
}
