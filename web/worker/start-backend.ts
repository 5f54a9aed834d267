// Start-up of the compute worker on the main thread, in two parts so a volunteer computes within
// seconds of pressing Start:
//  - quickStart: opens WebGPU if there is one (taking the cached kernel tuning, measuring nothing),
//    sets up the CPU backend's thread count, and picks the backend for the first units from what is
//    known at once — this device's remembered measurement, else a guess (backend-choice.ts) — then
//    starts loading what that backend needs (ORT's wasm for the CPU, pipelines for WebGPU) without
//    waiting for it. A `?backend=` override wins.
//  - measureInBackground: measures both backends between units (the worker's gate), tunes the
//    WebGPU kernels where WebGPU computes or comes close, remembers the figures for this device and
//    switches backend when they say so. Skipped when the remembered figures are still valid.
// Both describe the result as the hello's DeviceInfo. `?tune=off` skips the autotuner.
import type * as Comlink from 'comlink';
import { WORK_UNIT_KINDS, type DeviceInfo } from '../../coordinator/protocol';
import { openStore } from '../store/db';
import type { ComputeApi, CpuInfo, InitResult, TuningInfo } from './api';
import {
  backendOverride,
  chooseBackend,
  deviceFingerprint,
  fasterBackend,
  firstChoice,
  type Backend,
  type BackendRecord,
  type FirstChoiceSource,
  type Speeds,
} from './backend-choice';

/** Job kinds this page's worker can run: every kind of the protocol (the worker implements each). */
export const SUPPORTED_KINDS = [...WORK_UNIT_KINDS];

/** The kernels are tuned only where WebGPU computes, or measures at least this share of the CPU's speed. */
export const TUNE_WITHIN = 0.25;

export interface BackendStatus {
  backend: Backend;
  /** Why WebGPU is not available here (null when it is). */
  webgpuProblem: string | null;
  /**
   * How the backend was chosen: `remembered` (this device's figures from an earlier visit, not
   * measured again), `measuring` (a first guess, or the choice of expired figures, while both are
   * measured between units) or `measured` (measured on this visit).
   */
  state: 'remembered' | 'measuring' | 'measured';
  /** Where the first units' backend came from (backend-choice.ts firstChoice). */
  firstChoice: FirstChoiceSource;
  /** Both backends' figures: remembered or measured; null while measuring. */
  speeds: Speeds | null;
  forced: Backend | null;
  cpu: CpuInfo;
  device: DeviceInfo;
  /** The WebGPU kernel tuning (null: no WebGPU, `?tune=off`, not tuned yet, or not worth it here). */
  tuning: TuningInfo | null;
  /** The GPU as opened (null: no WebGPU). */
  gpu: DeviceInfo | null;
  fingerprint: string;
}

/** `?tune=off` skips the WebGPU autotuner and runs the default tiling (quick start: tests, troubleshooting). */
export function tuningWanted(search: string): boolean {
  return new URLSearchParams(search).get('tune') !== 'off';
}

/** The hello's DeviceInfo: what computes (the adapter names it), and the GPU's features and limits either way. */
export function describeDevice(gpu: DeviceInfo | null, cpu: CpuInfo, backend: Backend, speeds: Speeds | null): DeviceInfo {
  const common = {
    userAgent: navigator.userAgent.slice(0, 400),
    kinds: SUPPORTED_KINDS,
    measured: { webgpu: speeds?.webgpu ?? null, cpu: speeds?.cpu ?? null },
    threads: cpu.threads,
  };
  const cpuName = `CPU (WebAssembly, ${cpu.threads} thread${cpu.threads === 1 ? '' : 's'})`;
  return gpu
    ? { ...gpu, ...common, backend, adapter: backend === 'cpu' ? `${cpuName}; GPU: ${gpu.adapter}`.slice(0, 200) : gpu.adapter }
    : { backend: 'cpu', adapter: cpuName, features: [], ...common };
}

async function openBoth(api: Comlink.Remote<ComputeApi>): Promise<{ gpu: InitResult; cpu: CpuInfo }> {
  const cores = navigator.hardwareConcurrency || 1;
  const [gpu, cpu] = await Promise.all([api.open(), api.initCpu(Math.min(4, cores))]);
  return { gpu, cpu };
}

