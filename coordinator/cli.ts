// Command line: `start` runs the coordinator; `ledger verify` audits a data directory's ledger.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { auditLedger } from './audit.js';
import { startCoordinator } from './coordinator.js';
import { loadCoordinatorPublicKey } from './keys.js';
import { SqliteStore } from './sqlite-store.js';

const ROOT = resolve(import.meta.dirname, '..');
/** What the web build is made from: a change to any of these makes dist/ stale. */
const WEB_SOURCES = ['web', 'shaders', 'public', 'coordinator/protocol.ts', 'coordinator/npy.ts', 'vite.config.ts', 'svelte.config.js', 'package.json'];

const USAGE = `usage:
  tabgrid start [--port N] [--host H] [--data DIR]    run the coordinator (default port 8080, data ./data)
  tabgrid ledger verify [--data DIR]                  check the ledger's chain, signatures and balances`;

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
  const built = join(ROOT, 'dist', 'index.html');
  const builtAt = existsSync(built) ? statSync(built).mtimeMs : 0;
  const sourcesAt = Math.max(...WEB_SOURCES.map((p) => newestMtime(join(ROOT, p))));
  if (builtAt >= sourcesAt) return;
  log(builtAt ? 'web app is stale: rebuilding…' : 'building the web app…');
  const vite = join(ROOT, 'node_modules', 'vite', 'bin', 'vite.js');
  const r = spawnSync(process.execPath, [vite, 'build', '--logLevel', 'warn'], { cwd: ROOT, stdio: 'inherit' });
  if (r.status !== 0) throw new Error('the web build failed (see above)');
}

function dataDirFrom(value: string | undefined): string {
  return resolve(value ?? process.env.TABGRID_DATA ?? 'data');
}

async function start(args: string[]) {
  const { values } = parseArgs({ args, options: { port: { type: 'string' }, host: { type: 'string' }, data: { type: 'string' } } });
  const port = Number(values.port ?? process.env.PORT ?? 8080);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`bad port ${values.port ?? process.env.PORT}`);
  const log = (msg: string) => console.log(`[tabgrid] ${msg}`);
  ensureWebBuilt(log);
  const c = await startCoordinator({
    dataDir: dataDirFrom(values.data),
    port,
    host: values.host ?? process.env.HOST,
    apiToken: process.env.TABGRID_API_TOKEN,
    leaseMs: process.env.TABGRID_LEASE_MS ? Number(process.env.TABGRID_LEASE_MS) : undefined,
    log,
  });
  console.log(`tabgrid coordinator listening on ${c.url}`);
  console.log(`  volunteers: open ${c.url}/`);
  console.log(`  API token:  ${c.apiToken}`);
  console.log(`  data:       ${c.dataDir}`);
  const stop = () => {
    void c.close().finally(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

async function ledger(args: string[]) {
  const [sub, ...rest] = args;
  const { values } = parseArgs({ args: rest, options: { data: { type: 'string' } } });
  if (sub !== 'verify') throw new Error(USAGE);
  const dataDir = dataDirFrom(values.data);
  const dbFile = join(dataDir, 'tabgrid.sqlite');
  if (!existsSync(dbFile)) throw new Error(`no tabgrid database at ${dbFile}`);
  const store = new SqliteStore(dbFile);
  try {
    const report = await auditLedger(store, loadCoordinatorPublicKey(dataDir));
    if (report.ok) {
      console.log(`ledger OK: ${report.entries} entries; chain, signatures and balances verified`);
    } else {
      console.error(`ledger FAILED verification:\n  ${report.problems.join('\n  ')}`);
      process.exitCode = 1;
    }
  } finally {
    await store.close();
  }
}

async function main() {
  const [command, ...args] = process.argv.slice(2);
  if (command === 'start') return start(args);
  if (command === 'ledger') return ledger(args);
  console.log(USAGE);
  process.exitCode = command ? 1 : 0;
}

main().catch((err: Error) => {
  console.error(`tabgrid: ${err.message}`);
  process.exit(1);
});
