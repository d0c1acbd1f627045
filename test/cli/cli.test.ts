/**
 * The `wallbox` command as a homeowner uses it: a section merge keeps the other keys; refusals in plain
 * words with the value given and the file unchanged; negative numbers are values; `status --json` is JSON
 * on every path, rounded, with last-known figures from a real SQLite store when the daemon is down; local
 * times in the configured zone; `status` works while the file on disk is invalid; --version, --help per
 * command, the log level. Expected times are worked out here from the zone's known offset, not with the
 * code under test.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli.ts';
import { PROJECT_ROOT } from '../../src/config/load.ts';
import { serveStatus, statusSocketPath } from '../../src/status-socket.ts';
import { openStore } from '../../src/store/index.ts';
import { logLevelFrom } from '../../src/cli/run.ts';

interface Run {
  code: number;
  out: string;
  err: string;
}

async function wallbox(args: string[], env: NodeJS.ProcessEnv = {}, wallMs?: number): Promise<Run> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, { out: (s) => out.push(s), err: (s) => err.push(s), env, wallMs: wallMs === undefined ? undefined : () => wallMs });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

function home(t: { after: (fn: () => void) => void }, local: Record<string, unknown> = {}): { dir: string; cfg: string; db: string } {
  const dir = mkdtempSync(join(tmpdir(), 'wallbox-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const cfg = join(dir, 'local.json');
  const db = join(dir, 'wallbox.db');
  writeFileSync(cfg, JSON.stringify({ deviceId: 'cli-test', storage: { path: db }, inverter: { driver: 'sim' }, vehicleLink: { driver: 'sim' }, ...local }, null, 2));
  return { dir, cfg, db };
}

const fileJson = (p: string) => JSON.parse(readFileSync(p, 'utf8'));
/** Europe/Paris is UTC+1 in winter (CET): the oracle for local times in December. */
const PARIS_WINTER_MS = 3_600_000;
const parisText = (utcMs: number) => new Date(utcMs + PARIS_WINTER_MS).toISOString().slice(0, 16).replace('T', ' ');

