import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { openDb } from '../../src/store/db.ts';
import { migrate, MIGRATIONS, SCHEMA_VERSION, schemaVersion } from '../../src/store/migrations.ts';
import { openStore, SchemaTooNewError } from '../../src/store/index.ts';
import { runLedgerCommand } from '../../src/store/ledger-command.ts';
import { dbIn, T0, tempDir } from './helpers.ts';

function schemaOf(path: string): string[] {
  const db = new Database(path, { readonly: true });
  const rows = db.prepare("SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name").all() as { type: string; name: string; sql: string | null }[];
  db.close();
  return rows.map((r) => `${r.type} ${r.name}: ${(r.sql ?? '').replace(/\s+/g, ' ')}`);
}

describe('migrations', () => {
  it('versions are 1..N in order', () => {
    assert.deepEqual(MIGRATIONS.map((m) => m.version), MIGRATIONS.map((_, i) => i + 1));
    assert.equal(SCHEMA_VERSION, MIGRATIONS.length);
  });

  it('an empty database is brought to the newest version, in WAL mode', (t) => {
    const path = dbIn(tempDir(t));
    const s = openStore(path);
    assert.equal(schemaVersion(s.db), SCHEMA_VERSION);
    assert.equal(s.db.pragma('journal_mode', { simple: true }), 'wal');
    assert.equal(s.db.pragma('integrity_check', { simple: true }), 'ok');
    s.close();
    // a second open applies nothing
    const db = openDb(path);
    assert.deepEqual(migrate(db), []);
    db.close();
  });

  for (let from = 1; from < SCHEMA_VERSION; from++) {
    it(`a version ${from} database is migrated to ${SCHEMA_VERSION}, keeping its data, to the same schema as a fresh one`, (t) => {
      const dir = tempDir(t);
      const old = dbIn(dir, `v${from}.db`);
      const db = openDb(old);
      assert.deepEqual(migrate(db, from), MIGRATIONS.slice(0, from).map((m) => m.version));
      assert.equal(schemaVersion(db), from);
      // data a version-`from` runtime would have written
      db.prepare("INSERT INTO meta(key, value) VALUES ('seqReserved', '5000')").run();
      db.prepare("INSERT INTO outbox(rowId, ts, class, topic, payload, qos, retain) VALUES (4321, '2026-11-23T16:00:00Z', 'response', 'dispatch/response', '{\"id\":\"d0\"}', 1, 0)").run();
      if (from >= 2) db.prepare("INSERT INTO events(atMs, kind, severity, message) VALUES (?, 'boot', 'info', 'started')").run(T0);
      db.close();

      const s = openStore(old);
      assert.equal(schemaVersion(s.db), SCHEMA_VERSION);
      assert.deepEqual(s.outbox.pending(10).map((m) => [m.seq, m.payload.id]), [[4321, 'd0']]);
      const [next] = s.outbox.enqueue([{ topic: 'state', payload: {}, qos: 0, retain: false, class: 'state' }], T0);
      assert.ok(next.seq > 5000);
      if (from >= 2) assert.equal(s.events().length, 1);
      s.close();

      const fresh = dbIn(dir, 'fresh.db');
      openStore(fresh).close();
      assert.deepEqual(schemaOf(old), schemaOf(fresh));
    });
  }

  it('a database from a newer runtime is refused with a clear message, and left untouched', (t) => {
    const path = dbIn(tempDir(t));
    openStore(path).close();
    const db = new Database(path);
    db.prepare("UPDATE meta SET value = ? WHERE key = 'schemaVersion'").run(String(SCHEMA_VERSION + 4));
    db.close();
    assert.throws(
      () => openStore(path),
      (err: Error) => err instanceof SchemaTooNewError && err.message === `database schema version ${SCHEMA_VERSION + 4} is newer than this runtime supports (${SCHEMA_VERSION}); upgrade the runtime`,
    );
    const out: string[] = [];
    assert.equal(runLedgerCommand({ dbPath: path, csv: false }, (s) => out.push(s)), 1);
    assert.match(out.join(''), /is newer than this runtime supports/);
    const check = new Database(path, { readonly: true });
    assert.equal((check.prepare("SELECT value FROM meta WHERE key = 'schemaVersion'").get() as { value: string }).value, String(SCHEMA_VERSION + 4));
    check.close();
  });

  it('a file that is not a wallbox database is refused', (t) => {
    const path = dbIn(tempDir(t));
    const db = new Database(path);
    db.exec('CREATE TABLE something (x)');
    db.close();
    assert.throws(() => openStore(path), /not a wallbox database/);
  });

  it('a migration that fails leaves the database at the previous version', (t) => {
    const path = dbIn(tempDir(t));
    const db = openDb(path);
    migrate(db, 1);
    db.exec('CREATE TABLE ledger (x)'); // collides with migration 2
    assert.throws(() => migrate(db), /already exists/);
    assert.equal(schemaVersion(db), 1);
    db.close();
  });
});
