// Starting to volunteer, shared by the page, the room page and the widget: open the compute worker,
// pick its first backend from what is known at once (worker/start-backend.ts), load the identity,
// open the shard cache and the upload budget for peers, and connect to the coordinator — at once,
// so the hello, the room and the first unit come within seconds of Start. The full measurement of
// both backends (and the kernel tuning) then runs between units, after the first unit or once the
// page has waited for work a moment, and may switch the backend; the coordinator hears the new
// DeviceInfo. Callers differ only in how they make the worker (a same-origin URL, or the
// coordinator's worker script imported from a blob for the cross-origin widget).
import * as Comlink from 'comlink';
import type { DeviceInfo } from '../../coordinator/protocol';
import { makeCompute } from '../worker/dispatch';
import { measureInBackground, quickStart, resumeBackend, type BackendStatus } from '../worker/start-backend';
import { UploadBudget } from '../p2p/upload-budget';
import type { Settings } from '../store/db';
import { loadIdentity, type Identity } from '../store/identity';
import { ShardCache } from '../store/shard-cache';
import type { ComputeApi } from '../worker/api';
import type { Backend } from '../worker/backend-choice';
import { CoordinatorClient, type ClientState } from './coordinator-client';

/** With no unit computed yet, the background measurement starts once the page has waited this long for work. */
export const MEASURE_WHEN_IDLE_MS = 2_000;

export interface VolunteerOptions {
  createWorker: () => Worker;
  /** Coordinator base URL. */
  url: string;
  settings: Settings;
  room?: string;
  onChange: (state: ClientState) => void;
  /** Called after each ONNX unit with the execution provider it ran on (and why it fell back). */
  onOnnxRun?: (ep: string, fallbackReason?: string) => void;
  /** Called after each unit with the backend it ran on. */
  onUnitBackend?: (backend: Backend) => void;
  /** Called when the backend status changes: tuned, measured, switched. */
  onBackend?: (status: BackendStatus) => void;
  /** The page URL's query, for a `?backend=` override. */
  search?: string;
}

/** A started volunteer. Every browser can compute: without WebGPU it is the CPU (WebAssembly). */
export interface Volunteering {
  client: CoordinatorClient;
  device: DeviceInfo;
  /** The backend at start; onBackend reports the later ones. */
  backend: BackendStatus;
  identity: Identity;
  cache: ShardCache;
  uploadBudget: UploadBudget;
}

export async function startVolunteering(opts: VolunteerOptions): Promise<Volunteering> {
  let worker = opts.createWorker();
  let api = Comlink.wrap<ComputeApi>(worker);
  let backend: BackendStatus;
  let identity: Identity;
  try {
    [backend, identity] = await Promise.all([quickStart(api, opts.search), loadIdentity()]);
  } catch (err) {
    worker.terminate();
    throw err;
  }
  const initial = backend;
  let client: CoordinatorClient | null = null;

  // The background measurement, on the worker of its generation (a restarted worker starts it again).
  let generation = 0;
  let measuring = false;
  const measure = () => {
    if (measuring) return;
    measuring = true;
    const mine = ++generation;
    void measureInBackground(api, backend, opts.search, (s) => {
      if (mine !== generation) return; // a worker since replaced
      const deviceChanged = JSON.stringify(s.device) !== JSON.stringify(backend.device);
      backend = s;
      if (deviceChanged) client?.updateDevice(s.device);
      opts.onBackend?.(s);
    }).catch(() => undefined); // unmeasured: the first choice stays
  };
  let idleTimer: ReturnType<typeof setTimeout> | undefined;
  const onChange = (state: ClientState) => {
    if (!measuring) {
      // A page that has waited a moment for work measures meanwhile.
      if (state.phase === 'waiting' && idleTimer === undefined) idleTimer = setTimeout(measure, MEASURE_WHEN_IDLE_MS);
      if (state.phase !== 'waiting' && idleTimer !== undefined) {
        clearTimeout(idleTimer);
        idleTimer = undefined;
      }
    }
    opts.onChange(state);
  };

  let compute = makeCompute(api, opts.onOnnxRun, opts.onUnitBackend);
  /** A fresh worker for one whose kernel hangs: on the backend already chosen, so it is quick. */
  const restartCompute = async () => {
    worker.terminate();
    worker = opts.createWorker();
    api = Comlink.wrap<ComputeApi>(worker);
    compute = makeCompute(api, opts.onOnnxRun, opts.onUnitBackend);
    await resumeBackend(api, backend);
    if (backend.state === 'measuring') {
      measuring = false; // the old worker's measurement will never answer
      measure();
    }
  };
  const { settings } = opts;
  const cache = new ShardCache(settings.shardCacheBytes, (change) => client?.holdingsChanged(change));
  const uploadBudget = new UploadBudget({ bytesPerSecond: settings.uploadBytesPerSecond });
  client = new CoordinatorClient({
    url: opts.url,
    identity,
    device: backend.device,
    name: settings.name ?? undefined,
    room: opts.room,
    throttle: settings.throttle,
    cache,
    uploadBudget,
    compute: async (wu, inputs, shard) => {
      try {
        return await compute(wu, inputs, shard);
      } finally {
        measure(); // after the first unit, between units from now on
      }
    },
    prepare: (wu) => api.prepare(wu.kind),
    restartCompute,
    onChange,
  });
  client.start();
  return { client, device: initial.device, backend: initial, identity, cache, uploadBudget };
}
