// Starting to volunteer, shared by the page, the room page and the widget: open the compute worker,
// pick its backend (WebGPU or the CPU, see compute/start-backend.ts), load the identity, open the
// shard cache and the upload budget for peers, connect to the coordinator. Callers differ only in
// how they make the worker (a same-origin URL, or the coordinator's worker script imported from a
// blob for the cross-origin widget).
import * as Comlink from 'comlink';
import type { DeviceInfo } from '../../coordinator/protocol';
import { makeCompute } from '../worker/dispatch';
import { startBackend, type BackendStatus } from '../worker/start-backend';
import { UploadBudget } from '../p2p/upload-budget';
import type { Settings } from '../store/db';
import { loadIdentity, type Identity } from '../store/identity';
import { ShardCache } from '../store/shard-cache';
import type { ComputeApi } from '../worker/api';
import { CoordinatorClient, type ClientState } from './coordinator-client';

export interface VolunteerOptions {
  createWorker: () => Worker;
  /** Coordinator base URL. */
  url: string;
  settings: Settings;
  room?: string;
  onChange: (state: ClientState) => void;
  /** Called after each ONNX unit with the execution provider it ran on (and why it fell back). */
  onOnnxRun?: (ep: string, fallbackReason?: string) => void;
  /** The page URL's query, for a `?backend=` override. */
  search?: string;
}

/** A started volunteer. Every browser can compute: without WebGPU it is the CPU (WebAssembly). */
export interface Volunteering {
  client: CoordinatorClient;
  device: DeviceInfo;
  backend: BackendStatus;
  identity: Identity;
  cache: ShardCache;
  uploadBudget: UploadBudget;
}

export async function startVolunteering(opts: VolunteerOptions): Promise<Volunteering> {
  let worker = opts.createWorker();
  let api = Comlink.wrap<ComputeApi>(worker);
  let backend: BackendStatus;
  try {
    backend = await startBackend(api, opts.search);
  } catch (err) {
    worker.terminate();
    throw err;
  }
  let compute = makeCompute(api, opts.onOnnxRun);
  /** A fresh worker for one whose kernel hangs; the backend choice and tuning are remembered, so it is quick. */
  const restartCompute = async () => {
    worker.terminate();
    worker = opts.createWorker();
    api = Comlink.wrap<ComputeApi>(worker);
    compute = makeCompute(api, opts.onOnnxRun);
    await startBackend(api, opts.search);
  };
  const identity = await loadIdentity();
  const { settings } = opts;
  let client: CoordinatorClient | null = null;
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
    compute: (wu, inputs, shard) => compute(wu, inputs, shard),
    restartCompute,
    onChange: opts.onChange,
  });
  client.start();
  return { client, device: backend.device, backend, identity, cache, uploadBudget };
}
