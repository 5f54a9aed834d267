// Load bench: N simulated workers (Node WebSocket clients speaking the real protocol, in a child
// process) against a coordinator on 127.0.0.1 in this process. Prints JSON: sustained work units
// per second through lease -> result -> validation (Freivalds + quorum) -> signed credit, per-unit
// latency (assign -> credit, seen by the worker), and the coordinator's memory per connected worker.
//   npm run bench:coordinator -- [--workers 1000] [--units 99000] [--replication 1] [--seconds 30]
//     [--slots 4] [--batch-ms 1000]   leases per worker; how long a finished result waits for its siblings
//     [--postgres]   run on a throwaway PostgreSQL cluster instead of SQLite (TABGRID_DB)
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { constants as perfConstants, performance, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { startCoordinator } from '../coordinator/app.js';
import { toNpy } from '../coordinator/protocol/npy.js';
import { startPgCluster } from '../coordinator/testing/pg-cluster.js';
import { randomMatrix } from '../coordinator/testing/helpers.js';
import { newApiToken } from '../coordinator/access/keys.js';

const BENCH_TOKEN = newApiToken();

const { values } = parseArgs({
  options: {
    workers: { type: 'string', default: '1000' },
    units: { type: 'string', default: '99000' },
    replication: { type: 'string', default: '1' },
    // A GPU box runs a few units at once and reports what its slots finished together (batched frames).
    slots: { type: 'string', default: '4' },
    'batch-ms': { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '30' },
    tile: { type: 'string', default: '4' },
    postgres: { type: 'boolean', default: false },
  },
});
const WORKERS = Number(values.workers);
const UNITS = Number(values.units);
const REPLICATION = Number(values.replication);
const SECONDS = Number(values.seconds);
const SLOTS = Number(values.slots);
const TILE = Number(values.tile);
const K = 4;

const gc = (globalThis as { gc?: () => void }).gc;
function heapMb(): { heap: number; rss: number } {
  gc?.();
  gc?.();
  const m = process.memoryUsage();
  return { heap: m.heapUsed / 2 ** 20, rss: m.rss / 2 ** 20 };
}

function waitFor<T>(child: ChildProcess, type: string): Promise<T> {
  return new Promise((res, rej) => {
    const on = (msg: { type: string; message?: string }) => {
      if (msg.type === type) {
        child.off('message', on);
        res(msg as T);
      } else if (msg.type === 'error') rej(new Error(msg.message));
    };
    child.on('message', on);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'tabgrid-bench-'));
  const cluster = values.postgres ? await startPgCluster() : null;
  const c = await startCoordinator({ dataDir: dir, port: 0, host: '127.0.0.1', apiToken: BENCH_TOKEN, staticDir: join(dir, 'none'), database: cluster?.url, log: () => {},
    // Every simulated worker connects from 127.0.0.1: lift the per-address limits meant for the open internet.
    security: { wsMaxPerAddress: WORKERS + 16, rateLimitPerMinute: 1_000_000 },
  });
  const base = `http://127.0.0.1:${c.port}`;
  const auth = { authorization: `Bearer ${BENCH_TOKEN}` };
  let fleet: ChildProcess | null = null;
  try {
    const before = heapMb();
    fleet = fork(resolve(import.meta.dirname, 'sim-fleet.ts'), [JSON.stringify({ url: base, count: WORKERS, slots: SLOTS, batchLingerMs: Number(values['batch-ms']) })], {
      execArgv: ['--import', 'tsx', ...(process.env.BENCH_FLEET_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_FLEET_PROF}`] : [])],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const t0 = performance.now();
    await waitFor(fleet, 'connected');
    const connectSeconds = (performance.now() - t0) / 1000;
    await sleep(500);
    const after = heapMb();

    // Tiny tiles: the bench measures the coordinator's per-unit overhead, not arithmetic.
    const side = Math.ceil(Math.sqrt(UNITS));
    const [m, n] = [side * TILE, Math.ceil(UNITS / side) * TILE];
    const upload = async (rows: number, cols: number, seed: number) => {
      const res = await fetch(`${base}/api/shards`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/octet-stream' },
        body: toNpy([rows, cols], randomMatrix(rows, cols, seed)) as Uint8Array<ArrayBuffer>,
      });
      return ((await res.json()) as { sha256: string }).sha256;
    };
    const a = await upload(m, K, 1);
    const b = await upload(K, n, 2);
    const submit = await fetch(`${base}/api/jobs`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ kind: 'matmul', inputs: { a, b }, replication: REPLICATION, tile: { rows: TILE, cols: TILE } }),
    });
    if (!submit.ok) throw new Error(`the bench job was refused: HTTP ${submit.status} ${await submit.text()}`);
    const { id, workUnits } = (await submit.json()) as { id: string; workUnits: number };

    // Sample progress; the sustained rate is measured after a warm-up, until the job ends or time is up.
    const progress = async () => {
      const s = (await (await fetch(`${base}/api/jobs/${id}`, { headers: auth })).json()) as { state: string; progress: { done: number } };
      return { t: performance.now() / 1000, done: s.progress.done, state: s.state };
    };
    const start = await progress();
    let warm: typeof start | null = null;
    let cpuAtWarm = process.cpuUsage();
    // The event loop's garbage-collection pauses in the measured window.
    const gcPauses = { scavengeMs: 0, scavenges: 0, otherMs: 0 };
    let counting = false;
    const gcObserver = new PerformanceObserver((list) => {
      if (!counting) return;
      for (const e of list.getEntries() as (PerformanceEntry & { detail?: { kind?: number } })[]) {
        if (e.detail?.kind === perfConstants.NODE_PERFORMANCE_GC_MINOR) {
          gcPauses.scavengeMs += e.duration;
          gcPauses.scavenges++;
        } else gcPauses.otherMs += e.duration;
      }
    });
    gcObserver.observe({ entryTypes: ['gc'] });
    let eluAtWarm = performance.eventLoopUtilization();
    let writerAtWarm = c.writerUtilization();
    let last = start;
    while (last.state !== 'done' && last.state !== 'failed' && last.t - start.t < SECONDS) {
      await sleep(250);
      last = await progress();
      if (!warm && last.t - start.t >= 2) {
        warm = last;
        cpuAtWarm = process.cpuUsage();
        counting = true;
        eluAtWarm = performance.eventLoopUtilization();
        writerAtWarm = c.writerUtilization();
        fleet.send({ type: 'reset' });
      }
    }
    const cpu = process.cpuUsage(cpuAtWarm);
    counting = false;
    gcObserver.disconnect();
    const elu = performance.eventLoopUtilization(eluAtWarm);
    const writerElu = writerAtWarm && c.writerUtilization(writerAtWarm);
    const from = warm && last.done > warm.done ? warm : start;
    const unitsInWindow = Math.max(1, last.done - from.done); // the per-unit figures' denominator
    const report = (fleet.send({ type: 'report' }), await waitFor<{ p50: number | null; p99: number | null; samples: number; rejected: number; resultsPerFrame: number; cpuUs: number }>(fleet, 'report'));
    // No unit credited in the window (a run too short for its load): no latency to report.
    const ms = (x: number | null) => (x === null || !Number.isFinite(x) ? null : +x.toFixed(1));
    const memPeak = heapMb();
    const out = {
      bench: 'coordinator',
      store: cluster ? 'postgresql' : 'sqlite',
      workers: WORKERS,
      replication: REPLICATION,
      slots: SLOTS,
      workUnits,
      unitFlops: 2 * TILE * TILE * K,
      jobState: last.state,
      unitsDone: last.done,
      seconds: +(last.t - start.t).toFixed(2),
      wuPerSecond: Math.round((last.done - from.done) / (last.t - from.t)),
      resultsPerSecond: Math.round(((last.done - from.done) * REPLICATION) / (last.t - from.t)),
      // CPU time the coordinator spent per unit: unlike WU/s, barely moved by other load on the machine.
      coordinatorCpuUsPerWu: Math.round((cpu.user + cpu.system) / unitsInWindow),
      // Share of the time the coordinator's event loop was busy: near 1, its one thread is the limit.
      eventLoopUtilization: +elu.utilization.toFixed(2),
      // The same for the SQLite writer thread (null on PostgreSQL). Both well below 1: the machine's CPU is the limit.
      writerLoopUtilization: writerElu ? +writerElu.utilization.toFixed(2) : null,
      // The event loop's garbage-collection pauses per unit (scavenges; the rest: mark-compact and its steps),
      // what allocating less should move first; the collector's helper threads work beside them, the writer's isolate has its own.
      gcPauseUsPerWu: {
        scavenge: Math.round((gcPauses.scavengeMs * 1000) / unitsInWindow),
        other: Math.round((gcPauses.otherMs * 1000) / unitsInWindow),
        scavenges: gcPauses.scavenges,
      },
      // The simulated workers' process CPU per unit (signing, hashing, frames; from the warm-up to the report).
      fleetCpuUsPerWu: Math.round(report.cpuUs / unitsInWindow),
      latencyMs: { p50: ms(report.p50), p99: ms(report.p99), samples: report.samples },
      // Results per binary frame the workers sent: above 1, several travelled under one signature.
      resultsPerFrame: +report.resultsPerFrame.toFixed(2),
      rejectedResults: report.rejected,
      connectSeconds: +connectSeconds.toFixed(2),
      memory: {
        heapPerWorkerKiB: +(((after.heap - before.heap) * 1024) / WORKERS).toFixed(1),
        rssPerWorkerKiB: +(((after.rss - before.rss) * 1024) / WORKERS).toFixed(1),
        heapIdleMiB: +after.heap.toFixed(1),
        rssAfterRunMiB: +memPeak.rss.toFixed(1),
        gcExposed: Boolean(gc),
      },
      node: process.version,
      cpus: (await import('node:os')).cpus().length,
      loadAverage: (await import('node:os')).loadavg().map((x) => +x.toFixed(1)),
    };
    console.log(JSON.stringify(out, null, 2));
  } finally {
    fleet?.send({ type: 'stop' });
    await sleep(300);
    await c.close();
    cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  process.exit(0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
