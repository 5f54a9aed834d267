// The researcher's API: shard and model uploads, shard downloads, jobs (submit, list, status,
// cancel, result, named outputs) and the swarm's traffic. Every route but shard downloads needs a token.
import type { FastifyPluginAsync } from 'fastify';
import { jobKind } from '../jobs/index.js';
import { readModel } from '../jobs/onnx.js';
import { JobSubmit, LIMITS, Sha256Hex, type JobStatus, type ShardTraffic } from '../protocol/index.js';
import { NpyError, parseNpyTyped } from '../protocol/npy.js';
import type { JobRecord } from '../store/store.js';
import { submitJob } from '../work/submit.js';
import { requireScope, type RouteOptions } from './context.js';
import { ApiFailure, parseOr400 } from './errors.js';

export function jobStatus(job: JobRecord, shardTraffic?: ShardTraffic): JobStatus {
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
  };
}

/** The raw bytes of an upload, or a 415 naming what to send. */
function uploadBytes(body: unknown, what: string): Uint8Array {
  if (!Buffer.isBuffer(body)) throw new ApiFailure(415, 'unsupported_media_type', `send the ${what} bytes with Content-Type: application/octet-stream`);
  return new Uint8Array(body);
}

export const jobRoutes: FastifyPluginAsync<RouteOptions> = async (app, { ctx }) => {
  const { store, shards } = ctx;
  const requireToken = requireScope(ctx, 'submit');
  const jobOr404 = async (id: string) => {
    const job = await store.getJob(id);
    if (!job) throw new ApiFailure(404, 'not_found', `no job ${id}`);
    return job;
  };
  const withTraffic = (job: JobRecord) => jobStatus(job, ctx.tracker.jobTraffic(job.id));

  app.post('/api/shards', { onRequest: requireToken, bodyLimit: LIMITS.maxShardBytes }, async (req, reply) => {
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
  app.post('/api/models', { onRequest: requireToken, bodyLimit: LIMITS.maxShardBytes }, async (req, reply) => {
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

  app.get<{ Params: { sha: string } }>('/shards/:sha', async (req, reply) => {
    if (!Sha256Hex.safeParse(req.params.sha).success) throw new ApiFailure(400, 'bad_request', 'shard id must be a sha-256 (64 lowercase hex)');
    const bytes = await shards.get(req.params.sha);
    if (!bytes) throw new ApiFailure(404, 'not_found', `no shard ${req.params.sha}`);
    ctx.tracker.coordinatorBytes += bytes.length;
    return reply
      .type('application/octet-stream')
      .header('cache-control', 'public, max-age=31536000, immutable')
      .send(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  });

  app.post('/api/jobs', { onRequest: requireToken }, async (req, reply) => reply.code(201).send(await submitJob(ctx, parseOr400(JobSubmit, req.body))));

  app.get('/api/jobs', { onRequest: requireToken }, async () => ({ jobs: (await store.listJobs()).map(withTraffic) }));

  app.get<{ Params: { id: string } }>('/api/jobs/:id', { onRequest: requireToken }, async (req) => withTraffic(await jobOr404(req.params.id)));

  // A job that is no longer wanted: it fails with "cancelled", its open units close, and the workers
  // computing them are told to stop (their late results earn nothing; units already done keep their credit).
  app.post<{ Params: { id: string } }>('/api/jobs/:id/cancel', { onRequest: requireToken }, async (req) => {
    const job = await jobOr404(req.params.id);
    if (job.state === 'done' || job.state === 'failed') throw new ApiFailure(409, 'conflict', `job is already ${job.state}`);
    await store.failJob(job.id, 'cancelled', ctx.now());
    await ctx.scheduler.cancelLeases((l) => l.jobId === job.id, 'job cancelled');
    ctx.log(`job ${job.id} cancelled (${job.done}/${job.total} work units done)`);
    return withTraffic(await jobOr404(job.id));
  });

  app.get('/api/p2p', { onRequest: requireToken }, async () => ({
    coordinatorShardBytes: ctx.tracker.coordinatorBytes,
    peers: ctx.tracker.snapshot(),
    badVolunteers: ctx.tracker.badVolunteers(),
  }));

  app.get<{ Params: { id: string } }>('/api/jobs/:id/result', { onRequest: requireToken }, async (req, reply) => {
    const job = await jobOr404(req.params.id);
    if (job.state === 'failed') throw new ApiFailure(409, 'not_ready', `job failed: ${job.error}`);
    if (job.state !== 'done' || !job.resultSha) {
      throw new ApiFailure(409, 'not_ready', `job is ${job.state} (${job.done}/${job.total} work units done)`);
    }
    const bytes = await shards.get(job.resultSha);
    if (!bytes) throw new ApiFailure(500, 'internal', 'result shard is missing from the data directory');
    return reply
      .type('application/octet-stream')
      .header('content-disposition', `attachment; filename="${job.id}.npy"`)
      .send(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  });

  // A trained model (train jobs) as an ONNX inference graph: upload it with POST /api/models and
  // run it as an `onnx` job on the same grid.
  app.get<{ Params: { id: string } }>('/api/jobs/:id/model.onnx', { onRequest: requireToken }, async (req, reply) => {
    const job = await jobOr404(req.params.id);
    const kind = jobKind(job.kind);
    if (!kind?.modelOnnx) throw new ApiFailure(404, 'not_found', `${job.kind} jobs have no model`);
    if (job.state !== 'done') throw new ApiFailure(409, 'not_ready', `job is ${job.state} (${job.done}/${job.total} work units done)`);
    const bytes = await kind.modelOnnx(job, shards);
    if (!bytes) throw new ApiFailure(500, 'internal', "the job's parameters are missing from the data directory");
    return reply
      .type('application/octet-stream')
      .header('content-disposition', `attachment; filename="${job.id}.onnx"`)
      .send(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  });

  // One named output of a multi-output job (ONNX), assembled from the canonical unit outputs.
  app.get<{ Params: { id: string; name: string } }>('/api/jobs/:id/outputs/:name', { onRequest: requireToken }, async (req, reply) => {
    const job = await jobOr404(req.params.id);
    const kind = jobKind(job.kind);
    if (job.state !== 'done') throw new ApiFailure(409, 'not_ready', `job is ${job.state} (${job.done}/${job.total} work units done)`);
    if (kind?.storedOutput) {
      const stored = await kind.storedOutput(job, req.params.name, shards);
      if (!stored) throw new ApiFailure(404, 'not_found', `job ${job.id} has no output '${req.params.name}'`);
      return reply
        .type('application/octet-stream')
        .header('content-disposition', `attachment; filename="${job.id}-${req.params.name.replace(/[^A-Za-z0-9_.-]/g, '_')}.npy"`)
        .send(Buffer.from(stored.buffer, stored.byteOffset, stored.byteLength));
    }
    if (!kind?.output) throw new ApiFailure(404, 'not_found', `${job.kind} jobs have one result: use /api/jobs/${job.id}/result`);
    const outputs = (await store.canonicalOutputs(job.id)).map(({ wu, data }) => ({ wu, output: new Float32Array(data.slice().buffer) }));
    const npy = kind.output(job, outputs, req.params.name);
    if (!npy) throw new ApiFailure(404, 'not_found', `job ${job.id} has no output '${req.params.name}'`);
    return reply
      .type('application/octet-stream')
      .header('content-disposition', `attachment; filename="${job.id}-${req.params.name.replace(/[^A-Za-z0-9_.-]/g, '_')}.npy"`)
      .send(Buffer.from(npy.buffer, npy.byteOffset, npy.byteLength));
  });
};
