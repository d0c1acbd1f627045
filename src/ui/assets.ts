/**
 * The page's static files (ui/ in the installed tree): hand-written, served as they are. Read once at
 * start into memory with a gzip copy and an ETag; only the names listed here are ever served, so no URL
 * can reach any other file (no path is built from the request).
 */
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../config/load.ts';

export const UI_DIR = join(PROJECT_ROOT, 'ui');

const FILES: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/index.html': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/app.css': { file: 'app.css', type: 'text/css; charset=utf-8' },
  '/icon.svg': { file: 'icon.svg', type: 'image/svg+xml' },
  '/manifest.webmanifest': { file: 'manifest.webmanifest', type: 'application/manifest+json' },
};

export interface Asset {
  type: string;
  body: Buffer;
  gzip: Buffer;
  etag: string;
}

export function loadAssets(dir = UI_DIR): Map<string, Asset> {
  const out = new Map<string, Asset>();
  const byFile = new Map<string, Asset>();
  for (const [path, { file, type }] of Object.entries(FILES)) {
    let a = byFile.get(file);
    if (!a) {
      const body = readFileSync(join(dir, file));
      a = { type, body, gzip: gzipSync(body, { level: 9 }), etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` };
      byFile.set(file, a);
    }
    out.set(path, a);
  }
  return out;
}
