// Start-up benchmark: how soon a volunteer who presses Start is on the board and computing, and how
// many bytes it downloaded first. Each run opens a fresh Chromium profile (headless, WebGPU on
// whatever adapter it has) on /room/<CODE> of a local coordinator with a queued one-unit matmul
// job, types a name, presses Start and times, from the click:
//   hello          the page's hello frame leaves on the WebSocket
//   board          the room's board (GET /api/rooms/<code>/snapshot) lists the name, online
//   computing      the page's status first says "Computing"
//   accepted       the coordinator acknowledges the first result as accepted
// and counts the bytes the coordinator sent the browser (through a counting TCP proxy: headers,
// bodies, WebSocket frames, shards) from the page load to the first unit computing. Then the same
// profile opens the page again ("warm": HTTP cache and IndexedDB kept) and is timed the same way.
// Prints one JSON document: medians over the runs, and every run. `npm run bench:startup [-- --runs 5]`.
import { chromium, type Page } from '@playwright/test';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer, type AddressInfo, type Socket } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { toNpy } from '../coordinator/protocol/npy.js';
import type { RoomCreated, RoomSnapshot } from '../coordinator/protocol/index.js';
import { ensureWebBuilt } from '../coordinator/http/web-build.js';
import { randomMatrix, startTestCoordinator } from '../coordinator/testing/helpers.js';
import { CHROMIUM, CHROMIUM_ARGS } from '../playwright.config.js';

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const RUNS = arg('runs', 5);
const SIZE = arg('size', 256);
const TIMEOUT_MS = 90_000;
const ROOT = resolve(import.meta.dirname, '..');

/** A TCP proxy in front of the coordinator that counts the bytes it sends to the browser, with times. */
async function countingProxy(target: number) {
  const sockets = new Set<Socket>();
  let total = 0;
  const timeline: { t: number; bytes: number }[] = [];
  const server = createServer((client) => {
    const upstream = createConnection({ host: '127.0.0.1', port: target });
    sockets.add(client).add(upstream);
    upstream.on('data', (chunk: Buffer) => {
      total += chunk.length;
      timeline.push({ t: Date.now(), bytes: total });
    });
    client.pipe(upstream);
    upstream.pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    reset() {
      total = 0;
      timeline.length = 0;
    },
    /** Bytes sent to the browser up to time t (Date.now()). */
    bytesAt(t: number): number {
      let bytes = 0;
      for (const e of timeline) if (e.t <= t) bytes = e.bytes;
      return bytes;
    },
    get total() {
      return total;
    },
    close() {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

/**
 * Records in the page, by wall clock: when Start was pressed, and when the status first said
 * "Computing". A string, not a function: tsx would wrap a function's inner names in a helper the
 * page lacks.
 */
const PAGE_PROBE = `(() => {
  const b = (window.__bench = {});
  document.addEventListener('click', (e) => {
    const el = e.target && e.target.closest ? e.target.closest('button') : null;
    if (el && /Start computing/.test(el.textContent || '') && b.start === undefined) b.start = Date.now();
  }, true);
  const check = () => {
    if (b.computing !== undefined || b.start === undefined) return;
    const phase = document.querySelector('[data-testid=phase]');
    if (phase && /^\\s*Computing/.test(phase.textContent || '')) {
      b.computing = Date.now();
      const backend = document.querySelector('[data-testid=backend]');
      b.backend = backend ? backend.getAttribute('data-backend') : undefined;
    }
  };
  new MutationObserver(check).observe(document, { subtree: true, childList: true, characterData: true });
})();`;

interface Run {
  helloMs: number | null;
  boardMs: number | null;
  computingMs: number | null;
  acceptedMs: number | null;
  bytesBeforeFirstUnit: number | null;
  /** What the first unit ran on, where the page says. */
  backend: string | null;
  /** The largest responses before the first unit, as the browser saw them (encoded bytes). */
  largest: { url: string; bytes: number }[];
}

const median = (xs: (number | null)[]): number | null => {
  const v = xs.filter((x): x is number => x !== null).sort((a, b) => a - b);
  if (v.length === 0) return null;
  return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
};

ensureWebBuilt((m) => console.error(m));
const grid = await startTestCoordinator({ staticDir: resolve(ROOT, 'dist'), onLog: () => undefined });
const proxy = await countingProxy(grid.c.port);
const base = `http://127.0.0.1:${proxy.port}`;

async function queueRoomAndJob(label: string): Promise<string> {
  const res = await grid.api('/api/rooms', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: `bench ${label}` }) });
  const room = (await res.json()) as RoomCreated;
  const a = await grid.uploadShard(toNpy([SIZE, SIZE], randomMatrix(SIZE, SIZE, 1)));
  const b = await grid.uploadShard(toNpy([SIZE, SIZE], randomMatrix(SIZE, SIZE, 2)));
  await grid.submitJob({ kind: 'matmul', inputs: { a, b }, replication: 1, adaptive: false, tile: { rows: SIZE, cols: SIZE } });
  return room.code;
}

async function boardShows(code: string, name: string, since: number): Promise<number | null> {
  while (Date.now() - since < TIMEOUT_MS) {
    const snap = (await (await grid.api(`/api/rooms/${code}/snapshot`)).json()) as RoomSnapshot;
    if (snap.memberList.some((m) => m.name === name && m.online)) return Date.now();
    await new Promise((r) => setTimeout(r, 20));
  }
  return null;
}

async function timeOneVisit(profile: string, label: string): Promise<Run> {
  const code = await queueRoomAndJob(label);
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    args: [...CHROMIUM_ARGS, '--enable-unsafe-webgpu'],
    headless: true,
    viewport: { width: 390, height: 844 },
  });
  try {
    const page: Page = context.pages()[0] ?? (await context.newPage());
    await page.addInitScript({ content: PAGE_PROBE });
    let hello: number | null = null;
    let accepted: number | null = null;
    page.on('websocket', (ws) => {
      ws.on('framesent', (f) => {
        if (hello === null && typeof f.payload === 'string' && f.payload.includes('"type":"hello"')) hello = Date.now();
      });
      ws.on('framereceived', (f) => {
        if (accepted === null && typeof f.payload === 'string' && /"type":"result-ack"[^}]*"accepted":true/.test(f.payload)) accepted = Date.now();
      });
    });
    const responses: { url: string; bytes: number; t: number }[] = [];
    page.on('requestfinished', (req) => {
      void req
        .sizes()
        .then((s) => responses.push({ url: req.url().replace(base, ''), bytes: s.responseBodySize + s.responseHeadersSize, t: Date.now() }))
        .catch(() => undefined);
    });
    proxy.reset();
    await page.goto(`${base}/room/${code}`);
    const name = `student-${label}`;
    await page.getByTestId('student-name').fill(name);
    await page.getByRole('button', { name: 'Start computing' }).click();
    const start = (await page.evaluate(() => (window as unknown as { __bench: { start?: number } }).__bench.start)) ?? Date.now();
    const board = await boardShows(code, name, start);
    const probe = await page
      .waitForFunction(() => (window as unknown as { __bench: { computing?: number } }).__bench.computing, undefined, { timeout: TIMEOUT_MS, polling: 50 })
      .then(() => page.evaluate(() => (window as unknown as { __bench: { computing: number; backend?: string } }).__bench))
      .catch(() => null);
    const until = Date.now() + TIMEOUT_MS;
    while (accepted === null && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    const since = (t: number | null) => (t === null ? null : t - start);
    return {
      helloMs: since(hello),
      boardMs: since(board),
      computingMs: since(probe?.computing ?? null),
      acceptedMs: since(accepted),
      bytesBeforeFirstUnit: probe ? proxy.bytesAt(probe.computing) : null,
      backend: probe?.backend ?? null,
      largest: responses
        .filter((r) => !probe || r.t <= probe.computing + 50)
        .sort((x, y) => y.bytes - x.bytes)
        .slice(0, 4)
        .map(({ url, bytes }) => ({ url, bytes })),
    };
  } finally {
    await context.close();
  }
}

