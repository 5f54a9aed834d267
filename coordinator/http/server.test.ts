import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { toNpy } from '../protocol/npy.js';
import { ApiError, JobStatus, LIMITS } from '../protocol/index.js';
import { randomMatrix, startTestCoordinator, TOKEN, type TestCoordinator } from '../testing/helpers.js';

let t: TestCoordinator;

beforeAll(async () => {
  t = await startTestCoordinator();
});
afterAll(async () => {
  await t?.stop();
});

async function expectError(res: Response, status: number, code: string, message?: RegExp | string) {
  expect(res.status).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/application\/json/);
  const body = ApiError.parse(await res.json());
  expect(body.error.code).toBe(code);
  if (message instanceof RegExp) expect(body.error.message).toMatch(message);
  else if (message !== undefined) expect(body.error.message).toContain(message);
  return body;
}

const postJson = (path: string, body: string, token: string | null = TOKEN) =>
  t.api(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body, token });
const postShard = (bytes: Uint8Array, token: string | null = TOKEN, contentType = 'application/octet-stream') =>
  t.api('/api/shards', { method: 'POST', headers: { 'content-type': contentType }, body: new Uint8Array(bytes), token });

/** A .npy of another dtype, built by hand. */
function npyWithDescr(descr: string, shape: string, payloadBytes: number): Uint8Array {
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  header += ' '.repeat((64 - ((10 + header.length + 1) % 64)) % 64) + '\n';
  const out = new Uint8Array(10 + header.length + payloadBytes);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0], 0);
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(new TextEncoder().encode(header), 10);
  return out;
}

describe('authentication', () => {
  const job = JSON.stringify({ kind: 'matmul', inputs: { a: 'a'.repeat(64), b: 'b'.repeat(64) } });
  const shard = toNpy([2, 2], Float32Array.from([1, 2, 3, 4]));

  test.each([
    { what: 'no token', token: null },
    { what: 'a wrong token', token: 'wrong' },
    { what: 'a token with the right prefix', token: `${TOKEN}2` },
    { what: 'an empty bearer token', token: '' },
  ])('POST /api/jobs and POST /api/shards with $what → 401', async ({ token }) => {
    await expectError(await postJson('/api/jobs', job, token), 401, 'unauthorized', /Bearer/);
    await expectError(await postShard(shard, token), 401, 'unauthorized');
  });

  test('a non-Bearer scheme is refused', async () => {
    const res = await fetch(`${t.base}/api/jobs`, { headers: { authorization: 'Basic dDp0' } });
    await expectError(res, 401, 'unauthorized');
  });

  test('GET /api/jobs and /api/jobs/:id need the token too', async () => {
    await expectError(await t.api('/api/jobs', { token: null }), 401, 'unauthorized');
    await expectError(await t.api('/api/jobs/j_x', { token: 'nope' }), 401, 'unauthorized');
  });

  test('public endpoints answer without a token', async () => {
    expect(await (await t.api('/api/health', { token: null })).json()).toEqual({ ok: true, protocol: 2 });
    expect((await t.api('/api/volunteers', { token: null })).status).toBe(200);
    expect((await t.api('/api/ledger', { token: null })).status).toBe(200);
  });
});

