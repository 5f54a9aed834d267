// The client: a Grid on one coordinator and its Jobs. Inputs are uploaded as float32 .npy shards
// (each once: sha-256 first, HEAD /shards/<sha>, then POST only when missing); a job is submitted
// and returned at once; a Job waits, fetches its result as tensors, or is cancelled. Every request
// and answer is typed, and every answer checked, by the protocol's zod schemas.
import type { z } from 'zod';
import {
  CoordinatorInfo,
  GridStats,
  JobCreated,
  JobList,
  JobStatus,
  ModelCreated,
  RoomCreated,
  RoomInfo,
  RoomListing,
  RoomList,
  RoomSnapshot,
  ShardCreated,
  VolunteerList,
  type AttentionJobSubmit,
  type JobKindName,
  type JobSubmit,
  type MatmulJobSubmit,
  type MlpModelSpec,
  type OnnxJobSubmit,
  type RoundStats,
  type Tolerance,
  type TrainJobSubmit,
  type TransformerModelSpec,
  type VolunteerSummary,
} from '../../coordinator/protocol/index.js';
import { sha256Hex } from '../../coordinator/protocol/sha256.js';
import { bytesOf, npyOf, tensorOf, vectorNpy, type ArrayInput, type Bytes, type Tensor, type VectorInput } from './arrays.js';
import { ApiError, InputError, JobFailed, NotReady, WaitTimeout } from './errors.js';
import { Http, sleep, type HttpOptions } from './http.js';

export const VERSION = '0.1.0';

/** A job submission as the API takes it (defaults such as `replication` may be left out). */
export type JobSubmitInput = z.input<typeof JobSubmit>;

/** What a job's result is: one tensor, or for an onnx job a tensor per output name. */
export type ResultOf<K extends JobKindName> = K extends 'onnx' ? Record<string, Tensor> : Tensor;

export interface GridOptions extends HttpOptions {
  /** The longest pause between two status polls while waiting, in ms (default 1000). */
  pollInterval?: number;
}

export interface WaitOptions {
  /** Give up after this many ms (a WaitTimeout); default: wait as long as it takes. */
  timeout?: number;
  /** Called with every status seen while waiting (progress: `status.progress.done` / `total`). */
  onProgress?: (status: JobStatus) => void;
  signal?: AbortSignal;
}

export interface ResultOptions extends WaitOptions {
  /** False: ask at once (NotReady while the job is unfinished) instead of waiting for it. */
  wait?: boolean;
}

interface Common {
  replication?: number;
  name?: string;
}
export interface MatmulOptions extends Common {
  tile?: { rows: number; cols: number } | [rows: number, cols: number];
  tolerance?: Tolerance;
  adaptive?: boolean;
}
export interface AttentionOptions extends Common {
  causal?: boolean;
  blockRows?: number;
  tolerance?: Tolerance;
}
export interface OnnxOptions extends Common {
  itemsPerUnit?: number;
  /** One tolerance for every output, or one per output name. */
  tolerance?: Tolerance | Record<string, Tolerance>;
  /** Outputs (class scores) whose replicas must agree on the argmax of the last axis. */
  argmax?: string | string[];
  flopsPerItem?: number;
}

/**
 * What both model families' training jobs take: the protocol's TrainJobSubmit but its kind, data
 * and model (rounds, localSteps, batchSize, innerOptimizer, unitsPerRound, …), and `init`, the
 * initial parameters themselves (a flat array of the model's P values, e.g. a finished job's
 * `result()`), which the client uploads as a shard.
 */
export type TrainSettings = Omit<z.input<typeof TrainJobSubmit>, 'kind' | 'data' | 'model' | 'init'> & { init?: VectorInput };

/** An MLP classifier's training job: its widths (`{ type: 'mlp', layers: [features, hidden…, classes] }`) and the settings. */
export type TrainOptions = TrainSettings & { model: z.input<typeof MlpModelSpec> };

/** A transformer language model's training job: its shape, the settings, and optional validation tokens to evaluate each round on. */
export type LmTrainOptions = TrainSettings & {
  model: Omit<z.input<typeof TransformerModelSpec>, 'type'> & { type?: 'transformer' };
  validation?: VectorInput;
};

