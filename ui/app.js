// The wallbox page: plain JavaScript, no framework, no build step. Live status arrives by server-sent
// events (/api/stream); everything else is fetched when its view opens. API: docs/web.md.
const $ = (sel) => document.querySelector(sel);
const el = (tag, attrs = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const k of kids) e.append(k);
  return e;
};
const SVG = 'http://www.w3.org/2000/svg';
const svg = (tag, attrs = {}) => {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
};

const state = { session: null, fields: [], values: {}, tz: undefined, status: null, stream: null, view: 'now', evBefore: undefined, evSev: '', range: '24h' };

async function api(path, body) {
  const init = body === undefined ? { credentials: 'same-origin' } : { method: 'POST', credentials: 'same-origin', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) };
  const res = await fetch(path, init);
  let data = {};
  try { data = await res.json(); } catch { /* no body */ }
  return { ok: res.ok, status: res.status, data };
}

// ---- times and numbers, in the device's zone -----------------------------------------------------
const fmt = (opts) => { try { return new Intl.DateTimeFormat(undefined, { timeZone: state.tz, ...opts }); } catch { return new Intl.DateTimeFormat(undefined, opts); } };
const timeText = (ms) => fmt({ hour: '2-digit', minute: '2-digit' }).format(new Date(ms));
const dateTimeText = (ms) => fmt({ month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' }).format(new Date(ms));
const kWh = (wh) => (typeof wh === 'number' ? (wh / 1000).toFixed(2) : '--');
const money = (a, c) => (typeof a === 'number' && c ? `${a.toFixed(2)} ${c}` : '–');
const duration = (s) => { const h = Math.floor(s / 3600); const m = Math.floor((s % 3600) / 60); const ss = s % 60; return h ? `${h} h ${m} min` : `${m}:${String(ss).padStart(2, '0')}`; };
const REASONS = { floor: 'the discharge floor', departure: 'the departure target', backup_reserve: 'the backup reserve', boost: 'charging now', inverter_limit: 'the inverter cannot follow', underdelivery: 'less power than asked', v2g_disabled: 'V2G off or paused', backup_active: 'house backup', fault: 'a fault', stopped: 'stopped' };
const NO_PASSWORD = 'No password is set. On the board, run: sudo wallbox ui password (from a checkout: npm run -s wallbox -- ui password).';
const MODES = { idle: 'idle', charge: 'charging', discharge: 'giving energy back', backup: 'powering the house', fault: 'FAULT' };

// ---- session and login ---------------------------------------------------------------------------
async function loadSession() {
  const r = await api('/api/session');
  state.session = r.data;
  $('#login-open').hidden = r.data.loggedIn || !r.data.passwordSet;
  $('#logout').hidden = !r.data.loggedIn;
  $('#settings-locked').hidden = r.data.loggedIn;
  $('#settings-locked').textContent = r.data.passwordSet ? 'Read only: log in to change settings.' : `Read only. ${NO_PASSWORD}`;
  for (const f of document.querySelectorAll('#settings-form input, #settings-form select, #settings-save, #actions button')) f.disabled = !r.data.loggedIn;
  return r.data;
}

function showLogin(why) {
  $('#login-why').textContent = why || 'Log in to change settings.';
  $('#login-error').textContent = '';
  for (const s of document.querySelectorAll('[data-view-section]')) s.hidden = true;
  $('#login-view').hidden = false;
  $('#login-cancel').hidden = !state.session?.canRead;
  $('#login-password').focus();
}

$('#login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  $('#login-submit').disabled = true;
  const r = await api('/api/login', { password: $('#login-password').value });
  $('#login-submit').disabled = false;
  if (!r.ok) { $('#login-error').textContent = r.data.error || `refused (${r.status})`; return; }
  $('#login-password').value = '';
  $('#login-view').hidden = true;
  await start();
});
$('#login-cancel').addEventListener('click', () => { $('#login-view').hidden = true; show(state.view); });
$('#login-open').addEventListener('click', () => showLogin());
$('#logout').addEventListener('click', async () => { await api('/api/logout', {}); await start(); });

// ---- live status ----------------------------------------------------------------------------------
function connect() {
  state.stream?.close();
  const es = new EventSource('/api/stream');
  state.stream = es;
  es.addEventListener('status', (e) => { setLive(true); renderNow(JSON.parse(e.data)); });
  es.onerror = async () => {
    setLive(false);
    if (es.readyState === EventSource.CLOSED) {
      // refused (logged out, too many views) or the daemon restarted: look again in a while
      const s = await loadSession().catch(() => null);
      if (s && !s.canRead) return showLogin('Log in to see this page.');
      setTimeout(() => { if (state.stream === es) connect(); }, 5000);
    }
  };
}
function setLive(on) { const p = $('#live'); p.textContent = on ? 'live' : 'offline'; p.className = `pill ${on ? 'ok' : 'warn'}`; }

function renderGauge(s) {
  const g = $('#gauge');
  g.replaceChildren();
  const x = (pct) => 4 + (292 * Math.max(0, Math.min(100, pct))) / 100;
  g.append(svg('rect', { x: 4, y: 8, width: 292, height: 22, rx: 5, fill: '#0b1222', stroke: '#334155' }));
  if (typeof s.socPct === 'number') g.append(svg('rect', { id: 'gauge-soc', x: 4, y: 8, width: x(s.socPct) - 4, height: 22, rx: 5, fill: '#38bdf8' }));
  const mark = (pct, color, id) => { if (typeof pct === 'number') g.append(svg('rect', { id, x: x(pct) - 1.5, y: 3, width: 3, height: 32, fill: color })); };
  mark(s.floors?.backupFloorPct, '#f59e0b', 'gauge-backup');
  mark(s.floors?.effectiveFloorPct, '#ef4444', 'gauge-floor');
  mark(s.targetSocPct, '#22c55e', 'gauge-target');
  for (const p of [0, 50, 100]) { const t = svg('text', { x: x(p), y: 43, fill: '#94a3b8', 'font-size': 8, 'text-anchor': p === 0 ? 'start' : p === 100 ? 'end' : 'middle' }); t.textContent = `${p} %`; g.append(t); }
}

function renderNow(s) {
  state.status = s;
  state.tz = s.timezone;
  $('#title').textContent = `Wallbox ${s.deviceId ?? ''}`;
  $('#soc-value').textContent = typeof s.socPct === 'number' ? s.socPct.toFixed(1) : '--';
  $('#floor-value').textContent = s.floors ? String(s.floors.effectiveFloorPct) : '--';
  $('#backup-value').textContent = s.floors ? String(s.floors.backupFloorPct) : '--';
  $('#target-value').textContent = String(s.targetSocPct);
  $('#departure').textContent = s.departureAt ? ` at ${timeText(Date.parse(s.departureAt))}${s.departureAtRisk ? ' (at risk)' : ''}` : '';
  renderGauge(s);
  const kw = (s.powerW / 1000).toFixed(1);
  $('#power').textContent = `${s.powerW > 0 ? '+' : ''}${kw} kW`;
  $('#direction').textContent = s.powerW > 0 ? 'into the car' : s.powerW < 0 ? 'out of the car' : 'no power flowing';
  $('#mode').textContent = MODES[s.mode] ?? s.mode;
  $('#grid').textContent = s.grid === 'up' ? 'up' : 'DOWN';
  $('#grid').className = s.grid === 'up' ? '' : 'err';
  // the site meter, where one is installed: what the house takes from the grid or gives to it, and the sun
  const g = s.site?.gridPowerW;
  $('#meter-row').hidden = typeof g !== 'number';
  if (typeof g === 'number') $('#meter').textContent = g >= 0 ? `taking ${(g / 1000).toFixed(1)} kW from the grid` : `giving ${(-g / 1000).toFixed(1)} kW to the grid`;
  const pv = s.site?.pvPowerW;
  $('#sun-row').hidden = typeof pv !== 'number';
  if (typeof pv === 'number') $('#sun').textContent = `${(pv / 1000).toFixed(1)} kW`;
  $('#v2g').textContent = s.v2gEnabled ? (s.overrides?.some((o) => o.kind === 'pauseV2g') ? 'paused' : 'on') : 'off';
  const b = s.backup;
  $('#backup-row').hidden = !b?.active;
  if (b?.active) $('#backup-hours').textContent = typeof b.hoursLeft === 'number' ? `${b.hoursLeft.toFixed(1)} h left${b.shedTiers?.length ? `, loads shed: ${b.shedTiers.join(', ')}` : ''}` : b.phase;
  const d = s.dispatch;
  $('#dispatch').replaceChildren(...(d ? [
    el('div', { class: 'row' }, el('span', { text: d.id }), el('b', { id: 'dispatch-status', text: d.reason ? `${d.status} (${REASONS[d.reason] ?? d.reason})` : d.status })),
    el('div', { class: 'row' }, el('span', { text: 'asked' }), el('b', { text: `${(d.requestedW / 1000).toFixed(1)} kW` })),
    el('div', { class: 'row' }, el('span', { text: 'time left' }), el('b', { id: 'dispatch-left', text: `${duration(d.remainingS)} (until ${timeText(Date.parse(d.endsAt))})` })),
    el('div', { class: 'row' }, el('span', { text: 'given so far' }), el('b', { text: `${kWh(d.exportedWh)} kWh` })),
  ] : [document.createTextNode('none running')]));
  const t = s.totals;
  const line = (label, p) => el('div', { class: 'row' }, el('span', { text: label }), el('b', { text: p ? `${kWh(p.exportedWh)} kWh given, ${(p.rewards ?? []).map((r) => money(r.amount, r.currency)).join(' + ') || 'no reward'}` : '--' }));
  $('#totals').replaceChildren(line('today', t?.day), line('this month', t?.month));
  $('#faults').replaceChildren(...(s.faults ?? []).map((f) => el('div', { class: 'fault' }, el('b', { text: f.what }), el('div', { text: f.todo }), el('small', { text: f.detail }))));
  $('#overrides').replaceChildren(...(s.overrides ?? []).map((o) => {
    const end = el('button', { class: 'quiet', type: 'button', text: 'End now', 'data-clear': o.kind });
    end.disabled = !state.session?.loggedIn;
    end.addEventListener('click', () => quick('/api/actions/clear', { kind: o.kind }));
    return el('div', { class: 'row' }, el('span', { text: `${o.label} until ${o.untilLocal}` }), end);
  }));
}

async function quick(path, body) {
  $('#action-error').textContent = '';
  const r = await api(path, body);
  if (!r.ok) { if (r.status === 401) return showLogin(); $('#action-error').textContent = r.data.error || `refused (${r.status})`; }
}
for (const form of document.querySelectorAll('#actions form')) {
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const body = { kind: form.dataset.kind };
    for (const input of form.querySelectorAll('input')) if (input.value.trim() !== '') body[input.name] = input.type === 'number' ? Number(input.value) : input.value.trim();
    quick('/api/actions/set', body);
  });
}

