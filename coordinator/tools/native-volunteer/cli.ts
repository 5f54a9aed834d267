// `npm run volunteers -- --native`: N native volunteers in this process, sharing one GPU device
// (one NativeCompute), each with its own identity file. Runs until SIGINT/SIGTERM, then hands the
// units in hand back and exits 0. Loaded by main.ts (tsx) or the GPU kit's bundle.
import { writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { NativeCompute, type BackendChoice } from './compute';
import { installWebRtc, installWebSocket } from './node-globals';
import { useSwiftShader } from './webgpu';

export const NATIVE_USAGE = `usage: npm run volunteers -- --native --count N --coordinator URL [options]
  Native volunteers: no browser; web/gpu's WGSL kernels on the GPU through Dawn (the webgpu npm
  package, Vulkan), ONNX units on onnxruntime-node. Runs until Ctrl-C, which hands units back.
  --state DIR       identity keys (volunteer-<i>.key, 0600) and the kernel tuning (default ~/.tabgrid/native)
  --backend B       auto (the faster on a short matmul, default), webgpu or cpu (onnxruntime-node)
  --name NAME       display name (volunteer i > 0 gets NAME-i)
  --no-tune         skip the kernel autotuner (default tiling)
  --swiftshader     use SwiftShader's Vulkan driver (no GPU; for testing) unless VK_ICD_FILENAMES is set
  --no-p2p          do not share input shards with peers
  --p2p-bind ADDR   the address WebRTC uses (default: 127.0.0.1 for a coordinator on loopback, else all)
  --interval S      seconds between progress lines (default 30; 0: none)
  --stats FILE      on exit, also write each volunteer's figures (units, compute time, shard bytes
                    from peers and from the coordinator) to FILE as JSON`;

export interface NativeCliOptions {
  count: number;
  url: string;
  state: string;
  backend: BackendChoice;
  tune: boolean;
  name?: string;
  p2p: boolean;
  p2pBind?: string;
  interval: number;
  /** Where to write the volunteers' figures on exit. */
  stats?: string;
}

export function parseNativeArgs(argv: string[]): NativeCliOptions | 'help' {
  const { values } = parseArgs({
    args: argv,
    options: {
      native: { type: 'boolean', default: true },
      count: { type: 'string', default: '1' },
      coordinator: { type: 'string', default: 'http://localhost:8080' },
      state: { type: 'string', default: join(homedir(), '.tabgrid', 'native') },
      backend: { type: 'string', default: 'auto' },
      name: { type: 'string' },
      'no-tune': { type: 'boolean', default: false },
      swiftshader: { type: 'boolean', default: false },
      'no-p2p': { type: 'boolean', default: false },
      'p2p-bind': { type: 'string' },
      interval: { type: 'string', default: '30' },
      stats: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) return 'help';
  const count = Number(values.count);
  if (!Number.isInteger(count) || count < 1 || count > 64) throw new Error(`--count must be 1–64\n${NATIVE_USAGE}`);
  const url = values.coordinator.replace(/\/+$/, '');
  if (!/^https?:\/\//.test(url)) throw new Error(`--coordinator must be an http(s) URL\n${NATIVE_USAGE}`);
  if (!['auto', 'webgpu', 'cpu'].includes(values.backend)) throw new Error(`--backend must be auto, webgpu or cpu\n${NATIVE_USAGE}`);
  if (values.swiftshader) useSwiftShader();
  return {
    count,
    url,
    state: resolve(values.state),
    backend: values.backend as BackendChoice,
    tune: !values['no-tune'],
    name: values.name,
    p2p: !values['no-p2p'],
    p2pBind: values['p2p-bind'],
    interval: Math.max(0, Number(values.interval) || 0),
    stats: values.stats === undefined ? undefined : resolve(values.stats),
  };
}

export async function runNativeCli(argv: string[], log = (msg: string) => console.log(`[native] ${msg}`)): Promise<void> {
  const opts = parseNativeArgs(argv);
  if (opts === 'help') return console.log(NATIVE_USAGE);
  installWebSocket();
  const rtcProblem = opts.p2p ? await installWebRtc() : 'off (--no-p2p)';
  if (rtcProblem) log(`peer-to-peer: ${rtcProblem}; inputs come from the coordinator`);
  const { startNativeVolunteer, formatFlops, describeStats } = await import('./volunteer');
  log(`starting ${opts.count} native volunteer(s) for ${opts.url}`);
  const compute = await NativeCompute.start({ backend: opts.backend, tune: opts.tune, tuningFile: join(opts.state, 'tuning.json'), log });
  log(compute.describe());
  const volunteers = Array.from({ length: opts.count }, (_, i) =>
    startNativeVolunteer({
      url: opts.url,
      identityFile: join(opts.state, `volunteer-${i}.key`),
      compute,
      name: opts.name && i > 0 ? `${opts.name}-${i}` : opts.name,
      label: `#${i}`,
      p2pBindAddress: opts.p2pBind,
      log,
    }),
  );
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: stopping`);
    const stats = volunteers.map((v) => v.stats());
    for (const [i, s] of stats.entries()) log(`#${i} ${describeStats(s)}`);
    if (opts.stats) writeFileSync(opts.stats, JSON.stringify({ volunteers: stats }, null, 2) + '\n');
    // No compute.close(): a unit may still be running on the GPU, and destroying the device waits
    // for it. The process ends; the driver reclaims the device.
    void Promise.all(volunteers.map((v) => v.stop())).finally(() => process.exit(0));
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  if (opts.interval > 0) {
    setInterval(() => {
      for (const [i, v] of volunteers.entries()) {
        const s = v.state();
        const speed = s.lastGflops === null ? '' : `; last unit ${formatFlops(s.lastGflops * 1e9, '/s')}`;
        log(`#${i} ${s.volunteerId ?? '…'}: ${s.phase}; ${s.unitsDone} units, credit ${formatFlops(s.credit)}${speed}`);
      }
    }, opts.interval * 1000);
  }
}
