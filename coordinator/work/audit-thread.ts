// The audit's recomputation (jobs/references.ts) on a worker thread: a train unit is H inner steps,
// an ONNX unit a model run — seconds of CPU that must not stall the event loop that serves every
// volunteer. One unit at a time; a unit that takes longer than the limit ends the thread (a fresh
// one starts for the next) and has no verdict.
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { UnitToRecompute } from '../jobs/references.js';

const ext = extname(fileURLToPath(import.meta.url));
const REFERENCES_URL = new URL(`../jobs/references${ext}`, import.meta.url).href;

// Plain JavaScript evaluated as the thread's source; it loads the TypeScript references through
// tsx's loader when the coordinator runs from source (npm start, the tests).
const THREAD_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const ready = (async () => {
  if (workerData.ts) (await import('tsx/esm/api')).register();
  return import(workerData.url);
})();
parentPort.on('message', async ({ id, wu, inputs }) => {
  try {
    const { unitReference } = await ready;
    const output = await unitReference(wu, inputs);
    parentPort.postMessage({ id, output }, [output.buffer]);
  } catch (err) {
    parentPort.postMessage({ id, error: String(err && err.message || err) });
  }
});
`;

type Reply = { id: number; output?: Float32Array; error?: string };

class AuditThread {
  private readonly worker = new Worker(THREAD_SOURCE, { eval: true, workerData: { url: REFERENCES_URL, ts: ext === '.ts' } });
  private readonly waiting = new Map<number, (r: Reply) => void>();
  private next = 0;

  constructor(private readonly onExit: () => void) {
    this.worker.unref(); // never keeps a process alive
    this.worker.on('message', (r: Reply) => {
      this.waiting.get(r.id)?.(r);
      this.waiting.delete(r.id);
    });
    const died = (why: string) => {
      this.onExit();
      for (const resolve of this.waiting.values()) resolve({ id: -1, error: why });
      this.waiting.clear();
    };
    this.worker.on('error', (err) => died(`audit thread failed: ${err.message}`));
    this.worker.on('exit', () => died('audit thread ended'));
  }

  run(wu: UnitToRecompute, inputs: Record<string, Uint8Array>, timeoutMs: number): Promise<Float32Array> {
    const id = this.next++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`recomputing took more than ${timeoutMs} ms`));
        this.onExit(); // the next unit goes to a fresh thread, not this one while it is ending
        void this.worker.terminate();
      }, timeoutMs);
      timer.unref?.();
      this.waiting.set(id, (r) => {
        clearTimeout(timer);
        if (r.output) resolve(r.output);
        else reject(new Error(r.error ?? 'no output'));
      });
      this.worker.postMessage({ id, wu, inputs });
    });
  }
}

let thread: AuditThread | null = null;

/** Recomputes one unit from its input shards on the audit thread (started on first use). */
export function recomputeOffThread(wu: UnitToRecompute, inputs: Record<string, Uint8Array>, timeoutMs: number): Promise<Float32Array> {
  const t = (thread ??= new AuditThread(() => {
    if (thread === t) thread = null;
  }));
  return t.run({ kind: wu.kind, params: wu.params, outputBytes: wu.outputBytes }, inputs, timeoutMs);
}

