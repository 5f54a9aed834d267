// Headless volunteers: N real Chromium pages that open a coordinator's volunteer page, press
// "Start computing" and keep computing on WebGPU — for people who donate a server or a GPU box,
// and for the churn and crash tests. Each volunteer has its own browser context, hence its own
// IndexedDB and its own identity key (kept across runs with --profile).
//   npm run volunteers -- --count 4 --coordinator http://grid.example:8080
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

/** Debian's Chromium with WebGPU enabled (see DESIGN.md: SwiftShader when there is no GPU). */
export const CHROMIUM_PATH = process.env.CHROMIUM ?? '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--enable-unsafe-webgpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  // A volunteer tab in the background must keep computing.
  '--disable-background-timer-throttling',
  '--disable-renderer-backgrounding',
];

export interface VolunteerStatus {
  index: number;
  volunteerId: string | null;
  phase: string;
  unitsDone: number;
  credit: number;
  /** The page's last problem (a refused result, a restarted compute worker…), null when none. */
  lastError: string | null;
}

export interface HeadlessVolunteer {
  readonly index: number;
  readonly page: Page;
  status(): Promise<VolunteerStatus>;
  /** Closes the volunteer's browser context: to the coordinator, a tab that was closed. */
  kill(): Promise<void>;
  readonly alive: boolean;
}

export interface LaunchOptions {
  count: number;
  /** Coordinator base URL, e.g. http://127.0.0.1:8080 */
  url: string;
  executablePath?: string;
  extraArgs?: string[];
  /** Keep each volunteer's identity in <profile>/volunteer-<i> across runs. */
  profile?: string;
  /**
   * False: skip the WebGPU kernel autotuner (`?tune=off`, the default tiling). Each fresh
   * identity tunes once (cached in its profile), ~13 s per volunteer on SwiftShader: tests skip it.
   */
  tune?: boolean;
  /** Volunteers starting at once (default 3): a start is mostly waiting on page load. */
  concurrency?: number;
  log?: (msg: string) => void;
}

export interface VolunteerFleet {
  volunteers: HeadlessVolunteer[];
  close(): Promise<void>;
}

// Plain JS strings, not functions: tsx's transpiled functions reference helpers the page lacks.
const READ_PAGE = `(() => {
  const q = (id) => document.querySelector('[data-testid="' + id + '"]');
  return { id: q('volunteer-id')?.textContent ?? '', phase: q('phase')?.textContent ?? '',
    units: q('units-done')?.textContent ?? '', credit: q('credit')?.getAttribute('data-credit') ?? '',
    error: q('last-error')?.textContent ?? '' };
})()`;

async function readStatus(index: number, page: Page): Promise<VolunteerStatus> {
  const raw = (await page.evaluate(READ_PAGE)) as { id: string; phase: string; units: string; credit: string; error: string };
  const id = raw.id.trim();
  return {
    index,
    volunteerId: /^v_[0-9a-f]+$/.test(id) ? id : null,
    phase: raw.phase.trim() || 'starting',
    unitsDone: Number(raw.units) || 0,
    credit: Number(raw.credit) || 0,
    lastError: raw.error.trim() || null,
  };
}

async function startPage(page: Page, url: string, tune: boolean) {
  await page.goto(tune ? url : `${url}/?tune=off`);
  await page.getByRole('button', { name: 'Start computing' }).click();
  // Started once the coordinator has welcomed this identity. (A locator, not waitForFunction: the
  // page's CSP forbids the string evaluation that waitForFunction polls with.)
  await page.getByTestId('volunteer-id').filter({ hasText: /^\s*v_[0-9a-f]+\s*$/ }).waitFor({ timeout: 120_000 });
}

