// The researcher's API: shard and model uploads, shard downloads, jobs (submit, list, status,
// cancel, result, named outputs) and the swarm's traffic. Every route but shard downloads needs a
// token. A job belongs to the token that submitted it: a submit token sees, cancels and downloads
// only its own (another's is a 404, as if it did not exist); an admin token sees every job.
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { jobKind } from '../jobs/index.js';
import { readModel } from '../jobs/onnx.js';
import {
  Id,
  JobCreated,
  JobList,
  JobStatus,
  JobSubmit,
  LIMITS,
  ModelCreated,
  P2pStatus,
  Sha256Hex,
  ShardCreated,
  type ShardTraffic,
} from '../protocol/index.js';
import { NpyError, parseNpyTyped } from '../protocol/npy.js';
import type { JobRecord } from '../store/store.js';
import { submitJob } from '../work/submit.js';
import { requireScope, type RouteOptions } from './context.js';
import { ApiFailure, parseOr400 } from './errors.js';
import type { ApiDoc } from './openapi.js';

const JobParams = z.object({ id: Id.describe('the job id POST /api/jobs answered') });
const ShardParams = z.object({ sha: Sha256Hex.describe("the shard's sha-256") });
const NOT_READY = 'the job is not done yet, or it failed (the message says which)';

/** The declarations of the routes below (the OpenAPI document is made from them). */
const API = {
  uploadShard: {
    tag: 'jobs',
    auth: 'token',
    summary: 'Upload a .npy input (float32; int32 for training labels); content-addressed by sha-256',
    body: 'npy',
    answers: { 201: ShardCreated },
    errors: { 400: 'not a float32 C-order .npy', 413: 'over the shard size limit', 415: 'not sent as application/octet-stream' },
  },
  uploadModel: {
    tag: 'jobs',
    auth: 'token',
    summary: 'Upload an ONNX model; the answer names its inputs and outputs ("?" marks a dynamic axis)',
    body: 'onnx',
    answers: { 201: ModelCreated },
    errors: { 400: 'not a valid ONNX model, or one that cannot run (the message says why)', 413: 'over the model size limit', 415: 'not sent as application/octet-stream' },
  },
  shardHead: {
    tag: 'jobs',
    auth: 'none',
    summary: 'Whether a shard is stored (Content-Length: its size), without its bytes',
    params: ShardParams,
    answers: { 200: null },
    errors: { 400: 'not a sha-256', 404: 'no such shard' },
  },
  shard: {
    tag: 'jobs',
    auth: 'none',
    summary: "A shard's bytes (immutable, content-addressed)",
    params: ShardParams,
    answers: { 200: 'bytes' },
    errors: { 400: 'not a sha-256', 404: 'no such shard' },
  },
  submit: {
    tag: 'jobs',
    auth: 'token',
    summary: 'Submit a job: matmul, attention, onnx or train (by `kind`)',
    body: JobSubmit,
    answers: { 201: JobCreated },
    errors: { 400: 'the body or the inputs cannot make a job (the message names the field and what is wrong)' },
  },
  list: { tag: 'jobs', auth: 'token', summary: "The token's own jobs with their status, newest first (an admin token: every job)", answers: { 200: JobList } },
  status: {
    tag: 'jobs',
    auth: 'token',
    summary: "A job's status and progress (an onnx job's output names in `outputs`)",
    params: JobParams,
    answers: { 200: JobStatus },
    errors: { 404: 'no such job' },
  },
  cancel: {
    tag: 'jobs',
    auth: 'token',
    summary: 'Cancel a queued or running job: it fails with "cancelled" and its workers stop',
    params: JobParams,
    answers: { 200: JobStatus },
    errors: { 404: 'no such job', 409: 'the job is already done or failed' },
  },
  p2p: {
    tag: 'grid',
    auth: 'token',
    summary: 'Peer-to-peer: bytes the coordinator served, peers and their holdings, peers caught serving bad bytes',
    answers: { 200: P2pStatus },
  },
  result: {
    tag: 'jobs',
    auth: 'token',
    summary: "The verified result as .npy (an onnx job's first output)",
    params: JobParams,
    answers: { 200: 'npy' },
    errors: { 404: 'no such job', 409: NOT_READY },
  },
  output: {
    tag: 'jobs',
    auth: 'token',
    summary: "One named output of an onnx job, or one trained parameter tensor of a train job (w0, b0, …, params), as .npy",
    params: JobParams.extend({ name: z.string().describe('an output name of the model (an onnx job status lists them), or a train job\'s tensor') }),
    answers: { 200: 'npy' },
    errors: { 404: 'no such job or output, or a job kind with one result', 409: NOT_READY },
  },
  model: {
    tag: 'jobs',
    auth: 'token',
    summary: "A train job's trained model as an ONNX inference graph (upload it with POST /api/models to run it as an onnx job)",
    params: JobParams,
    answers: { 200: 'onnx' },
    errors: { 404: 'no such job, or a kind without a model', 409: NOT_READY },
  },
} satisfies Record<string, ApiDoc>;

