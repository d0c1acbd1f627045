/**
 * kill -9 of the real runtime (`wallbox run`) at random moments during active dispatches.
 *
 * The hardware outlives the runtime, as it does in a garage: this process hosts the simulated inverter
 * and car (stepped in real time) and serves the inverter as a SunSpec Modbus TCP device; the runtime
 * reads it through the real SunSpec driver, and gets its dispatches over MQTT from a real broker. So
 * the inverter's energy counters keep counting across kills, and its 704 reversion brings the power
 * back to 0 W when the killed runtime stops writing, as a real inverter's would.
 *
 * After each kill: the database opens, PRAGMA integrity_check is ok, every ledger row has its `ledger`
 * message (still in the outbox or already delivered to the broker), no dispatch is settled twice. At the
 * end: no dispatch is left open, and the ledger's exported energy equals what the inverter's counters
 * moved, within one tick's energy per settlement plus one counter step (the counters count whole Wh).
 *
 * Real time (a separate process has no virtual clock), with 0.1 s ticks; about two minutes.
 * KILL_SEED replays a run; KILL_LOOP_DEBUG prints each run's log and every response.
 */
import { strict as assert } from 'node:assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import mqtt from 'mqtt';
import { systemClock } from '../../hal/system-clock.ts';
import { SimSite } from '../../hal/sim/site.ts';
import { startSimSunspecServer } from '../../hal/sim/sunspec-server.ts';
import { brokerProtocolVersion, freePort, startBroker } from '../helpers/broker.ts';
import { tempDir } from './helpers.ts';

const KILLS = Number(process.env.KILL_LOOP_KILLS ?? 50);
const TICK_S = 0.1;
const POWER_W = 7000;
const CLI = new URL('../../src/cli.ts', import.meta.url).pathname;
const ROOT = new URL('../..', import.meta.url).pathname;