/** Picks the first backend from what is known at once and starts loading it; measures nothing. */
export async function quickStart(api: Comlink.Remote<ComputeApi>, search = location.search): Promise<BackendStatus> {
  const [{ gpu, cpu }, stored] = await Promise.all([openBoth(api), openStore().then((db) => db.get('backend', 'current'))]);
  const cores = navigator.hardwareConcurrency || 1;
  const fingerprint = deviceFingerprint({ userAgent: navigator.userAgent, cores, adapter: gpu.ok ? gpu.device.adapter : null, threads: cpu.threads });
  const first = firstChoice(stored, fingerprint, Date.now(), { webgpu: gpu.ok, isFallbackAdapter: gpu.ok && !!gpu.device.isFallbackAdapter });
  const forced = backendOverride(search);
  const backend = chooseBackend(first, forced, gpu.ok);
  await api.useBackend(backend);
  void api.warm(backend); // the first unit awaits it; nothing else does
  const speeds = first.source === 'remembered' && stored ? { webgpu: stored.webgpu, cpu: stored.cpu } : null;
  const gpuInfo = gpu.ok ? gpu.device : null;
  return {
    backend,
    webgpuProblem: gpu.ok ? null : gpu.reason,
    state: first.source === 'remembered' ? 'remembered' : 'measuring',
    firstChoice: first.source,
    speeds,
    forced,
    cpu,
    device: describeDevice(gpuInfo, cpu, backend, speeds),
    tuning: gpu.ok ? gpu.tuning : null,
    gpu: gpuInfo,
    fingerprint,
  };
}

/**
 * Measures both backends between units and switches when the figures say so; tunes the WebGPU
 * kernels first where that could matter. `onChange` sees each new status (tuning done, figures
 * measured, backend switched). Resolves with the last one; with `status` itself when there is
 * nothing to do (remembered figures, tuning cached or not wanted).
 */
export async function measureInBackground(
  api: Comlink.Remote<ComputeApi>,
  status: BackendStatus,
  search = location.search,
  onChange: (s: BackendStatus) => void = () => undefined,
): Promise<BackendStatus> {
  const hasGpu = status.gpu !== null;
  const tune = hasGpu && tuningWanted(search) && status.tuning === null;
  let current = status;
  const update = (patch: Partial<BackendStatus>) => {
    current = { ...current, ...patch };
    current.device = describeDevice(current.gpu, current.cpu, current.backend, current.speeds);
    onChange(current);
  };
  const tuneNow = async () => update({ tuning: await api.tune() });

  if (status.state === 'remembered') {
    if (tune && (status.backend === 'webgpu' || worthTuning(status.speeds))) await tuneNow();
    return current;
  }
  // WebGPU first: the CPU's ORT build is likelier loaded already (the guess on a software adapter).
  let webgpu = hasGpu ? await api.measure('webgpu') : null;
  const cpu = await api.measure('cpu');
  if (tune && (status.backend === 'webgpu' || worthTuning({ webgpu, cpu }))) {
    await tuneNow();
    webgpu = await api.measure('webgpu');
  }
  const speeds = { webgpu, cpu };
  const record: BackendRecord = { ...speeds, choice: fasterBackend(speeds), fingerprint: status.fingerprint, measuredAt: Date.now() };
  await openStore()
    .then((db) => db.put('backend', record, 'current'))
    .catch(() => undefined); // a browser without storage still switches; it measures again next visit
  const backend = chooseBackend(record, status.forced, hasGpu);
  if (backend !== current.backend) await api.useBackend(backend);
  update({ backend, speeds, state: 'measured' });
  return current;
}

/** Whether tuning the WebGPU kernels could make WebGPU the faster backend (or it is already). */
function worthTuning(s: Speeds | null): boolean {
  if (!s || s.webgpu === null) return false;
  return s.cpu === null || s.webgpu >= TUNE_WITHIN * s.cpu;
}

/**
 * A fresh worker for one that hung: opened on the backend already chosen (the figures and tuning
 * are remembered, so nothing is measured) and warmed up.
 */
export async function resumeBackend(api: Comlink.Remote<ComputeApi>, status: BackendStatus): Promise<void> {
  await openBoth(api);
  await api.useBackend(status.backend);
  void api.warm(status.backend);
}
