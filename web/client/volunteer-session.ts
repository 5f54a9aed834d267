// Starting to volunteer, shared by the page, the room page and the widget: open the compute worker
// and its GPU, load the identity, open the shard cache and the upload budget for peers, connect to
// the coordinator. Callers differ only in how they make the worker (a same-origin URL, or an
// inlined bundle for the cross-origin widget).
import * as Comlink from 'comlink';
import type { DeviceInfo } from '../../coordinator/protocol';
import { UploadBudget } from '../p2p/upload-budget';
import type { Settings } from '../store/db';
import { loadIdentity, type Identity } from '../store/identity';
import { ShardCache } from '../store/shard-cache';
import type { ComputeApi, KernelJob, TuningInfo } from '../worker/api';
import { CoordinatorClient, type ClientState } from './coordinator-client';

export interface VolunteerOptions {
  createWorker: () => Worker;
  /** Coordinator base URL. */
  url: string;
  settings: Settings;
  room?: string;
  onChange: (state: ClientState) => void;
}

export type Volunteering =
  | {
      ok: true;
      client: CoordinatorClient;
      device: DeviceInfo;
      /** The kernel tuning the worker chose (or loaded from its cache) for this device. */
      tuning: TuningInfo | null;
      identity: Identity;
      worker: Worker;
      cache: ShardCache;
      uploadBudget: UploadBudget;
    }
  | { ok: false; reason: string };

export async function startVolunteering(opts: VolunteerOptions): Promise<Volunteering> {
  const worker = opts.createWorker();
  const compute = Comlink.wrap<ComputeApi>(worker);
  const init = await compute.init();
  if (!init.ok) {
    worker.terminate();
    return { ok: false, reason: init.reason };
  }
  const identity = await loadIdentity();
  const { settings } = opts;
  let client: CoordinatorClient | null = null;
  const cache = new ShardCache(settings.shardCacheBytes, (change) => client?.holdingsChanged(change));
  const uploadBudget = new UploadBudget({ bytesPerSecond: settings.uploadBytesPerSecond });
  client = new CoordinatorClient({
    url: opts.url,
    identity,
    device: init.device,
    name: settings.name ?? undefined,
    room: opts.room,
    throttle: settings.throttle,
    cache,
    uploadBudget,
    compute: (wu, inputs) =>
      compute.run({ kind: wu.kind, params: wu.params } as KernelJob, Comlink.transfer(inputs, Object.values(inputs).map((t) => t.buffer))),
    onChange: opts.onChange,
  });
  client.start();
  return { ok: true, client, device: init.device, tuning: init.tuning, identity, worker, cache, uploadBudget };
}