describe('runtime under kill -9', () => {
  it(`${KILLS} kills of wallbox run during dispatches`, { timeout: 280_000 }, async (t) => {
    const dir = tempDir(t);
    const dbPath = join(dir, 'wallbox.db');
    const broker = await startBroker();
    t.after(() => broker.stop());
    const site = new SimSite({
      clock: systemClock,
      vehicle: { capacityWh: 200_000, socPct: 95, maxChargeW: 11000, maxDischargeW: 11000 },
      inverter: { ratedW: 11000, efficiency: 0.95 },
      houseLoadW: 500,
      sheddableLoadsW: [],
    });
    site.startPhysics(20);
    t.after(() => site.stopPhysics());
    const modbusPort = await freePort();
    const server = await startSimSunspecServer({ port: modbusPort, inverter: site.inverter, car: site.car, clock: systemClock });
    t.after(() => server.close());

    const deviceId = 'killloop';
    const configPath = join(dir, 'local.json');
    writeFileSync(configPath, JSON.stringify({
      deviceId,
      inverter: { driver: 'sunspec', modbus: { host: '127.0.0.1', port: modbusPort, unitId: 1 }, reversionS: 1 },
      vehicleLink: { driver: 'sim' },
      gpio: { driver: 'sim' },
      uplink: { url: broker.url },
      control: { tickS: TICK_S },
      storage: { path: dbPath, meterCheckpointS: 0.5 },
      reward: { ratePerKWh: 0.25, currency: 'EUR' },
      vehicle: { v2gEnabled: true }, // the built-in default is off until the homeowner turns it on
      simulation: { vehicle: { socPct: 95, capacityWh: 200_000 }, serveInverter: false },
    }));

    // the aggregator: sends dispatches, collects what the device delivered
    const agg = await mqtt.connectAsync(broker.url, { clientId: 'aggregator', protocolVersion: brokerProtocolVersion() });
    t.after(() => agg.endAsync());
    // per dispatch id, every ledger message received (a list, not a set: at least once may repeat one)
    const delivered = { ledger: new Map<string, string[]>(), completed: new Set<string>(), answered: new Set<string>() };
    agg.on('message', (topic, body) => {
      const p = JSON.parse(body.toString()) as { id?: string; status?: string };
      if (topic.endsWith('/ledger') && p.id) delivered.ledger.set(p.id, [...(delivered.ledger.get(p.id) ?? []), body.toString()]);
      if (topic.endsWith('/dispatch/response') && p.id) delivered.answered.add(p.id);
      if (process.env.KILL_LOOP_DEBUG && topic.endsWith('/dispatch/response')) process.stderr.write(`response ${body.toString()}\n`);
      if (topic.endsWith('/dispatch/response') && p.id && p.status === 'completed') delivered.completed.add(p.id);
    });
    /**
     * The device subscribes just after it connects; a dispatch sent in between would be lost. A repeated
     * id with the same body is answered again and changes nothing (contract §1.1), so send until answered.
     */
    async function dispatch(id: string, durationS: number, alive: () => boolean): Promise<void> {
      const body = JSON.stringify({ id, powerW: -POWER_W, durationS });
      for (let attempt = 0; attempt < 40 && alive() && !delivered.answered.has(id); attempt++) {
        await agg.publishAsync(`wallbox/${deviceId}/dispatch`, body, { qos: 1 });
        for (let w = 0; w < 10 && !delivered.answered.has(id); w++) await new Promise((r) => setTimeout(r, 20));
      }
    }
    await agg.subscribeAsync(`wallbox/${deviceId}/#`, { qos: 1 });

    let seed = Number(process.env.KILL_SEED ?? Date.now() % 100_000);
    t.diagnostic(`seed ${seed}`);
    const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    const running = new Set<ChildProcess>();
    t.after(() => { for (const c of running) c.kill('SIGKILL'); });

    function start(): { child: ChildProcess; ready: Promise<void>; exited: Promise<number | null>; log: string[]; alive: () => boolean } {
      const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'run', '--config', configPath], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      running.add(child);
      const log: string[] = [];
      let onReady = () => {};
      const ready = new Promise<void>((r) => (onReady = r));
      const collect = (b: Buffer) => {
        for (const l of b.toString().split('\n')) {
          if (l) log.push(l);
          if (l.includes('uplink: connected')) onReady();
        }
      };
      child.stdout!.on('data', collect);
      child.stderr!.on('data', collect);
      let alive = true;
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => { alive = false; running.delete(child); onReady(); resolve(code); }));
      return { child, ready, exited, log, alive: () => alive };
    }

    const counterAtStart = site.inverter.exportedWh;
    const sent: string[] = [];
    for (let k = 0; k < KILLS; k++) {
      const run = start();
      await run.ready;
      // one or two dispatches of 1-3 s; the kill lands during or after them
      for (let j = 0; j < 1 + Math.floor(rand() * 2); j++) {
        const id = `k${k}-${j}`;
        sent.push(id);
        await dispatch(id, 1 + Math.floor(rand() * 3), run.alive);
        await new Promise((r) => setTimeout(r, rand() * 800));
      }
      run.child.kill('SIGKILL');
      await run.exited;
      if (process.env.KILL_LOOP_DEBUG) t.diagnostic(`run ${k}: answered ${[...delivered.answered].join(' ')} | ${run.log.filter((l) => !/info  (inverter|vehicle|gpio)/.test(l)).join(' / ')}`);
      await checkDatabase(dbPath, delivered.ledger);
    }

    // a last clean run settles what the last kill left open, then stops
    const last = start();
    await last.ready;
    await new Promise((r) => setTimeout(r, 2000));
    last.child.kill('SIGTERM');
    assert.equal(await last.exited, 0, last.log.join('\n'));
    await new Promise((r) => setTimeout(r, 500)); // the stop set 0 W; let the last physics step land
    const rows = await checkDatabase(dbPath, delivered.ledger);
    const counted = site.inverter.exportedWh - counterAtStart;
    const ledgerWh = rows.reduce((a, r) => a + r.exportedWh, 0);
    const tickWh = (POWER_W * TICK_S) / 3600;
    // the inverter counts whole Wh (SunSpec TotWhInj): one count of quantization over the whole run
    const counterResolutionWh = 1;
    t.diagnostic(`${sent.length} dispatches sent, ${rows.length} settled (${rows.filter((r) => r.interrupted).length} interrupted), ledger ${ledgerWh.toFixed(2)} Wh, counters ${counted.toFixed(2)} Wh`);
    const diag = new Database(dbPath, { readonly: true });
    const statuses = diag.prepare('SELECT status, count(*) AS n FROM dispatches GROUP BY status').all() as { status: string; n: number }[];
    diag.close();
    t.diagnostic(`dispatch statuses: ${statuses.map((r) => `${r.status} ${r.n}`).join(', ')}`);
    assert.ok(rows.length > 0);
    const open = statuses.filter((r) => !['completed', 'cancelled', 'superseded', 'rejected', 'expired'].includes(r.status));
    assert.deepEqual(open, [], 'dispatches left open after the clean run');
    // nothing lost, nothing doubled: one ledger message per settled dispatch, however often it came, the
    // same bytes each time (a repeat is the outbox's at-least-once, with the same seq)
    const settled = new Set(rows.map((r) => r.dispatchId));
    for (const [id, texts] of delivered.ledger) {
      assert.ok(settled.has(id), `a ledger message for ${id}, which has no ledger row`);
      assert.equal(new Set(texts).size, 1, `${texts.length} ledger messages for ${id}, differing: ${texts.join(' | ')}`);
    }
    const repeats = [...delivered.ledger.values()].filter((x) => x.length > 1).length;
    t.diagnostic(`ledger messages: ${[...delivered.ledger.values()].reduce((a, x) => a + x.length, 0)} for ${delivered.ledger.size} dispatches (${repeats} repeated, identically)`);
    const toleranceWh = tickWh * (rows.length + 1) + counterResolutionWh;
    assert.ok(Math.abs(ledgerWh - counted) <= toleranceWh, `ledger ${ledgerWh} Wh vs counters ${counted} Wh (± ${toleranceWh} Wh: one tick per settlement and one counter step)`);
  });
});

async function checkDatabase(dbPath: string, deliveredLedger: Map<string, string[]>): Promise<{ dispatchId: string; exportedWh: number; interrupted: number }[]> {
  const db = new Database(dbPath);
  let rows: { dispatchId: string; exportedWh: number; interrupted: number }[];
  let queued: Set<string>;
  try {
    assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
    if (!db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'ledger'").get()) return [];
    rows = db.prepare('SELECT dispatchId, exportedWh, interrupted FROM ledger').all() as { dispatchId: string; exportedWh: number; interrupted: number }[];
    assert.equal(new Set(rows.map((r) => r.dispatchId)).size, rows.length, 'a dispatch settled twice');
    queued = new Set((db.prepare("SELECT payload FROM outbox WHERE class = 'ledger'").all() as { payload: string }[]).map((r) => (JSON.parse(r.payload) as { id: string }).id));
  } finally {
    db.close();
  }
  // a row deleted after the broker's acknowledgement may still be on its way to the subscriber
  const missing = () => rows.filter((r) => !queued.has(r.dispatchId) && !deliveredLedger.has(r.dispatchId));
  for (let i = 0; i < 100 && missing().length; i++) await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(missing().map((r) => r.dispatchId), [], 'ledger messages neither queued nor delivered');
  return rows;
}
