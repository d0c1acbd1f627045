/**
 * systemd/install.sh into a staged root (WALLBOX_INSTALL_ROOT, WALLBOX_NO_SYSTEM=1: no users, no systemctl),
 * run twice: the second run changes nothing and keeps the installer's config; the unit verifies with
 * `systemd-analyze verify` where the tool exists.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../src/config/load.ts';
import { EXIT_CONFIG } from '../../src/daemon.ts';

const SCRIPT = join(PROJECT_ROOT, 'systemd/install.sh');

function install(root: string, ...args: string[]) {
  const r = spawnSync('bash', [SCRIPT, ...args], { encoding: 'utf8', env: { ...process.env, WALLBOX_INSTALL_ROOT: root, WALLBOX_NO_SYSTEM: '1' } });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

test('install.sh into a staged root, twice: files in place, the config kept, nothing changed the second time', () => {
  const root = mkdtempSync(join(tmpdir(), 'wallbox-install-'));
  try {
    const first = install(root);
    assert.equal(first.code, 0, first.out);
    const cfg = join(root, 'etc/wallbox/local.json');
    assert.deepEqual(JSON.parse(readFileSync(cfg, 'utf8')), JSON.parse(readFileSync(join(PROJECT_ROOT, 'config/example-install.json'), 'utf8')));
    assert.equal(statSync(cfg).mode & 0o777, 0o640);
    assert.ok(existsSync(join(root, 'opt/wallbox/bin/wallbox.mjs')), 'the code is copied to the prefix');
    assert.ok(!existsSync(join(root, 'opt/wallbox/node_modules')), 'node_modules is built on the board, not copied');
    const unit = readFileSync(join(root, 'etc/systemd/system/wallbox.service'), 'utf8');
    assert.match(unit, /^NotifyAccess=main$/m);
    assert.match(unit, new RegExp(`^RestartPreventExitStatus=${EXIT_CONFIG}$`, 'm'));
    assert.match(unit, /^ExecStart=\S*node \/opt\/wallbox\/bin\/wallbox\.mjs run$/m);
    const wrapper = readFileSync(join(root, 'usr/local/bin/wallbox'), 'utf8');
    assert.match(wrapper, /WALLBOX_CONFIG:=\/etc\/wallbox\/local\.json/);
    assert.equal(statSync(join(root, 'usr/local/bin/wallbox')).mode & 0o111, 0o111);

    writeFileSync(cfg, '{"deviceId":"edited-by-the-installer"}\n');
    const second = install(root);
    assert.equal(second.code, 0, second.out);
    assert.match(second.out, /keeping the existing/);
    assert.match(second.out, /unit unchanged/);
    assert.equal(readFileSync(cfg, 'utf8'), '{"deviceId":"edited-by-the-installer"}\n');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('install.sh --can installs the can0 network file at 500 kbit/s', () => {
  const root = mkdtempSync(join(tmpdir(), 'wallbox-install-'));
  try {
    const r = install(root, '--can');
    assert.equal(r.code, 0, r.out);
    const net = readFileSync(join(root, 'etc/systemd/network/80-can0.network'), 'utf8');
    assert.match(net, /^Name=can0$/m);
    assert.match(net, /^BitRate=500000$/m);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('install.sh refuses an unknown option', () => {
  const r = install(mkdtempSync(join(tmpdir(), 'wallbox-install-')), '--bogus');
  assert.equal(r.code, 2);
  assert.match(r.out, /unknown option --bogus/);
});

const analyze = spawnSync('systemd-analyze', ['--version'], { stdio: 'ignore' }).error ? 'systemd-analyze is not installed (package "systemd")' : false;

test('systemd-analyze verify accepts the unit and the network file', { skip: analyze }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'wallbox-unit-'));
  try {
    // verify wants the unit under its own name; the ExecStart binary must exist, the script need not
    const unit = join(dir, 'wallbox.service');
    writeFileSync(unit, readFileSync(join(PROJECT_ROOT, 'systemd/wallbox.service'), 'utf8').replace('/usr/bin/node', process.execPath));
    const r = spawnSync('systemd-analyze', ['verify', unit], { encoding: 'utf8' });
    const complaints = `${r.stdout}${r.stderr}`.split('\n').filter((l) => l.includes('wallbox.service'));
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
    assert.deepEqual(complaints, []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