export function jobStatus(job: JobRecord, shardTraffic?: ShardTraffic): JobStatus {
  const outputs = jobKind(job.kind)?.outputNames?.(job);
  return {
    id: job.id,
    kind: job.kind,
    name: job.name,
    state: job.state,
    progress: { done: job.done, total: job.total },
    replication: job.replication,
    createdAt: job.createdAt,
    finishedAt: job.finishedAt,
    error: job.error,
    result: job.resultSha && job.resultShape ? { sha256: job.resultSha, shape: job.resultShape } : null,
    ...(shardTraffic ? { shardTraffic } : {}),
    // Iterative jobs (train): round, rounds and each closed round's figures.
    ...jobKind(job.kind)?.iterative?.status(job),
    ...(outputs ? { outputs } : {}),
  };
}

/** A shard id from the path, or a 400. */
function shardId(raw: string): string {
  if (!Sha256Hex.safeParse(raw).success) throw new ApiFailure(400, 'bad_request', 'shard id must be a sha-256 (64 lowercase hex)');
  return raw;
}

/** The raw bytes of an upload, or a 415 naming what to send. */
function uploadBytes(body: unknown, what: string): Uint8Array {
  if (!Buffer.isBuffer(body)) throw new ApiFailure(415, 'unsupported_media_type', `send the ${what} bytes with Content-Type: application/octet-stream`);
  return new Uint8Array(body);
}

/** The 409 for a job asked for what only a done job has. */
function notDone(job: JobRecord): ApiFailure {
  return new ApiFailure(409, 'not_ready', `job is ${job.state} (${job.done}/${job.total} work units done)`);
}