describe('shards', () => {
  test('upload answers with the sha-256 of the bytes and the shape; download returns the exact bytes', async () => {
    const bytes = toNpy([3, 5], randomMatrix(3, 5, 1));
    const res = await postShard(bytes);
    expect(res.status).toBe(201);
    const body = (await res.json()) as { sha256: string; shape: number[]; bytes: number };
    const sha = createHash('sha256').update(bytes).digest('hex');
    expect(body).toEqual({ sha256: sha, shape: [3, 5], bytes: bytes.length });

    const got = await fetch(`${t.base}/shards/${sha}`);
    expect(got.status).toBe(200);
    expect(got.headers.get('content-type')).toBe('application/octet-stream');
    expect(got.headers.get('cache-control')).toMatch(/immutable/);
    expect(Buffer.from(await got.arrayBuffer()).equals(Buffer.from(bytes))).toBe(true);

    // Uploading the same bytes again names the same shard.
    expect(((await (await postShard(bytes, TOKEN, 'application/x-npy')).json()) as { sha256: string }).sha256).toBe(sha);
  });

  test("a float64 .npy is refused with 400 naming '<f8'", async () => {
    await expectError(await postShard(npyWithDescr('<f8', '(2, 2)', 32)), 400, 'bad_request', "'<f8'");
  });

  test('bytes that are not a .npy are refused with 400', async () => {
    await expectError(await postShard(new TextEncoder().encode('just text')), 400, 'bad_request', /magic/);
    const full = toNpy([4, 4], randomMatrix(4, 4, 2));
    const truncated = full.subarray(0, full.length - 1);
    await expectError(await postShard(truncated), 400, 'bad_request', /data length/);
  });

  test('an upload with a JSON or unknown content type is refused with 415', async () => {
    await expectError(
      await t.api('/api/shards', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' }),
      415,
      'unsupported_media_type',
    );
    await expectError(await postShard(toNpy([1], Float32Array.from([1])), TOKEN, 'image/png'), 415, 'unsupported_media_type');
  });

  test(`a shard of exactly ${LIMITS.maxShardBytes / 2 ** 20} MiB is stored; one byte more → 413 payload_too_large`, async () => {
    // A float32 .npy whose header and data fill the limit exactly (the header is padded to 64 bytes).
    let n = (LIMITS.maxShardBytes - 128) / 4;
    for (let i = 0; i < 3; i++) n = (LIMITS.maxShardBytes - npyWithDescr('<f4', `(${n},)`, 0).length) / 4;
    const full = npyWithDescr('<f4', `(${n},)`, 4 * n);
    expect(full.length).toBe(LIMITS.maxShardBytes);
    const res = await postShard(full);
    expect(res.status).toBe(201);
    expect(((await res.json()) as { sha256: string }).sha256).toBe(createHash('sha256').update(full).digest('hex'));
    const over = new Uint8Array(LIMITS.maxShardBytes + 1);
    over.set(full);
    await expectError(await postShard(over), 413, 'payload_too_large');
  }, 60_000);

  test('GET /shards/<not a sha> → 400; an unknown sha → 404', async () => {
    for (const bad of ['abc', 'A'.repeat(64), 'a'.repeat(63), 'g'.repeat(64), '..%2F..%2Fetc%2Fpasswd']) {
      await expectError(await fetch(`${t.base}/shards/${bad}`), 400, 'bad_request', /sha-256/);
    }
    await expectError(await fetch(`${t.base}/shards/${'0'.repeat(64)}`), 404, 'not_found');
  });
});

describe('jobs', () => {
  let a23: string;
  let b45: string;
  let b35: string;

  beforeAll(async () => {
    a23 = ((await (await postShard(toNpy([2, 3], randomMatrix(2, 3, 3)))).json()) as { sha256: string }).sha256;
    b45 = ((await (await postShard(toNpy([4, 5], randomMatrix(4, 5, 4)))).json()) as { sha256: string }).sha256;
    b35 = ((await (await postShard(toNpy([3, 5], randomMatrix(3, 5, 5)))).json()) as { sha256: string }).sha256;
  });

  test('mismatched inner dimensions → 400 naming both shapes', async () => {
    const res = await postJson('/api/jobs', JSON.stringify({ kind: 'matmul', inputs: { a: a23, b: b45 } }));
    await expectError(res, 400, 'bad_request', /2×3.*4×5/);
  });

  test('an unknown shard → 400', async () => {
    const missing = 'c'.repeat(64);
    const res = await postJson('/api/jobs', JSON.stringify({ kind: 'matmul', inputs: { a: a23, b: missing } }));
    await expectError(res, 400, 'bad_request', `no shard ${missing}`);
  });

  test('malformed JSON → 400 bad_request', async () => {
    await expectError(await postJson('/api/jobs', '{"kind": "matmul", '), 400, 'bad_request');
    await expectError(await postJson('/api/jobs', 'not json'), 400, 'bad_request');
  });

  test('a body failing the schema → 400 naming the field', async () => {
    await expectError(await postJson('/api/jobs', JSON.stringify({ kind: 'matmul', inputs: { a: 'A', b: b35 } })), 400, 'bad_request', /inputs\.a/);
    await expectError(await postJson('/api/jobs', JSON.stringify({ kind: 'matmul', inputs: { a: a23, b: b35 }, replication: 99 })), 400, 'bad_request', /replication/);
    await expectError(await postJson('/api/jobs', JSON.stringify({ kind: 'sort', inputs: {} })), 400, 'bad_request');
  });

  test(`a JSON body over ${LIMITS.maxJsonBodyBytes} bytes → 413 payload_too_large`, async () => {
    const body = JSON.stringify({ kind: 'matmul', inputs: { a: a23, b: b35 }, name: 'x'.repeat(LIMITS.maxJsonBodyBytes) });
    await expectError(await postJson('/api/jobs', body), 413, 'payload_too_large');
  });

  test('unknown job id → 404', async () => {
    await expectError(await t.api('/api/jobs/j_nope'), 404, 'not_found', 'j_nope');
    await expectError(await t.api('/api/jobs/j_nope/result'), 404, 'not_found');
  });

  test('a valid job is queued; its result before it is done → 409 not_ready', async () => {
    const res = await postJson('/api/jobs', JSON.stringify({ kind: 'matmul', name: 'small', inputs: { a: a23, b: b35 } }));
    expect(res.status).toBe(201);
    const { id, workUnits } = (await res.json()) as { id: string; workUnits: number };
    expect(workUnits).toBe(1);
    const status = JobStatus.parse(await (await t.api(`/api/jobs/${id}`)).json());
    expect(status).toMatchObject({ id, kind: 'matmul', name: 'small', state: 'queued', progress: { done: 0, total: 1 }, replication: 2, result: null });
    await expectError(await t.api(`/api/jobs/${id}/result`), 409, 'not_ready', /queued/);
    const list = (await (await t.api('/api/jobs')).json()) as { jobs: JobStatus[] };
    expect(list.jobs.map((j) => j.id)).toContain(id);
  });

  test('unknown routes → 404 not_found', async () => {
    await expectError(await t.api('/api/nothing-here'), 404, 'not_found', /no route GET \/api\/nothing-here/);
  });
});