export async function launchVolunteers(opts: LaunchOptions): Promise<VolunteerFleet> {
  const log = opts.log ?? (() => {});
  const launch = { executablePath: opts.executablePath ?? CHROMIUM_PATH, headless: true, args: [...CHROMIUM_ARGS, ...(opts.extraArgs ?? [])] };
  // One browser for ephemeral volunteers; a persistent profile needs a browser of its own each.
  const shared: Browser | null = opts.profile ? null : await chromium.launch(launch);
  const contexts: BrowserContext[] = [];
  const volunteers: HeadlessVolunteer[] = [];
  const start = async (i: number) => {
    let context: BrowserContext;
    if (opts.profile) {
      const dir = resolve(opts.profile, `volunteer-${i}`);
      mkdirSync(dir, { recursive: true });
      context = await chromium.launchPersistentContext(dir, launch);
    } else {
      context = await shared!.newContext();
    }
    contexts.push(context);
    const page = context.pages()[0] ?? (await context.newPage());
    page.on('pageerror', (err) => log(`volunteer ${i}: page error: ${err.message}`));
    await startPage(page, opts.url, opts.tune ?? true);
    let alive = true;
    context.on('close', () => (alive = false));
    volunteers[i] = {
      index: i,
      page,
      status: () => readStatus(i, page),
      kill: async () => {
        alive = false;
        await context.close();
      },
      get alive() {
        return alive;
      },
    };
    log(`volunteer ${i} started`);
  };
  // A few at a time: each start waits on its page more than on the CPU.
  let next = 0;
  const lane = async () => {
    while (next < opts.count) await start(next++);
  };
  const lanes = Array.from({ length: Math.max(1, Math.min(opts.count, opts.concurrency ?? 3)) }, lane);
  try {
    await Promise.all(lanes);
  } catch (err) {
    next = opts.count; // no more starts; those under way finish, then everything closes
    await Promise.allSettled(lanes);
    await Promise.allSettled(contexts.map((c) => c.close()));
    await shared?.close();
    throw err;
  }
  return {
    volunteers,
    async close() {
      await Promise.allSettled(contexts.map((c) => c.close()));
      await shared?.close();
    },
  };
}

const USAGE = `usage: npm run volunteers -- --count N --coordinator URL [--profile DIR] [--interval SECONDS] [--chromium PATH] [--no-tune]
  Launches N headless Chromium volunteers that compute for the coordinator until stopped (Ctrl-C).
  --profile DIR   keep each volunteer's identity (and so its credit) in DIR across runs
  --no-tune       skip the WebGPU kernel autotuner (default tiling; quicker start without a GPU)
  --interval S    seconds between progress lines (default 10)
  --native        no browser: native volunteers on Dawn and onnxruntime-node (--native --help for its options)`;

async function main() {
  if (process.argv.includes('--native')) return (await import('./native-volunteer/main')).main(process.argv.slice(2));
  const { values } = parseArgs({
    options: {
      count: { type: 'string', default: '1' },
      coordinator: { type: 'string', default: 'http://localhost:8080' },
      profile: { type: 'string' },
      interval: { type: 'string', default: '10' },
      chromium: { type: 'string' },
      'no-tune': { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) return console.log(USAGE);
  const count = Number(values.count);
  if (!Number.isInteger(count) || count < 1 || count > 64) throw new Error(`--count must be 1–64\n${USAGE}`);
  const url = values.coordinator.replace(/\/+$/, '');
  if (!/^https?:\/\//.test(url)) throw new Error(`--coordinator must be an http(s) URL\n${USAGE}`);
  const log = (msg: string) => console.log(`[volunteers] ${msg}`);
  log(`starting ${count} headless volunteer(s) for ${url}`);
  const fleet = await launchVolunteers({ count, url, profile: values.profile, executablePath: values.chromium, tune: !values['no-tune'], log });
  const stop = () => {
    log('stopping');
    void fleet.close().finally(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  const lastErrors = new Map<number, string | null>();
  const report = async () => {
    for (const v of fleet.volunteers) {
      if (!v.alive) continue;
      const s = await v.status().catch(() => null);
      if (!s) continue;
      log(`#${s.index} ${s.volunteerId ?? '…'}: ${s.phase}; ${s.unitsDone} units, ${s.credit.toExponential(3)} FLOPs credit`);
      // A new problem once, not on every report.
      if (s.lastError && s.lastError !== lastErrors.get(s.index)) log(`#${s.index}: ${s.lastError}`);
      lastErrors.set(s.index, s.lastError);
    }
  };
  await report();
  setInterval(() => void report(), Math.max(1, Number(values.interval)) * 1000);
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  main().catch((err: Error) => {
    console.error(`volunteers: ${err.message}`);
    process.exit(1);
  });
}

