// A coordinator in a process of its own, as `npm start` runs it (`coordinator/cli.ts start`, its
// real limits, no TABGRID_* setting but a strong token), so the attack suite meets what an
// outsider meets and can measure the process's memory and kill it.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { newApiToken } from '../../access/keys.js';
import { makeTempDir, removeDir, sleep } from '../../testing/helpers.js';
import { request } from '../../testing/loopback-http.js';

const ROOT = resolve(import.meta.dirname, '../../..');

/** The address the suite checks the coordinator from: no attack uses it. */
export const CHECKER = '127.0.0.2';

export interface CoordinatorProcess {
  base: string;
  port: number;
  /** The admin token it was started with. */
  token: string;
  dataDir: string;
  pid: number;
  /** Its resident memory now, in MiB (Linux /proc). */
  rssMiB(): number;
  /** What it printed so far. */
  output(): string;
  /** SIGKILL, then start again on the same data and port; seconds until it answered /api/health. */
  killAndRestart(): Promise<number>;
  stop(): Promise<void>;
}

/** The environment of a coordinator with its defaults: no TABGRID_* setting but those given. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('TABGRID_') && k !== 'PORT' && k !== 'HOST') env[k] = v;
  return { ...env, ...extra };
}

/** `node --import tsx coordinator/cli.ts start --no-build …` (no tsx CLI in between: a SIGKILL reaches the coordinator). */
export function spawnCoordinator(args: string[], env: NodeJS.ProcessEnv): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', resolve(ROOT, 'coordinator/cli.ts'), 'start', '--no-build', ...args], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

async function healthy(base: string, proc: ChildProcess, timeoutMs: number) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`the coordinator exited (${proc.exitCode})`);
    const ok = await request(base, '/api/health', { from: CHECKER, timeoutMs: 2000 }).then((r) => r.status === 200, () => false);
    if (ok) return;
    if (Date.now() > until) throw new Error('the coordinator did not come up');
    await sleep(50);
  }
}

/** The port a starting coordinator prints it listens on ("listening on http://host:PORT"). */
function listeningPort(proc: ChildProcess, output: () => string, timeoutMs: number): Promise<number> {
  return new Promise((done, fail) => {
    const timer = setTimeout(() => fail(new Error('the coordinator did not say where it listens')), timeoutMs);
    const look = () => {
      const m = /listening on http:\/\/[^:\s]+:(\d+)/.exec(output());
      if (!m) return;
      clearTimeout(timer);
      proc.stdout!.off('data', look);
      done(Number(m[1]));
    };
    proc.stdout!.on('data', look);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      fail(new Error(`the coordinator exited (${code})`));
    });
  });
}

export async function startCoordinatorProcess(): Promise<CoordinatorProcess> {
  const dataDir = makeTempDir('tabgrid-attacks-');
  const token = newApiToken();
  let out = '';
  let proc: ChildProcess;
  // The first start listens on any free port and says which (no port picked beforehand that another
  // process could take meanwhile); a restart takes the same one again.
  let port = 0;
  const launch = () => {
    proc = spawnCoordinator(['--port', String(port), '--host', '127.0.0.1', '--data', dataDir], cleanEnv({ TABGRID_API_TOKEN: token }));
    proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    return proc;
  };
  launch();
  let base = '';
  try {
    port = await listeningPort(proc!, () => out, 120_000);
    base = `http://127.0.0.1:${port}`;
    await healthy(base, proc!, 120_000);
  } catch (err) {
    proc!.kill('SIGKILL');
    removeDir(dataDir);
    throw new Error(`${(err as Error).message}:\n${out}`);
  }
  return {
    base,
    port,
    token,
    dataDir,
    get pid() {
      return proc.pid!;
    },
    rssMiB() {
      const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${proc.pid}/status`, 'utf8'))?.[1];
      return Number(kb) / 1024;
    },
    output: () => out,
    async killAndRestart() {
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGKILL');
      const killedAt = performance.now();
      await exited;
      launch();
      await healthy(base, proc, 120_000);
      return (performance.now() - killedAt) / 1000;
    },
    async stop() {
      if (proc.exitCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
      removeDir(dataDir);
    },
  };
}
