// Builds the web app into dist/ when it is missing or older than its sources, so `npm start`
// on a fresh checkout (or after an edit) serves the current page.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '../..');
/** What the web build is made from: a change to any of these makes dist/ stale. */
const WEB_SOURCES = ['web', 'shaders', 'public', 'coordinator/protocol', 'coordinator/http/precompress.ts', 'vite.config.ts', 'vite.widget.config.ts', 'svelte.config.js', 'package.json'];
/** Every build output: the pages (vite.config.ts) and the widget bundle (vite.widget.config.ts). */
const OUTPUTS = ['index.html', 'widget.js'];

function newestMtime(path: string): number {
  if (!existsSync(path)) return 0;
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  let newest = st.mtimeMs;
  for (const entry of readdirSync(path)) newest = Math.max(newest, newestMtime(join(path, entry)));
  return newest;
}

/** Builds the web app when dist/ is missing or older than its sources. */
export function ensureWebBuilt(log: (msg: string) => void) {
  const builtAt = Math.min(...OUTPUTS.map((f) => join(ROOT, 'dist', f)).map((f) => (existsSync(f) ? statSync(f).mtimeMs : 0)));
  const sourcesAt = Math.max(...WEB_SOURCES.map((p) => newestMtime(join(ROOT, p))));
  if (builtAt >= sourcesAt) return;
  log(builtAt ? 'web app is stale: rebuilding…' : 'building the web app…');
  const vite = join(ROOT, 'node_modules', 'vite', 'bin', 'vite.js');
  for (const config of ['vite.config.ts', 'vite.widget.config.ts']) {
    const r = spawnSync(process.execPath, [vite, 'build', '-c', config, '--logLevel', 'warn'], { cwd: ROOT, stdio: 'inherit' });
    if (r.status !== 0) throw new Error(`the web build (${config}) failed (see above)`);
  }
}