const cold: Run[] = [];
const warm: Run[] = [];
try {
  for (let i = 0; i < RUNS; i++) {
    const profile = mkdtempSync(join(tmpdir(), 'tabgrid-bench-profile-'));
    try {
      cold.push(await timeOneVisit(profile, `${i}-cold`));
      console.error(`run ${i + 1} cold: ${JSON.stringify(cold.at(-1))}`);
      warm.push(await timeOneVisit(profile, `${i}-warm`));
      console.error(`run ${i + 1} warm: ${JSON.stringify(warm.at(-1))}`);
    } finally {
      rmSync(profile, { recursive: true, force: true });
    }
  }
  const summary = (runs: Run[]) => ({
    startToHelloMs: median(runs.map((r) => r.helloMs)),
    startToBoardMs: median(runs.map((r) => r.boardMs)),
    startToComputingMs: median(runs.map((r) => r.computingMs)),
    startToAcceptedMs: median(runs.map((r) => r.acceptedMs)),
    bytesBeforeFirstUnit: median(runs.map((r) => r.bytesBeforeFirstUnit)),
    mibBeforeFirstUnit: ((median(runs.map((r) => r.bytesBeforeFirstUnit)) ?? 0) / 1048576).toFixed(2),
  });
  console.log(
    JSON.stringify(
      {
        bench: 'startup',
        date: new Date().toISOString(),
        browser: execFileSync(CHROMIUM, ['--version'], { encoding: 'utf8' }).trim(),
        cores: cpus().length,
        job: `one ${SIZE}×${SIZE}·${SIZE}×${SIZE} matmul unit, queued before the page opens`,
        runs: RUNS,
        median: { cold: summary(cold), warm: summary(warm) },
        cold,
        warm,
      },
      null,
      2,
    ),
  );
} finally {
  proxy.close();
  await grid.stop();
  process.exit(0);
}