describe('config set', () => {
  test('an object value merges into its section: the departure time set before is kept', async (t) => {
    const h = home(t);
    assert.equal((await wallbox(['config', 'set', 'vehicle.departureTime', '06:45', '--config', h.cfg])).code, 0);
    const r = await wallbox(['config', 'set', 'vehicle', '{"dischargeFloorPct":60}', '--config', h.cfg]);
    assert.equal(r.code, 0, r.err);
    const v = fileJson(h.cfg).vehicle;
    assert.equal(v.departureTime, '06:45');
    assert.equal(v.dischargeFloorPct, 60);
    assert.match(r.out, /vehicle\.dischargeFloorPct = 60/);
    assert.doesNotMatch(r.out, /departureTime/, 'only what changed is named');
    // --replace replaces the section whole (what the homeowner asks for explicitly)
    assert.equal((await wallbox(['config', 'set', 'vehicle', '{"dischargeFloorPct":55}', '--replace', '--config', h.cfg])).code, 0);
    assert.deepEqual(fileJson(h.cfg).vehicle, { dischargeFloorPct: 55 });
  });

  test('a time of day typed as 7:30 is taken as 07:30, as the quick actions take it (key and section forms)', async (t) => {
    const h = home(t);
    const r = await wallbox(['config', 'set', 'vehicle.departureTime', '7:30', '--config', h.cfg]);
    assert.equal(r.code, 0, r.err);
    assert.equal((fileJson(h.cfg).vehicle as { departureTime: string }).departureTime, '07:30');
    assert.equal((await wallbox(['config', 'set', 'vehicle', '{"departureTime":"6:05"}', '--config', h.cfg])).code, 0);
    assert.equal((fileJson(h.cfg).vehicle as { departureTime: string }).departureTime, '06:05');
    assert.equal((await wallbox(['config', 'set', 'vehicle.departureTime', '21:45', '--config', h.cfg])).code, 0);
    assert.equal((fileJson(h.cfg).vehicle as { departureTime: string }).departureTime, '21:45');
  });

  test('a refused value: the rule in plain words, the value given, and the file is not changed', async (t) => {
    const h = home(t);
    const before = readFileSync(h.cfg, 'utf8');
    const r = await wallbox(['config', 'set', 'vehicle.departureTime', '7:75', '--config', h.cfg]);
    assert.equal(r.code, 78);
    assert.match(r.err, /vehicle\.departureTime must be a time like 07:30/);
    assert.match(r.err, /you gave "7:75"/);
    assert.match(r.err, /was not changed/);
    assert.ok(r.err.includes(`The file ${h.cfg} was not changed`), r.err);
    assert.doesNotMatch(r.err, /\^\(|must match|\[01\]/, 'no raw regex');
    assert.equal(readFileSync(h.cfg, 'utf8'), before);

    // "7.30" is a time typed with a dot, not the number 7.3: refused as a time, showing what was typed
    const dotted = await wallbox(['config', 'set', 'vehicle.departureTime', '7.30', '--config', h.cfg]);
    assert.equal(dotted.code, 78);
    assert.match(dotted.err, /vehicle\.departureTime must be a time like 07:30 \(24-hour HH:MM\)/);
    assert.match(dotted.err, /you gave "7\.30"/);
    // a number in JSON form: the time words too, not "must be text"
    const num = await wallbox(['config', 'set', 'vehicle', '{"departureTime": 7}', '--config', h.cfg]);
    assert.match(num.err, /vehicle\.departureTime must be a time like 07:30 \(24-hour HH:MM\), or null for none; you gave 7/);
    assert.equal(readFileSync(h.cfg, 'utf8'), before);

    const cross = await wallbox(['config', 'set', 'vehicle.backupFloorPct', '70', '--config', h.cfg]);
    assert.match(cross.err, /vehicle\.backupFloorPct must not exceed vehicle\.dischargeFloorPct \(70 > 50\)/);
    const typo = await wallbox(['config', 'set', 'vehicle.dischargeFloor', '40', '--config', h.cfg]);
    assert.match(typo.err, /vehicle\.dischargeFloor is not a setting/);
    const type = await wallbox(['config', 'set', 'vehicle.v2gEnabled', 'yes', '--config', h.cfg]);
    assert.match(type.err, /vehicle\.v2gEnabled must be true or false; you gave "yes"/);
    assert.equal(readFileSync(h.cfg, 'utf8'), before);
  });

  test('a negative number is a value, not an option: it reaches the rules (and a valid one is written)', async (t) => {
    const h = home(t);
    const r = await wallbox(['config', 'set', 'site.gridExportLimitW', '-1', '--config', h.cfg]);
    assert.equal(r.code, 78, r.err);
    assert.match(r.err, /site\.gridExportLimitW must be at least 0; you gave -1/);
    assert.doesNotMatch(r.err, /Unknown option|usage:/);
    // the same parsing keeps a negative value anywhere in the line
    const ok = await wallbox(['config', 'set', '--config', h.cfg, 'vehicle.departureMarginS', '-0']);
    assert.equal(ok.code, 0, ok.err);
    assert.equal(fileJson(h.cfg).vehicle.departureMarginS, 0);
  });
});

describe('status', () => {
  test('--json with the daemon down: valid JSON with the last-known figures from the database, said to be last-known and when', async (t) => {
    const h = home(t, { timezone: 'Europe/Paris' });
    const sampleAt = Date.parse('2026-12-01T06:45:00Z');
    const store = openStore(h.db, { timezone: 'Europe/Paris' });
    store.recordSample({ atMs: sampleAt - 1000, mode: 'idle', socPct: 69.5, powerW: 0, setpointW: 0, houseLoadW: 500, gridUp: true, importedWh: 0, exportedWh: 0 });
    store.recordSample({ atMs: sampleAt, mode: 'charge', socPct: 69.98416179337218, powerW: 7399.6, setpointW: 7400, houseLoadW: 500, gridUp: true, importedWh: 2, exportedWh: 0 });
    store.recordEvent({ kind: 'mode', severity: 'info', message: 'mode idle → charge' }, sampleAt);
    store.close();

    const r = await wallbox(['status', '--json', '--config', h.cfg], {}, sampleAt + 60_000);
    assert.equal(r.code, 3, 'exit 3: the daemon is not running');
    const j = JSON.parse(r.out);
    assert.equal(j.daemon, 'not running');
    assert.equal(j.lastKnown, true);
    assert.equal(j.at, new Date(sampleAt).toISOString());
    assert.equal(j.atLocal, parisText(sampleAt), '07:45 local, not 06:45 UTC');
    assert.equal(j.socPct, 70, 'SoC to 0.1 %');
    assert.equal(j.powerW, 7400, 'power to 1 W');
    assert.equal(j.mode, 'charge');
    assert.equal(j.recentEvents[0].atLocal, parisText(sampleAt));

    const text = await wallbox(['status', '--config', h.cfg], {}, sampleAt + 60_000);
    assert.equal(text.code, 3);
    assert.match(text.out, /LAST-KNOWN/);
    assert.ok(text.out.includes(`at ${parisText(sampleAt)}`), text.out);
  });

  test('--json is JSON on every path: no database, bad arguments', async (t) => {
    const h = home(t);
    const none = await wallbox(['status', '--json', '--config', h.cfg]);
    assert.equal(none.code, 3);
    assert.match(JSON.parse(none.out).error, /not running/);
    const bad = await wallbox(['status', '--json', '--bogus', '--config', h.cfg]);
    assert.equal(bad.code, 2);
    assert.match(JSON.parse(bad.out).error, /bogus/);
  });

  test('works while the file on disk is invalid (it asks the daemon), rounds, and shows local times', async (t) => {
    const h = home(t, { timezone: 'Europe/Paris' });
    const departure = Date.parse('2026-12-02T06:30:00Z');
    const server = await serveStatus(statusSocketPath(h.db), () => ({
      deviceId: 'cli-test', version: '0.1.0', mode: 'charge', grid: 'up', socPct: 69.98416179337218, socSource: 'vehicle', socAgeS: 1.4,
      powerW: 7399.7, setpointW: 7400, floors: { dischargeFloorPct: 50, effectiveFloorPct: 55.23456, backupFloorPct: 20 },
      departureAt: new Date(departure).toISOString(), departureAtRisk: false, reasons: ['departure'], dispatchId: null,
      backup: { active: false, phase: 'on-grid', shedTiers: [] }, energy: { importedWh: 12.345, exportedWh: 0 }, timezone: 'Europe/Paris',
      overrides: [{ kind: 'pauseV2g', label: 'V2G paused', until: '2026-12-04T23:00:00Z', untilLocal: '2026-12-05 00:00' }],
    }));
    t.after(() => server.close());
    // break the file on disk: status still answers from the daemon, and says the file needs fixing
    writeFileSync(h.cfg, JSON.stringify({ ...fileJson(h.cfg), vehicle: { departureTime: '7:30' } }));
    const j = await wallbox(['status', '--json', '--config', h.cfg]);
    assert.equal(j.code, 0, j.err);
    const s = JSON.parse(j.out);
    assert.equal(s.socPct, 70);
    assert.equal(s.powerW, 7400);
    assert.equal(s.floors.effectiveFloorPct, 55.2);
    assert.equal(s.energy.importedWh, 12);
    assert.equal(s.departureAtLocal, parisText(departure));
    assert.equal(s.configFileInvalid.problems[0].key, 'vehicle.departureTime');

    const text = await wallbox(['status', '--config', h.cfg]);
    assert.equal(text.code, 0, text.err);
    assert.ok(text.out.includes(`departure    ${parisText(departure)}`), text.out);
    assert.match(text.out, /quick action V2G paused until 2026-12-05 00:00/);
    assert.match(text.out, /cannot be used as it is/);
  });
});

describe('ledger and events', () => {
  test('local times in the configured zone; events newest first, filtered by severity', async (t) => {
    const h = home(t, { timezone: 'Europe/Paris' });
    const start = Date.parse('2026-11-23T17:00:00Z');
    const store = openStore(h.db, { timezone: 'Europe/Paris', reward: { ratePerKWh: 0.25, currency: 'EUR', timeOfDay: null } });
    const rec = {
      id: 'd1', request: { id: 'd1', powerW: -7000, durationS: 3600 }, body: '{}', source: 'device', receivedMs: start, startMs: start, endMs: start + 3_600_000,
      status: 'completed' as const, acceptedW: -7000, exportedWh: 7000, importedWh: 0, carSideWh: -7400, startedMs: start, endedMs: start + 3_600_000,
    };
    store.recordDispatch({ ...rec, status: 'accepted' }, start);
    store.settleDispatch(rec, [], start + 3_600_000);
    store.recordEvent({ kind: 'mode', severity: 'info', message: 'first' }, start);
    store.recordEvent({ kind: 'fault', severity: 'alarm', message: 'second' }, start + 60_000);
    store.recordEvent({ kind: 'mode', severity: 'info', message: 'third, persisted since 2026-11-23T16:59:30Z' }, start + 120_000);
    store.close();

    const l = await wallbox(['ledger', '--config', h.cfg]);
    assert.equal(l.code, 0, l.err);
    assert.ok(l.out.includes(parisText(start)), l.out);
    assert.ok(l.out.includes(parisText(start + 3_600_000)), l.out);
    assert.doesNotMatch(l.out, /2026-11-23T17:00/, 'no UTC ISO time in the table');

    const e = await wallbox(['events', '--config', h.cfg]);
    assert.equal(e.code, 0, e.err);
    const lines = e.out.split('\n').slice(1);
    assert.deepEqual(lines.map((x) => /(first|second|third)/.exec(x)?.[1]), ['third', 'second', 'first']);
    assert.ok(lines[0].startsWith(parisText(start + 120_000)), lines[0]);
    assert.ok(lines[0].endsWith(`persisted since ${parisText(Date.parse('2026-11-23T16:59:30Z'))}`), `a UTC time inside a message is shown local: ${lines[0]}`);
    const alarms = await wallbox(['events', '--severity', 'warning', '--json', '--config', h.cfg]);
    assert.deepEqual(JSON.parse(alarms.out).events.map((x: { message: string }) => x.message), ['second']);
    const wrong = await wallbox(['events', '--severity', 'loud', '--config', h.cfg]);
    assert.equal(wrong.code, 2);
    assert.match(wrong.err, /--severity must be info, warning or alarm; you gave "loud"/);
  });
});

describe('quick actions', () => {
  test('boost, pause-v2g, reserve, overrides and off: ends as typed, in the configured zone, written durably', async (t) => {
    const h = home(t, { timezone: 'Europe/Paris', vehicle: { departureTime: '06:45', targetSocPct: 85 } });
    const now = Date.parse('2026-12-01T10:00:00Z'); // Tuesday 11:00 in Paris
    const boost = await wallbox(['boost', '90%', '--until', '07:00', '--config', h.cfg], {}, now);
    assert.equal(boost.code, 0, boost.err);
    assert.match(boost.out, /charge now to 90 % until 2026-12-02 07:00 \(Europe\/Paris/);
    const pause = await wallbox(['pause-v2g', 'friday', '--config', h.cfg], {}, now);
    assert.equal(pause.code, 0, pause.err);
    const reserve = await wallbox(['reserve', '--config', h.cfg], {}, now);
    assert.equal(reserve.code, 0, reserve.err);
    const o = fileJson(h.cfg).overrides;
    assert.equal(o.boost.until, '2026-12-02T06:00:00Z');
    assert.equal(o.pauseV2g.until, '2026-12-03T23:00:00Z', 'Friday 00:00 in Paris');
    assert.deepEqual([o.backupReserve.socPct, o.backupReserve.until], [85, '2026-12-02T05:45:00Z'], 'the departure target, until the next departure');
    assert.equal(fileJson(h.cfg).vehicle.departureTime, '06:45', 'the settings are kept');

    const list = await wallbox(['overrides', '--config', h.cfg], {}, now);
    assert.deepEqual(list.out.split('\n'), [
      'charge now to 90 % until 2026-12-02 07:00 (set from cli)',
      'V2G paused until 2026-12-04 00:00 (set from cli)',
      'backup reserve 85 % until 2026-12-02 06:45 (set from cli)',
    ]);
    assert.equal((await wallbox(['pause-v2g', 'off', '--config', h.cfg], {}, now)).code, 0);
    assert.equal(fileJson(h.cfg).overrides.pauseV2g, null);
    // the words after the command are the time, as said aloud
    assert.equal((await wallbox(['pause-v2g', 'until', '2026-12-24', '07:00', '--config', h.cfg], {}, now)).code, 0);
    assert.equal(fileJson(h.cfg).overrides.pauseV2g.until, '2026-12-24T06:00:00Z');
    assert.equal((await wallbox(['pause-v2g', 'off', '--config', h.cfg], {}, now)).code, 0);

    const before = readFileSync(h.cfg, 'utf8');
    const bad = await wallbox(['pause-v2g', 'someday', '--config', h.cfg], {}, now);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /"someday" is not an end time: give a time like 07:00/);
    assert.match(bad.err, /was not changed/);
    const tooHigh = await wallbox(['boost', '120', '--config', h.cfg], {}, now);
    assert.match(tooHigh.err, /the boost target must be a percentage from 1 to 100; you gave 120/);
    assert.equal(readFileSync(h.cfg, 'utf8'), before);
  });
});

describe('the command itself', () => {
  test('--version prints the package version; --help per command', async () => {
    const pkg = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string };
    const v = await wallbox(['--version']);
    assert.equal(v.code, 0);
    assert.equal(v.out, `wallbox ${pkg.version}`);
    for (const [cmd, words] of [['status', /last-known/], ['config', /merges into the section/], ['boost', /Charge now/], ['pause-v2g', /No grid discharge/], ['reserve', /power cut/], ['ledger', /local time/], ['events', /newest first/], ['run', /--log-level/], ['simulate', /virtual clock/]] as const) {
      const r = await wallbox([cmd, '--help']);
      assert.equal(r.code, 0, `${cmd}: ${r.err}`);
      assert.match(r.out, new RegExp(`usage: wallbox ${cmd}`));
      assert.match(r.out, words, cmd);
    }
    const wrong = await wallbox(['status', '--nope']);
    assert.equal(wrong.code, 2);
    assert.match(wrong.err, /usage: wallbox status/, 'a usage error shows that command\'s help');
  });

  test('the log level: --log-level or WALLBOX_LOG_LEVEL, a wrong one names what was given', async () => {
    assert.equal(logLevelFrom(undefined, {}), 'info');
    assert.equal(logLevelFrom(undefined, { WALLBOX_LOG_LEVEL: 'WARN' }), 'warn');
    assert.equal(logLevelFrom('debug', { WALLBOX_LOG_LEVEL: 'warn' }), 'debug', 'the flag wins');
    const r = await wallbox(['run', '--log-level', 'loud']);
    assert.equal(r.code, 2);
    assert.match(r.err, /--log-level must be one of debug, info, warn, error; you gave "loud"/);
    const e = await wallbox(['run'], { WALLBOX_LOG_LEVEL: 'chatty' });
    assert.equal(e.code, 2);
    assert.match(e.err, /WALLBOX_LOG_LEVEL must be one of/);
  });
});
