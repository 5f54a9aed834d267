// The load bench's workers: many SimWorkers (the real protocol, real WebSockets, own Ed25519 keys)
// in their own process, so their work does not steal the coordinator's event loop. Driven by the
// parent over IPC: it connects them, then reports per-unit latency (assign -> credit) when asked.
import { honestCompute, SimWorker } from '../coordinator/testing/sim-worker.js';

interface Options {
  url: string;
  count: number;
  slots: number;
  batchLingerMs: number;
}

const opts = JSON.parse(process.argv[2]) as Options;
const send = (msg: unknown) => process.send?.(msg);

const shardCache = new Map<string, Float32Array | Promise<Float32Array>>();
const assignedAt = new Map<string, number>();
const latencies: number[] = [];
let credits = 0;
let rejected = 0;

function onMessage(worker: number) {
  return (msg: { type: string; [k: string]: unknown }) => {
    if (msg.type === 'assign') assignedAt.set(`${worker}:${(msg.wu as { id: string }).id}`, performance.now());
    else if (msg.type === 'credit') {
      const key = `${worker}:${String(msg.wuId)}`;
      const t0 = assignedAt.get(key);
      if (t0 !== undefined) {
        latencies.push(performance.now() - t0);
        assignedAt.delete(key);
      }
      credits++;
    } else if (msg.type === 'result-ack' && !msg.accepted) rejected++;
  };
}

function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

const workers: SimWorker[] = [];

/** Result frames and results the fleet has sent so far. */
function sent() {
  return workers.reduce((t, w) => ({ frames: t.frames + w.framesSent, results: t.results + w.resultsSent }), { frames: 0, results: 0 });
}
let sentAtReset = { frames: 0, results: 0 };
let cpuAtReset = process.cpuUsage();

async function connectAll() {
  // A few at a time, like a crowd arriving, without a SYN flood on loopback.
  for (let i = 0; i < opts.count; i += 50) {
    const batch = [];
    for (let j = i; j < Math.min(opts.count, i + 50); j++) {
      const w = new SimWorker({ url: opts.url, name: `sim-${j}`, compute: honestCompute, slots: opts.slots, batchLingerMs: opts.batchLingerMs, shardCache, keepMessages: false, validateMessages: false, onMessage: onMessage(j) });
      workers.push(w);
      batch.push(w.connect());
    }
    await Promise.all(batch);
  }
  send({ type: 'connected', count: workers.length });
}

process.on('message', (msg: { type: string; since?: number }) => {
  if (msg.type === 'report') {
    const sorted = latencies.slice().sort((a, b) => a - b);
    const frames = sent();
    const resultsPerFrame = (frames.results - sentAtReset.results) / Math.max(1, frames.frames - sentAtReset.frames);
    const cpu = process.cpuUsage(cpuAtReset);
    send({ type: 'report', credits, rejected, samples: sorted.length, p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), resultsPerFrame, cpuUs: cpu.user + cpu.system });
  } else if (msg.type === 'reset') {
    latencies.length = 0;
    sentAtReset = sent();
    cpuAtReset = process.cpuUsage();
  } else if (msg.type === 'stop') {
    for (const w of workers) w.close();
    setTimeout(() => process.exit(0), 200);
  }
});

connectAll().catch((err: Error) => {
  send({ type: 'error', message: err.message });
  process.exit(1);
});
