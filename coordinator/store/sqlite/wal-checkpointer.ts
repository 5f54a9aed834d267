// Checkpoints of the SQLite write-ahead log on a thread of their own. SQLite's automatic checkpoint
// runs inside a COMMIT, on the event loop: under load it copied pages back into the database and
// fsynced it there, about a fifth of the loop's time. Here a second connection copies committed
// frames back (PASSIVE: it never waits for the writer nor blocks it). Should the log still grow
// past a limit (the writer never paused long enough for a pass to finish), one RESTART pass waits
// for a gap between commits so that the log starts over from its beginning; the writer takes its
// lock with BEGIN IMMEDIATE, so it waits for that pass rather than failing.
import { statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

// Plain JavaScript, evaluated as the thread's source: no loader or build step involved.
const THREAD_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.file);
function pass(mode) {
  db.pragma('busy_timeout = ' + (mode === 'RESTART' ? 200 : 0));
  try {
    return db.pragma('wal_checkpoint(' + mode + ')')[0];
  } catch (err) {
    return { busy: 1, error: String(err) };
  }
}
parentPort.on('message', (msg) => {
  if (msg === 'stop') {
    db.close();
    parentPort.postMessage({ stopped: true });
    return;
  }
  const passive = pass('PASSIVE');
  // Caught up: the writer starts the log over by itself. Behind and past the limit: one RESTART,
  // with little left to copy, waits for a gap between commits and starts it over.
  const behind = passive.busy || passive.checkpointed < passive.log;
  parentPort.postMessage(behind && msg.overLimit ? { ...pass('RESTART'), restarted: true } : passive);
});
`;

export interface CheckpointerOptions {
  /** How often a PASSIVE pass runs. */
  intervalMs?: number;
  /** Past this many bytes of log, the next pass is a RESTART. */
  restartBytes?: number;
}

export class WalCheckpointer {
  private readonly worker: Worker;
  private readonly timer: NodeJS.Timeout;
  private busy = false;
  private stopped: Promise<void> | null = null;
  /** The thread has ended (an error, or stop): nothing will answer it any more. */
  private exited = false;
  /** Passes run, and RESTART passes among them (tests and diagnostics). */
  passes = 0;
  restarts = 0;

  constructor(
    private readonly file: string,
    opts: CheckpointerOptions = {},
  ) {
    const driver = createRequire(import.meta.url).resolve('better-sqlite3');
    this.worker = new Worker(THREAD_SOURCE, { eval: true, workerData: { file, driver } });
    this.worker.unref();
    this.worker.on('error', () => undefined); // a lost checkpointer only means a longer log
    this.worker.once('exit', () => {
      this.exited = true;
      this.busy = false;
    });
    const restartBytes = opts.restartBytes ?? 64 * 2 ** 20;
    this.timer = setInterval(() => {
      if (this.busy || this.stopped || this.exited) return;
      this.busy = true;
      this.worker.once('message', (result: { restarted?: boolean }) => {
        this.busy = false;
        this.passes++;
        if (result.restarted) this.restarts++;
      });
      this.worker.postMessage({ overLimit: this.walBytes() > restartBytes });
    }, opts.intervalMs ?? 1000);
    this.timer.unref();
  }

  /** False once the thread has ended (stopped, or died: a lost checkpointer only means a longer log). */
  get running(): boolean {
    return !this.exited;
  }

  private walBytes(): number {
    try {
      return statSync(`${this.file}-wal`).size;
    } catch {
      return 0;
    }
  }

  /** Stops the thread (after the pass it may be running) and closes its connection. */
  stop(): Promise<void> {
    clearInterval(this.timer);
    this.stopped ??= new Promise<void>((resolve) => {
      // A thread that already died answers nothing: waiting for it would hold up close() forever.
      if (this.exited) return resolve();
      const onStopped = (msg: { stopped?: boolean }) => {
        if (!msg.stopped) return;
        this.worker.off('message', onStopped);
        void this.worker.terminate().then(() => resolve());
      };
      this.worker.on('message', onStopped);
      this.worker.once('exit', () => resolve());
      this.worker.postMessage('stop');
    });
    return this.stopped;
  }
}