// ---- settings ---------------------------------------------------------------------------------------
function fieldInput(f, v) {
  const attrs = { 'data-key': f.key, name: f.key, id: `f-${f.key}` };
  if (f.kind === 'boolean') { const i = el('input', { ...attrs, type: 'checkbox' }); i.checked = v === true; return [i]; }
  if (f.kind === 'choice') { const s = el('select', attrs, ...f.choices.map((c) => el('option', { value: c.value, text: c.label }))); s.value = v; return [s]; }
  if (f.kind === 'time') {
    const i = el('input', { ...attrs, type: 'time', value: v ?? '' });
    const off = el('input', { type: 'checkbox', 'data-off': f.key, 'aria-label': `${f.label} off` });
    off.checked = v === null;
    i.disabled = v === null;
    off.addEventListener('change', () => { i.disabled = off.checked; });
    return [i, el('span', { class: 'inline', text: 'off' }), off];
  }
  if (f.kind === 'percent') {
    const i = el('input', { ...attrs, type: 'range', min: f.min, max: f.max, step: f.step, value: v });
    const out = el('output', { for: attrs.id, text: `${v} %` });
    i.addEventListener('input', () => { out.textContent = `${i.value} %`; });
    return [i, out];
  }
  return [el('input', { ...attrs, type: 'number', min: f.min, max: f.max, step: f.step ?? 'any', value: v ?? '', inputmode: 'decimal', placeholder: f.nullable ? 'none' : '' })];
}

