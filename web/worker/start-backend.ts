// Start-up of the compute worker on the main thread: opens WebGPU if there is one, sets up the CPU
// backend, takes the remembered backend choice for this device or measures both, applies a
// `?backend=` override, and describes the result as the hello's DeviceInfo. Opening WebGPU also
// autotunes its kernels (cached per GPU) unless the URL says `?tune=off`.
import type * as Comlink from 'comlink';
import { WORK_UNIT_KINDS, type DeviceInfo } from '../../coordinator/protocol';
import { openStore } from '../store/db';
import type { ComputeApi, CpuInfo, TuningInfo } from './api';
import {
  backendOverride,
  chooseBackend,
  deviceFingerprint,
  fasterBackend,
  recordStillValid,
  type Backend,
  type BackendRecord,
} from './backend-choice';

/** Job kinds this page's worker can run: every kind of the protocol (the worker implements each). */
export const SUPPORTED_KINDS = [...WORK_UNIT_KINDS];

export interface BackendStatus {
  backend: Backend;
  /** Why WebGPU is not available here (null when it is). */
  webgpuProblem: string | null;
  record: BackendRecord;
  /** True when the figures were measured now (false: remembered from an earlier visit). */
  measuredNow: boolean;
  forced: Backend | null;
  cpu: CpuInfo;
  device: DeviceInfo;
  /** The WebGPU kernel tuning (null: no WebGPU, or `?tune=off`). */
  tuning: TuningInfo | null;
}

/** `?tune=off` skips the WebGPU autotuner and runs the default tiling (quick start: tests, troubleshooting). */
export function tuningWanted(search: string): boolean {
  return new URLSearchParams(search).get('tune') !== 'off';
}

export async function startBackend(api: Comlink.Remote<ComputeApi>, search = location.search): Promise<BackendStatus> {
  const gpu = await api.init(tuningWanted(search));
  const cores = navigator.hardwareConcurrency || 1;
  const cpu = await api.initCpu(Math.min(4, cores));
  const fingerprint = deviceFingerprint({ userAgent: navigator.userAgent, cores, adapter: gpu.ok ? gpu.device.adapter : null, threads: cpu.threads });
  const db = await openStore();
  const stored = await db.get('backend', 'current');
  const now = Date.now();
  let record: BackendRecord;
  let measuredNow = false;
  if (recordStillValid(stored, fingerprint, now)) {
    record = stored;
  } else {
    // Both backends' first runs at once (ORT's wasm load, the GPU's pipeline compiles: seconds on a
    // fresh page), then each timed alone so neither figure is taken while the other runs.
    await Promise.all([gpu.ok ? api.measure('webgpu', 64, 0) : null, api.measure('cpu', 64, 0)]);
    const speeds = { webgpu: gpu.ok ? await api.measure('webgpu') : null, cpu: await api.measure('cpu') };
    record = { ...speeds, choice: fasterBackend(speeds), fingerprint, measuredAt: now };
    measuredNow = true;
    await db.put('backend', record, 'current');
  }
  const forced = backendOverride(search);
  const backend = chooseBackend(record, forced, gpu.ok);
  await api.useBackend(backend);
  const common = {
    userAgent: navigator.userAgent.slice(0, 400),
    kinds: SUPPORTED_KINDS,
    measured: { webgpu: record.webgpu, cpu: record.cpu },
    threads: cpu.threads,
  };
  const cpuName = `CPU (WebAssembly, ${cpu.threads} thread${cpu.threads === 1 ? '' : 's'})`;
  // The adapter names what computes; the GPU's features and limits are reported either way.
  const device: DeviceInfo = gpu.ok
    ? { ...gpu.device, ...common, backend, adapter: backend === 'cpu' ? `${cpuName}; GPU: ${gpu.device.adapter}`.slice(0, 200) : gpu.device.adapter }
    : { backend: 'cpu', adapter: cpuName, features: [], ...common };
  return { backend, webgpuProblem: gpu.ok ? null : gpu.reason, record, measuredNow, forced, cpu, device, tuning: gpu.ok ? gpu.tuning : null };
}
