// Command line: `start` runs the coordinator; `ledger verify` audits a data directory's ledger.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { auditLedger } from './audit.js';
import { openStorage, startCoordinator } from './coordinator.js';
import { parseIceServers } from './peer-server.js';
import { loadCoordinatorPublicKey } from './keys.js';
import { ensureWebBuilt } from './web-build.js';

const USAGE = `usage:
  tabgrid start [--port N] [--host H] [--data DIR]    run the coordinator (default port 8080, data ./data)
  tabgrid ledger verify [--data DIR]                  check the ledger's chain, signatures and balances`;

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
    database: process.env.TABGRID_DB || undefined,
    leaseMs: process.env.TABGRID_LEASE_MS ? Number(process.env.TABGRID_LEASE_MS) : undefined,
    heartbeatMs: process.env.TABGRID_HEARTBEAT_MS ? Number(process.env.TABGRID_HEARTBEAT_MS) : undefined,
    iceServers: parseIceServers(process.env.TABGRID_ICE_SERVERS),
    log,
  });
  console.log(`tabgrid coordinator listening on ${c.url}`);
  console.log(`  volunteers: open ${c.url}/`);
  console.log(`  API token:  ${c.apiToken}`);
  console.log(`  data:       ${c.dataDir}${process.env.TABGRID_DB ? ' (state and shards in PostgreSQL: TABGRID_DB)' : ''}`);
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
  const database = process.env.TABGRID_DB || undefined;
  const dbFile = join(dataDir, 'tabgrid.sqlite');
  if (!database && !existsSync(dbFile)) throw new Error(`no tabgrid database at ${dbFile}`);
  const { store } = await openStorage(dataDir, database);
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
