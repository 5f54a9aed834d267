// Shared helpers for the coordinator's vitest suites (imported by *.test.ts only).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import WebSocket from 'ws';
import { startCoordinator, type Coordinator, type CoordinatorOptions } from '../app.js';
import type { IceServer, JobStatus } from '../protocol/index.js';
import { SqliteStore } from '../store/sqlite/store.js';

/** A fresh directory under the OS temp dir; remove it with `removeDir`. */
export function makeTempDir(prefix = 'tabgrid-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function removeDir(dir: string) {
  rmSync(dir, { recursive: true, force: true });
}

/** Deterministic PRNG (mulberry32): tests are reproducible. */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** rows × cols float32 values uniform in [lo, hi). */
export function randomMatrix(rows: number, cols: number, seed: number, lo = -1, hi = 1): Float32Array {
  const next = rng(seed);
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < out.length; i++) out[i] = lo + (hi - lo) * next();
  return out;
}

/** The tests' admin token: strong enough for a coordinator to start with (it refuses under 128 bits). */
export const TOKEN = 'tg_vitest_3f9a1c7e5b2d4068af1e9c3b7d5a2f60';

export interface TestCoordinator {
  c: Coordinator;
  dir: string;
  /** http://127.0.0.1:<port> (http://[::1]:<port> on IPv6) */
  base: string;
  logs: string[];
  api(path: string, init?: RequestInit & { token?: string | null }): Promise<Response>;
  uploadShard(bytes: Uint8Array): Promise<string>;
  submitJob(body: unknown): Promise<string>;
  waitForJob(id: string, timeoutMs?: number): Promise<JobStatus>;
  /** Closes the coordinator and removes its data directory. */
  stop(opts?: { keepDir?: boolean }): Promise<void>;
}

export async function startTestCoordinator(
  opts: {
    dir?: string;
    leaseMs?: number;
    heartbeatMs?: number;
    staticDir?: string;
    database?: string;
    iceServers?: IceServer[];
    /** The loopback address to listen on: 127.0.0.1 (default) or ::1 (IPv6). */
    host?: '127.0.0.1' | '::1';
    /** Sees each log line as it is written (the e2e failure report timestamps them). */
    onLog?: (msg: string) => void;
  } & Pick<CoordinatorOptions, 'security' | 'trustPolicy'> = {},
): Promise<TestCoordinator> {
  const dir = opts.dir ?? makeTempDir();
  const logs: string[] = [];
  const c = await startCoordinator({
    dataDir: dir,
    port: 0,
    host: opts.host ?? '127.0.0.1',
    apiToken: TOKEN,
    leaseMs: opts.leaseMs,
    security: opts.security,
    trustPolicy: opts.trustPolicy,
    heartbeatMs: opts.heartbeatMs,
    database: opts.database,
    iceServers: opts.iceServers,
    staticDir: opts.staticDir ?? join(dir, 'no-static'),
    log: (msg) => {
      logs.push(msg);
      opts.onLog?.(msg);
    },
  });
  const base = opts.host === '::1' ? `http://[::1]:${c.port}` : `http://127.0.0.1:${c.port}`;
  let stopped = false;
  const api = (path: string, init: RequestInit & { token?: string | null } = {}) => {
    const { token = TOKEN, ...rest } = init;
    const headers = new Headers(rest.headers);
    if (token !== null) headers.set('authorization', `Bearer ${token}`);
    return fetch(base + path, { ...rest, headers });
  };
  const t: TestCoordinator = {
    c,
    dir,
    base,
    logs,
    api,
    async uploadShard(bytes) {
      const res = await t.api('/api/shards', {
        method: 'POST',
        headers: { 'content-type': 'application/octet-stream' },
        body: new Uint8Array(bytes), // a copy typed Uint8Array<ArrayBuffer>, as BodyInit wants
      });
      if (res.status !== 201) throw new Error(`upload failed: ${res.status} ${await res.text()}`);
      return ((await res.json()) as { sha256: string }).sha256;
    },
    async submitJob(body) {
      const res = await t.api('/api/jobs', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      if (res.status !== 201) throw new Error(`submit failed: ${res.status} ${await res.text()}`);
      return ((await res.json()) as { id: string }).id;
    },
    async waitForJob(id, timeoutMs = 20_000) {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const res = await t.api(`/api/jobs/${id}`);
        const status = (await res.json()) as JobStatus;
        if (status.state === 'done' || status.state === 'failed') return status;
        if (Date.now() > until) throw new Error(`job ${id} still ${status.state} (${status.progress.done}/${status.progress.total})`);
        await sleep(20);
      }
    },
    async stop(stopOpts = {}) {
      if (!stopped) {
        stopped = true;
        await c.close();
      }
      if (!stopOpts.keepDir) removeDir(dir);
    },
  };
  return t;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A loopback port nothing listens on (one just freed): what a client meets when the coordinator is down. */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Opens `base`'s /ws with the given headers; resolves with the HTTP status of a refused handshake, or 101. */
export function wsHandshakeStatus(base: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolveStatus) => {
    const ws = new WebSocket(base.replace(/^http/, 'ws') + '/ws', { headers });
    ws.on('open', () => {
      ws.close();
      resolveStatus(101);
    });
    ws.on('unexpected-response', (_req, res) => resolveStatus(res.statusCode ?? 0));
    ws.on('error', () => undefined);
  });
}