function fieldValue(f) {
  const i = document.querySelector(`[data-key="${f.key}"]`);
  if (f.kind === 'boolean') return i.checked;
  if (f.kind === 'choice') return i.value;
  if (f.kind === 'time') return document.querySelector(`[data-off="${f.key}"]`).checked ? null : i.value;
  if (i.value.trim() === '') return f.nullable ? null : '';
  const n = Number(i.value);
  return Number.isFinite(n) ? n : i.value;
}

async function loadSettings() {
  const r = await api('/api/settings');
  if (r.status === 401) return showLogin('Log in to see this page.');
  state.fields = r.data.fields;
  state.values = r.data.values;
  const form = $('#settings-form');
  form.replaceChildren(...state.fields.map((f) => el('label', { class: 'field' },
    el('span', {}, el('span', { text: f.label })),
    el('small', { text: f.help }),
    ...fieldInput(f, state.values[f.key]),
    el('p', { class: 'err', 'data-for': f.key }))));
  await loadSession();
}

$('#settings-save').addEventListener('click', async () => {
  const changes = {};
  for (const f of state.fields) { const v = fieldValue(f); if (JSON.stringify(v) !== JSON.stringify(state.values[f.key])) changes[f.key] = v; }
  for (const p of document.querySelectorAll('#settings-form .err')) p.textContent = '';
  $('#settings-error').textContent = '';
  $('#settings-note').textContent = '';
  if (!Object.keys(changes).length) { $('#settings-note').textContent = 'Nothing changed.'; return; }
  $('#settings-save').disabled = true;
  const r = await api('/api/settings', changes);
  $('#settings-save').disabled = false;
  if (r.status === 401) return showLogin();
  if (!r.ok) {
    for (const [key, msg] of Object.entries(r.data.fields ?? {})) {
      const p = document.querySelector(`.err[data-for="${key}"]`);
      if (p) p.textContent = `${msg}. Not saved: the settings file keeps the old value.`;
    }
    $('#settings-error').textContent = r.data.error || `refused (${r.status})`;
    return;
  }
  state.values = r.data.values;
  const saved = (r.data.saved ?? []).map((k) => state.fields.find((f) => f.key === k)?.label ?? k);
  const restart = r.data.reload?.restartNeeded ?? [];
  $('#settings-note').textContent = `Saved: ${saved.join(', ')}${r.data.reload?.ok ? '; in force now' : ''}${restart.length ? `; needs a restart: ${restart.join(', ')}` : ''}.`;
});

