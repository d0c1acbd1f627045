/**
 * Throwaway certificates for TLS tests, made with the `openssl` CLI in a temp dir: a CA, a server
 * certificate for 127.0.0.1 signed by it, a client certificate signed by it, and a second, unrelated CA
 * whose server certificate must not verify.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestPki {
  dir: string;
  caCert: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** A CA that signed nothing the broker uses. */
  otherCaCert: string;
  /** A server certificate signed by the other CA. */
  otherServerCert: string;
  otherServerKey: string;
  remove(): void;
}

export function opensslAvailable(): boolean {
  return !spawnSync('openssl', ['version'], { stdio: 'ignore' }).error;
}

function openssl(dir: string, args: string[]): void {
  const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
  if (r.error || r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${r.error?.message ?? r.stderr}`);
}

function makeCa(dir: string, name: string): void {
  openssl(dir, ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
}

function makeLeaf(dir: string, name: string, ca: string, ext: string): void {
  openssl(dir, ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`]);
  writeFileSync(join(dir, `${name}.ext`), ext);
  openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`]);
}

export function makeTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'wallbox-pki-'));
  const serverExt = 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n';
  makeCa(dir, 'ca');
  makeLeaf(dir, 'server', 'ca', serverExt);
  makeLeaf(dir, 'client', 'ca', 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n');
  makeCa(dir, 'otherca');
  makeLeaf(dir, 'otherserver', 'otherca', serverExt);
  // Mosquitto started as root reads them after dropping to its own user; these keys protect nothing
  chmodSync(dir, 0o755);
  for (const f of readdirSync(dir)) chmodSync(join(dir, f), 0o644);
  const p = (f: string) => join(dir, f);
  return {
    dir, caCert: p('ca.crt'), serverCert: p('server.crt'), serverKey: p('server.key'), clientCert: p('client.crt'), clientKey: p('client.key'),
    otherCaCert: p('otherca.crt'), otherServerCert: p('otherserver.crt'), otherServerKey: p('otherserver.key'),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** mosquitto.conf lines for a TLS listener that requires a client certificate from `caCert`. */
export function mosquittoTlsConfig(port: number, pki: { caCert: string; serverCert: string; serverKey: string }, requireClientCert = true): string[] {
  return [
    `listener ${port} 127.0.0.1`,
    `cafile ${pki.caCert}`,
    `certfile ${pki.serverCert}`,
    `keyfile ${pki.serverKey}`,
    `require_certificate ${requireClientCert}`,
    'use_identity_as_username true',
  ];
}
