// Command line: `start` runs the coordinator; `ledger …` audits, exports and checks receipts;
// `tokens …` manages researcher API tokens.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { auditLedger } from './ledger/audit.js';
import { openStorage, startCoordinator } from './app.js';
import { loadCoordinatorKeys, loadCoordinatorPublicKey } from './access/keys.js';
import { exportLedger, verifyExport, verifyReceipt, type OfflineCheck } from './ledger/export.js';
import { TokenScope } from './protocol/index.js';
import { optionsFromEnv } from './env.js';
import type { Store } from './store/store.js';
import { TokenRegistry } from './http/tokens.js';
import { ensureWebBuilt } from './http/web-build.js';

const USAGE = `usage:
  tabgrid start [--port N] [--host H] [--data DIR] [--no-build]
                                                      run the coordinator (default port 8080, data ./data;
                                                      --no-build: serve dist/ as it is, never build it)
  tabgrid ledger verify [--data DIR]                  check the ledger's chain, seals and balances
  tabgrid ledger verify --file EXPORT [--key=K]       check an exported ledger offline
  tabgrid ledger export [--data DIR] [--out FILE]     write the whole ledger as JSON for public audit
  tabgrid ledger verify-receipt FILE [--key=K]        check one credit receipt offline (K: coordinator key;
                                                      with '=', as a key may begin with '-')
  tabgrid tokens create --scope submit|admin [--name N] [--data DIR]
  tabgrid tokens list [--data DIR]
  tabgrid tokens revoke ID [--data DIR]`;

function dataDirFrom(value: string | undefined): string {
  return resolve(value ?? process.env.TABGRID_DATA ?? 'data');
}

async function start(args: string[]) {
  const { values } = parseArgs({
    args,
    options: { port: { type: 'string' }, host: { type: 'string' }, data: { type: 'string' }, 'no-build': { type: 'boolean' } },
  });
  const port = Number(values.port ?? process.env.PORT ?? 8080);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`bad port ${values.port ?? process.env.PORT}`);
  const env = optionsFromEnv(process.env); // before the build: a bad variable is said at once
  const log = (msg: string) => console.log(`[tabgrid] ${msg}`);
  if (!values['no-build']) ensureWebBuilt(log);
  const c = await startCoordinator({
    dataDir: dataDirFrom(values.data),
    port,
    host: values.host ?? process.env.HOST,
    ...env,
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

/** Opens the coordinator's database (SQLite in the data directory, or TABGRID_DB) for a one-off command. */
async function withStore<T>(dataDir: string, fn: (store: Store) => Promise<T>): Promise<T> {
  const database = process.env.TABGRID_DB || undefined;
  const dbFile = join(dataDir, 'tabgrid.sqlite');
  if (!database && !existsSync(dbFile)) throw new Error(`no tabgrid database at ${dbFile}`);
  const { store } = await openStorage(dataDir, database);
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

function report(check: OfflineCheck) {
  if (check.ok) console.log(check.message);
  else {
    console.error(`FAILED: ${check.message}`);
    process.exitCode = 1;
  }
}

function readJson(file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`cannot read ${file} as JSON: ${(err as Error).message}`);
  }
}

async function ledger(args: string[]) {
  const [sub, ...rest] = args;
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: { data: { type: 'string' }, file: { type: 'string' }, out: { type: 'string' }, key: { type: 'string' } },
  });
  const dataDir = dataDirFrom(values.data);
  if (sub === 'verify-receipt') {
    if (positionals.length !== 1) throw new Error(USAGE);
    return report(await verifyReceipt(readJson(positionals[0]), values.key));
  }
  if (sub === 'verify' && values.file) return report(verifyExport(readJson(values.file), values.key));
  if (sub === 'export') {
    const doc = await withStore(dataDir, (store) => exportLedger(store, loadCoordinatorKeys(dataDir).publicKeyRaw, Date.now()));
    const text = JSON.stringify(doc);
    if (values.out) {
      writeFileSync(values.out, text);
      console.error(`wrote ${doc.entries.length} entries to ${values.out}`);
    } else process.stdout.write(text + '\n');
    return;
  }
  if (sub !== 'verify') throw new Error(USAGE);
  await withStore(dataDir, async (store) => {
    const audit = await auditLedger(store, loadCoordinatorPublicKey(dataDir));
    if (audit.ok) {
      console.log(`ledger OK: ${audit.entries} entries under ${audit.seals} seals; chain, seals and balances verified`);
    } else {
      console.error(`ledger FAILED verification:\n  ${audit.problems.join('\n  ')}`);
      process.exitCode = 1;
    }
  });
}

async function tokens(args: string[]) {
  const [sub, ...rest] = args;
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: { data: { type: 'string' }, scope: { type: 'string' }, name: { type: 'string' } },
  });
  await withStore(dataDirFrom(values.data), async (store) => {
    const registry = new TokenRegistry(store, null);
    if (sub === 'create') {
      const scope = TokenScope.safeParse(values.scope);
      if (!scope.success) throw new Error('--scope must be submit or admin');
      const { token, info } = await registry.create(scope.data, values.name ?? null, Date.now());
      console.log(`created ${info.scope} token ${info.id}${info.name ? ` (${info.name})` : ''}; it is shown only now:\n${token}`);
    } else if (sub === 'list') {
      for (const t of await registry.list()) console.log(`${t.id}\t${t.scope}\t${new Date(t.createdAt).toISOString()}\t${t.name ?? ''}`);
    } else if (sub === 'revoke' && positionals.length === 1) {
      if (!(await registry.revoke(positionals[0]))) throw new Error(`no token ${positionals[0]}`);
      console.log(`revoked ${positionals[0]}`);
    } else throw new Error(USAGE);
  });
}

async function main() {
  const [command, ...args] = process.argv.slice(2);
  if (command === 'start') return start(args);
  if (command === 'ledger') return ledger(args);
  if (command === 'tokens') return tokens(args);
  console.log(USAGE);
  process.exitCode = command ? 1 : 0;
}

main().catch((err: Error) => {
  console.error(`tabgrid: ${err.message}`);
  process.exit(1);
});