const env = (name: string): string | undefined => (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.[name] || undefined;

/** Where the client talks to when no URL is given: TABGRID_URL (Node), the page's own origin (browser), else localhost:8080. */
function defaultUrl(): string {
  return env('TABGRID_URL') ?? (typeof location !== 'undefined' ? location.origin : 'http://localhost:8080');
}

const TERMINAL = new Set(['done', 'failed']);
const enc = encodeURIComponent;
const common = (o: Common) => ({ ...(o.replication !== undefined && { replication: o.replication }), ...(o.name !== undefined && { name: o.name }) });

/** A job on the coordinator: it lives there, not in this object (`grid.job(id)` finds it again). */
export class Job<K extends JobKindName = JobKindName> {
  /** The last status this object saw (after `status()`, `wait()`, `cancel()`), if any. */
  lastStatus: JobStatus | null = null;

  constructor(
    private readonly grid: Grid,
    readonly id: string,
    readonly kind: K,
    /** An onnx job's output names (from its model, or its status). */
    public outputs: string[] | null = null,
    /** How many work units the job was split into (known to the client that submitted it). */
    readonly workUnits: number | null = null,
  ) {}

  /** The job's status now. */
  async status(opts: { signal?: AbortSignal } = {}): Promise<JobStatus> {
    const status = await this.grid.http.json(JobStatus, { method: 'GET', path: `/api/jobs/${enc(this.id)}`, signal: opts.signal });
    return this.saw(status);
  }

  private saw(status: JobStatus): JobStatus {
    this.lastStatus = status;
    if (status.outputs) this.outputs = status.outputs;
    return status;
  }

  /** Polls until the job is done or failed and returns that status (a failed job does not throw here; its `result()` does). */
  async wait(opts: WaitOptions = {}): Promise<JobStatus> {
    const deadline = opts.timeout === undefined ? null : Date.now() + opts.timeout;
    let delay = Math.min(50, this.grid.pollInterval);
    for (;;) {
      const status = await this.status({ signal: opts.signal });
      opts.onProgress?.(status);
      if (TERMINAL.has(status.state)) return status;
      const left = deadline === null ? null : deadline - Date.now();
      if (left !== null && left <= 0) {
        const { done, total } = status.progress;
        throw new WaitTimeout(`job ${this.id} is still ${status.state} after ${opts.timeout} ms (${done}/${total} work units done)`, this.id);
      }
      await sleep(left === null ? delay : Math.min(delay, left), opts.signal);
      delay = Math.min(delay * 1.5, this.grid.pollInterval);
    }
  }

  /**
   * The verified result: a tensor, or for an onnx job a tensor per output name. Waits for the job
   * first (unless `wait: false`); a failed or cancelled job throws JobFailed.
   */
  async result(opts: ResultOptions = {}): Promise<ResultOf<K>> {
    if (opts.wait !== false) await this.finished(opts);
    if (this.kind !== 'onnx') return tensorOf(await this.npy({ wait: false })) as ResultOf<K>;
    const names = this.outputs ?? (await this.status()).outputs;
    if (!names) throw new ApiError('invalid_response', `job ${this.id}: its status names no outputs`, 200);
    const out: Record<string, Tensor> = {};
    for (const name of names) out[name] = tensorOf(await this.npy({ wait: false, output: name }));
    return out as ResultOf<K>;
  }

  /** One named output of an onnx job as a tensor. */
  async output(name: string, opts: ResultOptions = {}): Promise<Tensor> {
    return tensorOf(await this.npy({ ...opts, output: name }));
  }

  /** The result (or one named output) as the .npy bytes the coordinator serves. */
  async npy(opts: ResultOptions & { output?: string } = {}): Promise<Uint8Array> {
    if (opts.wait !== false) await this.finished(opts);
    const path = `/api/jobs/${enc(this.id)}/${opts.output === undefined ? 'result' : `outputs/${enc(opts.output)}`}`;
    try {
      return await this.grid.http.bytes({ method: 'GET', path, signal: opts.signal });
    } catch (err) {
      if (err instanceof NotReady && !(err instanceof JobFailed)) {
        const status = await this.status();
        if (status.state === 'failed') throw new JobFailed(err.code, `job ${this.id} failed: ${status.error}`, err.status, this.id);
      }
      throw err;
    }
  }

  /** A training job's rounds so far: each closed round's evaluation loss, training loss, units and bytes (from its status). */
  async rounds(): Promise<RoundStats[]> {
    return (await this.status()).perRound ?? [];
  }

  /** A training job's loss after each closed round (the coordinator's own evaluation), oldest first. */
  async losses(): Promise<number[]> {
    return (await this.rounds()).map((r) => r.loss);
  }

  /** A finished training job's model as an ONNX inference graph (run it with `grid.onnx`). */
  async model(opts: ResultOptions = {}): Promise<Uint8Array> {
    if (opts.wait !== false) await this.finished(opts);
    return this.grid.http.bytes({ method: 'GET', path: `/api/jobs/${enc(this.id)}/model.onnx`, signal: opts.signal });
  }

  /** Waits, and throws JobFailed for a failed or cancelled job. */
  private async finished(opts: WaitOptions): Promise<void> {
    const status = await this.wait(opts);
    if (status.state === 'failed') throw new JobFailed('not_ready', `job ${this.id} failed: ${status.error}`, 409, this.id);
  }

  /** Cancels a queued or running job: it fails with error "cancelled" (Conflict once it is done or failed). */
  async cancel(): Promise<JobStatus> {
    return this.saw(await this.grid.http.json(JobStatus, { method: 'POST', path: `/api/jobs/${enc(this.id)}/cancel` }));
  }
}

/** Classroom rooms: anyone may create one; its teacher key (or an admin token) controls it. */
export class Rooms {
  constructor(private readonly http: Http) {}

  create(name: string): Promise<RoomCreated> {
    return this.http.json(RoomCreated, { method: 'POST', path: '/api/rooms', json: { name }, token: null });
  }
  /** The public ranking: names, laptops and credit (never the join codes). */
  async list(): Promise<RoomListing[]> {
    return (await this.http.json(RoomList, { method: 'GET', path: '/api/rooms', token: null })).rooms;
  }
  get(code: string): Promise<RoomInfo> {
    return this.http.json(RoomInfo, { method: 'GET', path: `/api/rooms/${enc(code)}`, token: null });
  }
  snapshot(code: string): Promise<RoomSnapshot> {
    return this.http.json(RoomSnapshot, { method: 'GET', path: `/api/rooms/${enc(code)}/snapshot`, token: null });
  }
  /** Pauses or resumes the room's laptops; `key` is its teacher key (default: the client's token). */
  control(code: string, paused: boolean, key?: string): Promise<RoomInfo> {
    return this.http.json(RoomInfo, { method: 'POST', path: `/api/rooms/${enc(code)}/control`, json: { paused }, token: key, replaySafe: true });
  }
  /** Starts the room's demo matmul job. */
  demo(code: string, size: 'small' | 'medium' | 'large', key?: string): Promise<z.infer<typeof JobCreated>> {
    return this.http.json(JobCreated, { method: 'POST', path: `/api/rooms/${enc(code)}/demo`, json: { size }, token: key, replaySafe: false });
  }
}

/** A coordinator, seen by a researcher with an API token. */
export class Grid {
  readonly url: string;
  readonly http: Http;
  readonly pollInterval: number;
  readonly rooms: Rooms;
  /** sha-256 of every shard this client uploaded or found on the coordinator. */
  private readonly knownShards = new Set<string>();
  /** POST /api/models answers by the model's sha-256. */
  private readonly models = new Map<string, ModelCreated>();

  /**
   * `url`: the coordinator (default TABGRID_URL in Node, the page's origin in a browser);
   * `token`: an API token (left out: TABGRID_TOKEN in Node; null: none). Calls that need one without it get Unauthorized.
   */
  constructor(url?: string | null, token?: string | null, options: GridOptions = {}) {
    this.url = (url ?? defaultUrl()).replace(/\/+$/, '');
    this.http = new Http(this.url, token === undefined ? (env('TABGRID_TOKEN') ?? null) : token, { userAgent: `tabgrid-typescript/${VERSION}`, ...options });
    this.pollInterval = options.pollInterval ?? 1000;
    this.rooms = new Rooms(this.http);
  }

  // --- inputs -------------------------------------------------------------------------------------

  /** Uploads an array as a float32 .npy shard unless the coordinator has it already; its sha-256. */
  async upload(input: ArrayInput, what = 'array'): Promise<string> {
    return (await this.uploadNpy(input, what)).sha256;
  }

  private async uploadNpy(input: ArrayInput, what: string, opts: { int32?: boolean } = {}): Promise<{ sha256: string; shape: number[] }> {
    const { npy, shape } = await npyOf(input, what, opts);
    return { sha256: await this.put(npy, what), shape };
  }

  /** Uploads .npy bytes (already checked) unless the coordinator has them; their sha-256. */
  private async put(npy: Uint8Array, what: string): Promise<string> {
    const sha = await sha256Hex(npy);
    if (!this.knownShards.has(sha)) {
      // Shards are content-addressed and public by id: HEAD says whether it is there already.
      const head = await this.http.request({ method: 'HEAD', path: `/shards/${sha}`, ok: [200, 404], token: null });
      if (head.status === 404) {
        const stored = await this.http.json(ShardCreated, { method: 'POST', path: '/api/shards', body: npy });
        if (stored.sha256 !== sha) throw new ApiError('invalid_response', `the coordinator stored ${what} as ${stored.sha256}, not ${sha}`, 201);
      }
      this.knownShards.add(sha);
    }
    return sha;
  }

  /** Uploads an ONNX model (once per client); the answer names its inputs and outputs. */
  async uploadModel(model: Bytes): Promise<ModelCreated> {
    const bytes = await bytesOf(model);
    const sha = await sha256Hex(bytes);
    let info = this.models.get(sha);
    if (!info) {
      info = await this.http.json(ModelCreated, { method: 'POST', path: '/api/models', body: bytes });
      this.models.set(sha, info);
      this.knownShards.add(sha);
    }
    return info;
  }

  // --- jobs ---------------------------------------------------------------------------------------

  /** Submits a job body as is (the kind methods below build it for you). */
  async submit<K extends JobKindName>(body: JobSubmitInput & { kind: K }, outputs: string[] | null = null): Promise<Job<K>> {
    const created = await this.http.json(JobCreated, { method: 'POST', path: '/api/jobs', json: body, ok: [201], replaySafe: false });
    return new Job(this, created.id, body.kind, outputs, created.workUnits);
  }

  /** C = A·B: `a` is m×k, `b` is k×n. */
  async matmul(a: ArrayInput, b: ArrayInput, opts: MatmulOptions = {}): Promise<Job<'matmul'>> {
    const inputs = { a: await this.upload(a, 'a'), b: await this.upload(b, 'b') };
    const tile = Array.isArray(opts.tile) ? { rows: opts.tile[0], cols: opts.tile[1] } : opts.tile;
    const body: z.input<typeof MatmulJobSubmit> = {
      kind: 'matmul',
      inputs,
      ...common(opts),
      ...(tile && { tile }),
      ...(opts.tolerance && { tolerance: opts.tolerance }),
      ...(opts.adaptive !== undefined && { adaptive: opts.adaptive }),
    };
    return this.submit(body);
  }

  /** softmax(Q·Kᵀ/√d)·V per head: q, k and v are [heads, seq, d] (d 64 or 128). */
  async attention(q: ArrayInput, k: ArrayInput, v: ArrayInput, opts: AttentionOptions = {}): Promise<Job<'attention'>> {
    const inputs = { q: await this.upload(q, 'q'), k: await this.upload(k, 'k'), v: await this.upload(v, 'v') };
    const body: z.input<typeof AttentionJobSubmit> = {
      kind: 'attention',
      inputs,
      causal: opts.causal ?? false,
      ...common(opts),
      ...(opts.blockRows !== undefined && { blockRows: opts.blockRows }),
      ...(opts.tolerance && { tolerance: opts.tolerance }),
    };
    return this.submit(body);
  }

  /**
   * An ONNX model over a batch: `inputs` by the model's input names (each with the batch first), or
   * one array for a one-input model. The result is a tensor per output name.
   */
  async onnx(model: Bytes, inputs: Record<string, ArrayInput> | ArrayInput, opts: OnnxOptions = {}): Promise<Job<'onnx'>> {
    const info = await this.uploadModel(model);
    const names = info.inputs.map((t) => t.name);
    const byName = isInputRecord(inputs) ? inputs : null;
    if (!byName && names.length !== 1) throw new InputError(`the model takes inputs ${names.map((n) => `'${n}'`).join(', ')}: give them by name`);
    const entries: [string, ArrayInput][] = byName ? Object.entries(byName) : [[names[0], inputs as ArrayInput]];
    const shards: Record<string, string> = {};
    for (const [name, value] of entries) shards[name] = await this.upload(value, `inputs.${name}`);
    const body: z.input<typeof OnnxJobSubmit> = {
      kind: 'onnx',
      model: info.sha256,
      inputs: shards,
      ...common(opts),
      ...(opts.itemsPerUnit !== undefined && { itemsPerUnit: opts.itemsPerUnit }),
      ...(opts.tolerance && { tolerance: opts.tolerance }),
      ...(opts.argmax !== undefined && { argmax: [opts.argmax].flat() }),
      ...(opts.flopsPerItem !== undefined && { flopsPerItem: opts.flopsPerItem }),
    };
    return this.submit(body, info.outputs.map((o) => o.name));
  }

  /**
   * Trains an MLP classifier across the volunteers (DiLoCo rounds): `x` is [N, features] float32,
   * `y` the N class ids (float32 or int32 .npy). The result is the flat parameter vector;
   * `job.losses()`, `job.output('w0')` and `job.model()` (ONNX) give the rest.
   */
  async train(x: ArrayInput, y: ArrayInput, opts: TrainOptions): Promise<Job<'train'>> {
    const { init, model, ...settings } = opts;
    const initNpy = init === undefined ? undefined : await vectorNpy(init, 'init');
    const data = { x: (await this.uploadNpy(x, 'x')).sha256, y: (await this.uploadNpy(y, 'y', { int32: true })).sha256 };
    return this.submitTrain(settings, model, data, initNpy);
  }

  /**
   * Trains a decoder-only transformer language model across the volunteers (DiLoCo rounds):
   * `tokens` is the training stream, a 1-D array of token ids in [0, model.vocab) (numbers, a
   * tensor, or float32/int32 .npy bytes); `validation`, the same, is what each round is evaluated
   * on (else windows of the training tokens). Everything is checked before anything is sent. The
   * result is the flat parameter vector (`job.output('l0.wq')` one tensor); `job.losses()` the
   * validation loss (nats per token) after each round; `job.model()` the model as ONNX
   * (`tokens [batch, context]` → `logits [batch, context, vocab]`).
   */
  async trainLm(tokens: VectorInput, opts: LmTrainOptions): Promise<Job<'train'>> {
    const { init, model, validation, ...settings } = opts;
    const ids = { below: model.vocab, of: 'model.vocab' };
    const tokensNpy = await vectorNpy(tokens, 'tokens', ids);
    const validationNpy = validation === undefined ? undefined : await vectorNpy(validation, 'validation', ids);
    const initNpy = init === undefined ? undefined : await vectorNpy(init, 'init');
    const data = { tokens: await this.put(tokensNpy, 'tokens'), ...(validationNpy && { validation: await this.put(validationNpy, 'validation') }) };
    return this.submitTrain(settings, { ...model, type: 'transformer' }, data, initNpy);
  }

  private async submitTrain(
    settings: Omit<TrainSettings, 'init'>,
    model: z.input<typeof TrainJobSubmit>['model'],
    data: z.input<typeof TrainJobSubmit>['data'],
    initNpy: Uint8Array | undefined,
  ): Promise<Job<'train'>> {
    const body: z.input<typeof TrainJobSubmit> = { ...settings, kind: 'train', model, data, ...(initNpy && { init: await this.put(initNpy, 'init') }) };
    return this.submit(body);
  }

  /** A job submitted earlier (by any client): NotFound when there is none. */
  async job(id: string): Promise<Job> {
    return this.jobOf(await this.http.json(JobStatus, { method: 'GET', path: `/api/jobs/${enc(id)}` }));
  }

  /** The Job for a status already in hand (from `jobs()`), without asking the coordinator again. */
  jobOf(status: JobStatus): Job {
    const job = new Job(this, status.id, status.kind as JobKindName, status.outputs ?? null);
    job.lastStatus = status;
    return job;
  }

  /** Every job with its status, newest first. */
  async jobs(): Promise<JobStatus[]> {
    return (await this.http.json(JobList, { method: 'GET', path: '/api/jobs' })).jobs;
  }

  // --- the grid -----------------------------------------------------------------------------------

  /** Volunteers online, jobs by state, validation outcomes, credited throughput. */
  stats(): Promise<GridStats> {
    return this.http.json(GridStats, { method: 'GET', path: '/api/stats' });
  }

  /** The best credited volunteers, at most `limit` (the coordinator's cap, 1000, by default); `total` in volunteerList. */
  async volunteers(opts: { limit?: number } = {}): Promise<VolunteerSummary[]> {
    return (await this.volunteerList(opts)).volunteers;
  }

  /** The best credited volunteers (at most `limit`) and how many the coordinator stores in all. */
  volunteerList(opts: { limit?: number } = {}): Promise<VolunteerList> {
    const query = opts.limit === undefined ? '' : `?limit=${encodeURIComponent(opts.limit)}`;
    return this.http.json(VolunteerList, { method: 'GET', path: `/api/volunteers${query}`, token: null });
  }

  /** The protocol version, size limits and the coordinator's public key. */
  info(): Promise<CoordinatorInfo> {
    return this.http.json(CoordinatorInfo, { method: 'GET', path: '/api/info', token: null });
  }
}

function isInputRecord(x: Record<string, ArrayInput> | ArrayInput): x is Record<string, ArrayInput> {
  if (x instanceof Uint8Array || x instanceof ArrayBuffer || (typeof Blob !== 'undefined' && x instanceof Blob)) return false;
  return !('shape' in x && 'data' in x && Array.isArray((x as { shape: unknown }).shape));
}