// ---- earnings -------------------------------------------------------------------------------------
async function loadEarnings() {
  const r = await api('/api/ledger');
  if (r.status === 401) return showLogin('Log in to see this page.');
  state.tz = r.data.timezone;
  $('#months tbody').replaceChildren(...(r.data.months.length ? r.data.months.map((m) => el('tr', {}, el('td', { text: new Intl.DateTimeFormat(undefined, { month: 'short', year: 'numeric', timeZone: 'UTC' }).format(new Date(`${m.month}-15T12:00:00Z`)) }), el('td', { text: m.dispatches }), el('td', { text: kWh(m.exportedWh) }), el('td', { text: kWh(m.importedWh) }), el('td', { text: money(m.rewardAmount, m.currency) }))) : [el('tr', {}, el('td', { colspan: 5, class: 'dim', text: 'no settled dispatch yet' }))]));
  $('#ledger tbody').replaceChildren(...r.data.rows.map((x) => el('tr', { title: x.dispatchId }, el('td', { text: dateTimeText(x.endMs) }), el('td', { text: x.status + (x.interrupted ? ' (interrupted)' : '') }), el('td', { text: kWh(x.exportedWh) }), el('td', { text: kWh(x.importedWh) }), el('td', { text: money(x.rewardAmount, x.currency) }))));
}

// ---- history chart (hand-drawn SVG) -----------------------------------------------------------------
function chart(node, points, { fromMs, toMs, pointMs, value, min, max, color, bars, floor, unit, down }) {
  node.replaceChildren();
  const W = 400, H = 200, L = 40, R = 6, T = 8, B = 24;
  const X = (t) => L + ((W - L - R) * (t - fromMs)) / Math.max(1, toMs - fromMs);
  const Y = (v) => T + ((H - T - B) * (max - Math.max(min, Math.min(max, v)))) / (max - min);
  for (const v of [min, (min + max) / 2, max]) {
    node.append(svg('line', { x1: L, x2: W - R, y1: Y(v), y2: Y(v), stroke: '#334155' }));
    const t = svg('text', { x: 2, y: Y(v) + 4 }); t.textContent = `${Math.round(v)}${unit}`; node.append(t);
  }
  for (let i = 0; i <= 2; i++) {
    const t = fromMs + ((toMs - fromMs) * i) / 2;
    const lab = svg('text', { x: X(t), y: H - 6, 'text-anchor': i === 0 ? 'start' : i === 2 ? 'end' : 'middle' });
    lab.textContent = state.range === '24h' ? timeText(t) : fmt({ month: 'short', day: 'numeric' }).format(new Date(t));
    node.append(lab);
  }
  const w = Math.max(0.8, X(fromMs + pointMs) - X(fromMs));
  if (down) for (const p of points) if (p.gridDown > 0) node.append(svg('rect', { class: 'grid-down', x: X(p.atMs), y: T, width: w, height: H - T - B, fill: '#ef4444', 'fill-opacity': 0.15 + 0.35 * p.gridDown }));
  if (typeof floor === 'number') node.append(svg('line', { x1: L, x2: W - R, y1: Y(floor), y2: Y(floor), stroke: '#ef4444', 'stroke-dasharray': '4 3' }));
  if (!points.length) { const t = svg('text', { x: (L + W) / 2, y: H / 2, 'text-anchor': 'middle' }); t.textContent = 'no history yet (it is written every few minutes)'; node.append(t); return; }
  if (bars) {
    for (const p of points) { const v = value(p); if (v === null || v === undefined) continue; const y0 = Y(0), y1 = Y(v); node.append(svg('rect', { class: 'bar', x: X(p.atMs), y: Math.min(y0, y1), width: w, height: Math.max(0.5, Math.abs(y1 - y0)), fill: color })); }
    return;
  }
  // a step line: each point holds its value over its bucket; a missing bucket is a gap
  let d = '';
  let prevEnd;
  for (const p of points) {
    const v = value(p);
    if (v === null || v === undefined) { prevEnd = undefined; continue; }
    d += `${prevEnd === p.atMs ? 'L' : 'M'}${X(p.atMs).toFixed(1)},${Y(v).toFixed(1)}L${X(p.atMs + pointMs).toFixed(1)},${Y(v).toFixed(1)}`;
    prevEnd = p.atMs + pointMs;
  }
  node.append(svg('path', { class: 'line', d, fill: 'none', stroke: color, 'stroke-width': 2 }));
}

