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
  /**
   * The address WebRTC gathers ICE candidates on (node-datachannel's bindAddress). Default: 127.0.0.1
   * when the coordinator is on loopback (its peers are on this machine: candidates on other
   * interfaces are no use to them, see DESIGN.md's WebRTC notes), else every interface.
   */
  p2pBindAddress?: string;
  /** Prefix of its log lines, e.g. `#0`. */
  label?: string;
  log?: (msg: string) => void;
  onChange?: (state: ClientState) => void;
}

/** What a volunteer did since it started: its share of the machine, and where its inputs came from. */
export interface NativeVolunteerStats {
  volunteerId: string | null;
  units: number;
  /** Units the coordinator accepted for validation. */
  unitsAccepted: number;
  /** Wall time spent computing units, and this process's CPU time meanwhile (ms). */
  computeMs: number;
  computeCpuMs: number;
  /** Since the volunteer started (ms). */
  upMs: number;
  traffic: ClientState['traffic'];
}

export interface NativeVolunteer {
  client: CoordinatorClient;
  identity: FileIdentity;
  state(): ClientState;
  stats(): NativeVolunteerStats;
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

/** One stats line: units, the share of time computing, shard bytes by source. */
export function describeStats(s: NativeVolunteerStats): string {
  const kb = (n: number) => `${(n / 1024).toFixed(1)} KiB`;
  const share = s.upMs > 0 ? ` (${((100 * s.computeMs) / s.upMs).toFixed(1)}% of ${(s.upMs / 1000).toFixed(1)} s)` : '';
  const t = s.traffic;
  return `${s.units} unit${s.units === 1 ? '' : 's'} (${s.unitsAccepted} accepted), computing ${(s.computeMs / 1000).toFixed(2)} s${share}, CPU ${(s.computeCpuMs / 1000).toFixed(2)} s; shards ${kb(t.fromPeers)} from peers, ${kb(t.fromCoordinator)} from the coordinator, ${kb(t.servedToPeers)} served to peers`;
}

/** Whether the URL's host is this machine's loopback (127.0.0.0/8, ::1, localhost). */
export function isLoopbackUrl(url: string): boolean {
  const host = new URL(url).hostname;
  return host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
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
  const started = performance.now();
  const bindAddress = opts.p2pBindAddress ?? (isLoopbackUrl(opts.url) ? '127.0.0.1' : undefined);
  const work = { units: 0, computeMs: 0, computeCpuMs: 0 };
  // The compute, timed: with one volunteer in the process its CPU time is the unit's own.
  const compute: typeof opts.compute.compute = async (wu, inputs, shard) => {
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    try {
      return await opts.compute.compute(wu, inputs, shard);
    } finally {
      const { user, system } = process.cpuUsage(cpu0);
      work.units++;
      work.computeMs += performance.now() - t0;
      work.computeCpuMs += (user + system) / 1000;
    }
  };
  client = new CoordinatorClient({
    url: opts.url,
    identity,
    device: opts.compute.deviceInfo(),
    name: opts.name,
    cache,
    uploadBudget: new UploadBudget({ bytesPerSecond: opts.uploadBytesPerSecond ?? 4 * 1024 * 1024 }),
    rtcConfig: bindAddress ? { bindAddress } : undefined,
    compute,
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
    stats: () => ({ volunteerId: c.state.volunteerId, ...work, unitsAccepted: c.state.unitsDone, upMs: performance.now() - started, traffic: { ...c.state.traffic } }),
    async stop() {
      const inHand = c.state.current;
      c.stop();
      if (inHand) say(`stopped: ${inHand.wuId} handed back to the coordinator`);
      await socketsClosed();
    },
  };
}