/** Polls until `get` returns something truthy. */
export async function waitFor<T>(get: () => T | undefined | null | false, timeoutMs = 10_000, what = 'condition'): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = get();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** Polls until `get` resolves true (an answer that comes over HTTP). */
export async function until(get: () => Promise<boolean>, what = 'condition', timeoutMs = 10_000): Promise<void> {
  for (const end = Date.now() + timeoutMs; !(await get()); await sleep(50)) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
  }
}

/**
 * Runs the CLI (`tsx coordinator/cli.ts …`, i.e. `npm run ledger|tokens -- …`), or another script
 * of the repository, with extra environment variables; its exit status and output.
 */
export function runCli(args: string[], env: NodeJS.ProcessEnv = {}, script = 'coordinator/cli.ts'): { status: number | null; out: string } {
  const root = resolve(import.meta.dirname, '../..');
  const r = spawnSync(process.execPath, [resolve(root, 'node_modules/tsx/dist/cli.mjs'), resolve(root, script), ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 120_000,
  });
  return { status: r.status, out: r.stdout + r.stderr };
}

/**
 * Runs a bench (`node <args>` in the repository root, e.g. `['--import', 'tsx', 'bench/x.ts', …]`) to
 * its end and parses the JSON document it prints; a run that fails throws with its output.
 */
export function runBench<T>(args: string[], timeoutMs: number): T {
  const root = resolve(import.meta.dirname, '../..');
  const run = spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8', timeout: timeoutMs });
  if (run.status !== 0) throw new Error(`bench failed (exit status ${run.status}):\n${run.stdout}\n${run.stderr}`);
  return JSON.parse(run.stdout.slice(run.stdout.indexOf('{'))) as T;
}

/** Matmul as a float32 device computes it (device-math.ts). */
export { float32Matmul } from './device-math.js';

/** From the database: for each volunteer, 2·rows·cols·k summed over units it has a valid result for. */
export async function flopsOfValidResults(dbFile: string): Promise<Map<string, number>> {
  const store = new SqliteStore(dbFile);
  try {
    const rows = store.db
      .prepare(`SELECT r.volunteer_id AS v, wu.params AS params FROM results r JOIN work_units wu ON wu.id = r.wu_id WHERE r.state = 'valid'`)
      .all() as { v: string; params: string }[];
    const out = new Map<string, number>();
    for (const { v, params } of rows) {
      const { m, k, n } = JSON.parse(params) as { m: number; k: number; n: number };
      out.set(v, (out.get(v) ?? 0) + 2 * m * n * k);
    }
    return out;
  } finally {
    await store.close();
  }
}