async function loadHistory() {
  const r = await api(`/api/history?range=${state.range}`);
  if (r.status === 401) return showLogin('Log in to see this page.');
  state.tz = r.data.timezone;
  const pts = r.data.points;
  const span = { fromMs: r.data.fromMs, toMs: r.data.toMs, pointMs: r.data.pointMs };
  chart($('#chart-soc'), pts, { ...span, value: (p) => p.socPct, min: 0, max: 100, color: '#38bdf8', floor: r.data.floorPct, unit: '%' });
  const peak = Math.max(1000, ...pts.map((p) => Math.abs(p.powerW)));
  const kw = Math.ceil(peak / 1000);
  chart($('#chart-power'), pts, { ...span, value: (p) => p.powerW / 1000, min: -kw, max: kw, color: '#a3e635', bars: true, unit: '', down: true });
  const outage = pts.filter((p) => p.gridDown > 0).length;
  $('#history-note').textContent = `${pts.length} points${outage ? `; red: grid down in ${outage} of them` : ''}. Newest data can be up to 5 minutes behind.`;
}
for (const b of document.querySelectorAll('#ranges button')) b.addEventListener('click', () => {
  state.range = b.dataset.range;
  for (const x of document.querySelectorAll('#ranges button')) x.classList.toggle('on', x === b);
  loadHistory();
});

// ---- events ---------------------------------------------------------------------------------------
async function loadEvents(more = false) {
  if (!more) state.evBefore = undefined;
  const q = new URLSearchParams({ limit: '100' });
  if (state.evSev) q.set('severity', state.evSev);
  if (more && state.evBefore) q.set('before', String(state.evBefore));
  const r = await api(`/api/events?${q}`);
  if (r.status === 401) return showLogin('Log in to see this page.');
  state.tz = r.data.timezone;
  const items = r.data.events.map((e) => el('li', { class: e.severity }, el('b', { text: `${e.severity} ` }), el('span', { class: 'dim', text: `${dateTimeText(e.atMs)} · ${e.kind}` }), el('div', { text: e.message })));
  if (more) $('#event-list').append(...items); else $('#event-list').replaceChildren(...(items.length ? items : [el('li', { class: 'dim', text: 'no events' })]));
  state.evBefore = r.data.events.length ? r.data.events[r.data.events.length - 1].n : state.evBefore;
  $('#events-more').hidden = r.data.events.length < 100;
}
for (const b of document.querySelectorAll('#severity button')) b.addEventListener('click', () => {
  state.evSev = b.dataset.sev;
  for (const x of document.querySelectorAll('#severity button')) x.classList.toggle('on', x === b);
  loadEvents();
});
$('#events-more').addEventListener('click', () => loadEvents(true));

// ---- navigation -----------------------------------------------------------------------------------
const LOADERS = { settings: loadSettings, earnings: loadEarnings, history: loadHistory, events: loadEvents };
function show(view) {
  state.view = LOADERS[view] || view === 'now' ? view : 'now';
  $('#login-view').hidden = true;
  for (const s of document.querySelectorAll('[data-view-section]')) s.hidden = s.id !== state.view;
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('on', a.dataset.view === state.view);
  LOADERS[state.view]?.();
}
window.addEventListener('hashchange', () => show(location.hash.slice(1)));

async function start() {
  const s = await loadSession();
  if (!s.canRead) { state.stream?.close(); setLive(false); return showLogin(s.passwordSet ? 'Log in to see this page.' : NO_PASSWORD); }
  connect();
  show(location.hash.slice(1) || 'now');
}
start();
