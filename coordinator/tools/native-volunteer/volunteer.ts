// One native volunteer: the page's own CoordinatorClient (web/client/coordinator-client.ts) — the
// same protocol, reconnects, shard sources, leases and signed results — with a key file for its
// identity, an in-memory shard cache and NativeCompute for its kernels. Import node-globals.ts and
// install its globals before this module (the CLI and the tests do).
import type { ClientState } from '../../../web/client/coordinator-client';
import { CoordinatorClient } from '../../../web/client/coordinator-client';
import { UploadBudget } from '../../../web/p2p/upload-budget';
import type { NativeCompute } from './compute';
import { loadFileIdentity, type FileIdentity } from './identity';
import { socketsClosed } from './node-globals';
import { MemoryShardCache } from './shard-cache';

export interface NativeVolunteerOptions {
  /** Coordinator base URL. */
  url: string;
  /** The identity's key file (made on first start, 0600). */
  identityFile: string;
  compute: NativeCompute;
  name?: string;
  /** Shard cache cap in bytes (default 512 MiB). */
  cacheBytes?: number;
  /** Upload budget for peers, bytes per second (default 4 MiB/s). */
  uploadBytesPerSecond?: number;
  /** Prefix of its log lines, e.g. `#0`. */
  label?: string;
  log?: (msg: string) => void;
  onChange?: (state: ClientState) => void;
}

export interface NativeVolunteer {
  client: CoordinatorClient;
  identity: FileIdentity;
  state(): ClientState;
  /** Disconnects: the unit in hand goes back to the coordinator's queue, for someone else. */
  stop(): Promise<void>;
}

/** 4.2 MFLOP, 2.15 GFLOP, … */
export function formatFlops(flops: number, suffix = ''): string {
  if (!(flops > 0)) return `0 FLOP${suffix}`;
  const [scale, unit] = flops >= 1e12 ? [1e12, 'T'] : flops >= 1e9 ? [1e9, 'G'] : flops >= 1e6 ? [1e6, 'M'] : [1e3, 'k'];
  return `${(flops / scale).toFixed(flops / scale >= 100 ? 0 : 2)} ${unit}FLOP${suffix}`;
}

/** Log lines for what changed between two client states: what it computes, how fast, what came of it. */
export function describeChange(prev: ClientState, next: ClientState, memo: { offline: boolean }, compute?: NativeCompute): string[] {
  const out: string[] = [];
  if (next.volunteerId && next.volunteerId !== prev.volunteerId) out.push(`volunteer ${next.volunteerId}, credit ${formatFlops(next.credit)}`);
  // Once per outage, however many reconnection attempts it takes.
  if (next.phase === 'disconnected' && !memo.offline) {
    memo.offline = true;
    out.push('disconnected from the coordinator; reconnecting');
  } else if (memo.offline && (next.phase === 'waiting' || next.phase === 'paused')) {
    memo.offline = false;
    out.push('connected again');
  }
  const cur = next.current;
  if (cur?.phase === 'computing' && (prev.current?.wuId !== cur.wuId || prev.current.phase !== 'computing')) {
    out.push(`computing ${cur.wuId} of ${cur.jobId}: ${cur.kind} ${cur.shape}, ${formatFlops(cur.flops)}`);
  }
  if (cur?.phase === 'uploading' && prev.current?.phase === 'computing' && next.lastGflops) {
    const ep = cur.kind === 'onnx' && compute?.onnxEp ? ` on onnxruntime-node (${compute.onnxEp} EP)` : '';
    out.push(`computed ${cur.wuId} in ${(cur.flops / (next.lastGflops * 1e9)).toFixed(3)} s: ${formatFlops(next.lastGflops * 1e9, '/s')}${ep}`);
  }
  if (next.unitsDone > prev.unitsDone) out.push(`result accepted (${next.unitsDone} so far)`);
  if (next.credit > prev.credit && prev.volunteerId) out.push(`credit ${formatFlops(next.credit)}`);
  if (next.lastError && next.lastError !== prev.lastError) out.push(next.lastError);
  if (next.p2p !== prev.p2p && next.p2p !== 'joining') out.push(`peer-to-peer ${next.p2p}`);
  return out;
}

export function startNativeVolunteer(opts: NativeVolunteerOptions): NativeVolunteer {
  const log = opts.log ?? (() => {});
  const say = (msg: string) => log(opts.label ? `${opts.label} ${msg}` : msg);
  const identity = loadFileIdentity(opts.identityFile, say);
  if (identity.created) say(`new identity in ${identity.file}`);
  let client: CoordinatorClient | null = null;
  const cache = new MemoryShardCache(opts.cacheBytes ?? 512 * 1024 * 1024, (change) => client?.holdingsChanged(change));
  let last: ClientState | null = null;
  const memo = { offline: false };
  client = new CoordinatorClient({
    url: opts.url,
    identity,
    device: opts.compute.deviceInfo(),
    name: opts.name,
    cache,
    uploadBudget: new UploadBudget({ bytesPerSecond: opts.uploadBytesPerSecond ?? 4 * 1024 * 1024 }),
    compute: opts.compute.compute,
    restartCompute: () => opts.compute.restart(),
    onChange: (state) => {
      if (last) for (const line of describeChange(last, state, memo, opts.compute)) say(line);
      last = state;
      opts.onChange?.(state);
    },
  });
  last = client.state;
  client.start();
  const c = client;
  return {
    client: c,
    identity,
    state: () => c.state,
    async stop() {
      const inHand = c.state.current;
      c.stop();
      if (inHand) say(`stopped: ${inHand.wuId} handed back to the coordinator`);
      await socketsClosed();
    },
  };
}