/** Stored bytes as a download named `filename` (sent as they are, not copied). */
function sendDownload(reply: FastifyReply, bytes: Uint8Array, filename: string) {
  return reply
    .type('application/octet-stream')
    .header('content-disposition', `attachment; filename="${filename}"`)
    .send(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
}

export const jobRoutes: FastifyPluginAsync<RouteOptions> = async (app, { ctx }) => {
  const { store, shards } = ctx;
  const requireToken = requireScope(ctx, 'submit');
  /** The job, if the request's token may see it (its own, or any for an admin token). */
  const jobOr404 = async (req: FastifyRequest, id: string) => {
    const job = await store.getJob(id);
    const who = req.principal;
    if (!job || !who || (who.scope !== 'admin' && job.owner !== who.id)) throw new ApiFailure(404, 'not_found', `no job ${id}`);
    return job;
  };
  const withTraffic = (job: JobRecord) => jobStatus(job, ctx.tracker.jobTraffic(job.id));

  app.post('/api/shards', { onRequest: requireToken, bodyLimit: LIMITS.maxShardBytes, config: { api: API.uploadShard } }, async (req, reply) => {
    const bytes = uploadBytes(req.body, '.npy');
    let shape: number[];
    try {
      shape = parseNpyTyped(bytes).shape; // float32, or int32 (training labels)
    } catch (err) {
      throw new ApiFailure(400, 'bad_request', err instanceof NpyError ? err.message : 'unreadable .npy');
    }
    const sha256 = await shards.put(bytes);
    return reply.code(201).send({ sha256, shape, bytes: bytes.length });
  });

  // ONNX models: checked (size, protobuf, float32 inputs/outputs) and stored as a shard.
  app.post('/api/models', { onRequest: requireToken, bodyLimit: LIMITS.maxShardBytes, config: { api: API.uploadModel } }, async (req, reply) => {
    const bytes = uploadBytes(req.body, '.onnx');
    const info = readModel(bytes);
    const sha256 = await shards.put(bytes);
    const shape = (dims: (number | null)[]) => dims.map((d) => d ?? '?');
    return reply.code(201).send({
      sha256,
      bytes: bytes.length,
      inputs: info.inputs.map((t) => ({ name: t.name, shape: shape(t.dims) })),
      outputs: info.outputs.map((t) => ({ name: t.name, shape: shape(t.dims) })),
      parameters: info.parameters,
      opset: info.opset,
      ops: info.ops,
    });
  });

  // Declared before GET, so it replaces the HEAD route Fastify would derive from it (which would
  // read the whole shard and count it as served).
  app.head<{ Params: { sha: string } }>('/shards/:sha', { config: { api: API.shardHead } }, async (req, reply) => {
    shardId(req.params.sha);
    const size = await shards.size(req.params.sha);
    if (size === null) throw new ApiFailure(404, 'not_found', `no shard ${req.params.sha}`);
    return reply
      .type('application/octet-stream')
      .header('content-length', String(size))
      .header('cache-control', 'public, max-age=31536000, immutable')
      .send();
  });

  app.get<{ Params: { sha: string } }>('/shards/:sha', { config: { api: API.shard } }, async (req, reply) => {
    shardId(req.params.sha);
    const bytes = await shards.get(req.params.sha);
    if (!bytes) throw new ApiFailure(404, 'not_found', `no shard ${req.params.sha}`);
    ctx.tracker.coordinatorBytes += bytes.length;
    return reply
      .type('application/octet-stream')
      .header('cache-control', 'public, max-age=31536000, immutable')
      .send(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  });

  app.post('/api/jobs', { onRequest: requireToken, config: { api: API.submit } }, async (req, reply) =>
    reply.code(201).send(await submitJob(ctx, parseOr400(JobSubmit, req.body), req.principal?.id ?? null)),
  );

  app.get('/api/jobs', { onRequest: requireToken, config: { api: API.list } }, async (req) => {
    const who = req.principal;
    const jobs = who?.scope === 'admin' ? await store.listJobs() : await store.listJobs(who?.id ?? '');
    return { jobs: jobs.map(withTraffic) };
  });

  app.get<{ Params: { id: string } }>('/api/jobs/:id', { onRequest: requireToken, config: { api: API.status } }, async (req) => withTraffic(await jobOr404(req, req.params.id)));

  // A job that is no longer wanted: it fails with "cancelled", its open units close, and the workers
  // computing them are told to stop (their late results earn nothing; units already done keep their credit).
  app.post<{ Params: { id: string } }>('/api/jobs/:id/cancel', { onRequest: requireToken, config: { api: API.cancel } }, async (req) => {
    const job = await jobOr404(req, req.params.id);
    if (job.state === 'done' || job.state === 'failed') throw new ApiFailure(409, 'conflict', `job is already ${job.state}`);
    await store.failJob(job.id, 'cancelled', ctx.now());
    await ctx.scheduler.cancelLeases((l) => l.jobId === job.id, 'job cancelled');
    ctx.log(`job ${job.id} cancelled (${job.done}/${job.total} work units done)`);
    return withTraffic(await jobOr404(req, job.id));
  });

  app.get('/api/p2p', { onRequest: requireToken, config: { api: API.p2p } }, async () => ({
    coordinatorShardBytes: ctx.tracker.coordinatorBytes,
    peers: ctx.tracker.snapshot(),
    badVolunteers: ctx.tracker.badVolunteers(),
  }));

  app.get<{ Params: { id: string } }>('/api/jobs/:id/result', { onRequest: requireToken, config: { api: API.result } }, async (req, reply) => {
    const job = await jobOr404(req, req.params.id);
    if (job.state === 'failed') throw new ApiFailure(409, 'not_ready', `job failed: ${job.error}`);
    if (job.state !== 'done' || !job.resultSha) throw notDone(job);
    const bytes = await shards.get(job.resultSha);
    if (!bytes) throw new ApiFailure(500, 'internal', 'result shard is missing from the data directory');
    return sendDownload(reply, bytes, `${job.id}.npy`);
  });

  // A trained model (train jobs) as an ONNX inference graph: upload it with POST /api/models and
  // run it as an `onnx` job on the same grid.
  app.get<{ Params: { id: string } }>('/api/jobs/:id/model.onnx', { onRequest: requireToken, config: { api: API.model } }, async (req, reply) => {
    const job = await jobOr404(req, req.params.id);
    const kind = jobKind(job.kind);
    if (!kind?.modelOnnx) throw new ApiFailure(404, 'not_found', `${job.kind} jobs have no model`);
    if (job.state !== 'done') throw notDone(job);
    const bytes = await kind.modelOnnx(job, shards);
    if (!bytes) throw new ApiFailure(500, 'internal', "the job's parameters are missing from the data directory");
    return sendDownload(reply, bytes, `${job.id}.onnx`);
  });

  // One named output of a multi-output job (ONNX), assembled from the canonical unit outputs.
  app.get<{ Params: { id: string; name: string } }>('/api/jobs/:id/outputs/:name', { onRequest: requireToken, config: { api: API.output } }, async (req, reply) => {
    const job = await jobOr404(req, req.params.id);
    const kind = jobKind(job.kind);
    if (job.state !== 'done') throw notDone(job);
    const filename = `${job.id}-${req.params.name.replace(/[^A-Za-z0-9_.-]/g, '_')}.npy`;
    if (kind?.storedOutput) {
      const stored = await kind.storedOutput(job, req.params.name, shards);
      if (!stored) throw new ApiFailure(404, 'not_found', `job ${job.id} has no output '${req.params.name}'`);
      return sendDownload(reply, stored, filename);
    }
    if (!kind?.output) throw new ApiFailure(404, 'not_found', `${job.kind} jobs have one result: use /api/jobs/${job.id}/result`);
    const outputs = (await store.canonicalOutputs(job.id)).map(({ wu, data }) => ({ wu, output: new Float32Array(data.slice().buffer) }));
    const npy = kind.output(job, outputs, req.params.name);
    if (!npy) throw new ApiFailure(404, 'not_found', `job ${job.id} has no output '${req.params.name}'`);
    return sendDownload(reply, npy, filename);
  });
};
