// The dashboard's statistics, the volunteers' receipts, the OpenAPI document and CORS, over HTTP.
import { verify, createPublicKey } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { entryHash } from '../ledger/chain.js';
import { verifyReceipt } from '../ledger/export.js';
import { toNpy } from '../protocol/npy.js';
import type { GridStats, Receipts } from '../protocol/index.js';
import { SimWorker } from '../testing/sim-worker.js';
import { randomMatrix, waitFor } from '../testing/helpers.js';
import { useTestGrid } from '../testing/fixtures.js';

const { grid, workers } = useTestGrid();

async function runJob(cheat = false) {
  const honest = [new SimWorker({ url: grid.base, name: 'a' }), new SimWorker({ url: grid.base, name: 'b' })];
  const cheater = new SimWorker({ url: grid.base, name: 'c', compute: (wu) => new Float32Array(wu.outputBytes / 4).fill(1) });
  const all = cheat ? [cheater, ...honest] : honest;
  workers.push(...all);
  for (const w of all) await w.connect();
  const [m, k, n] = [40, 24, 32];
  const a = await grid.uploadShard(toNpy([m, k], randomMatrix(m, k, 1)));
  const b = await grid.uploadShard(toNpy([k, n], randomMatrix(k, n, 2)));
  // Fixed replication: every unit is computed twice, so the counts below are exact.
  const id = await grid.submitJob({ kind: 'matmul', inputs: { a, b }, replication: 2, adaptive: false, tile: { rows: 20, cols: 32 } });
  expect((await grid.waitForJob(id, 20_000)).state).toBe('done');
  return { honest, cheater, flopsPerUnit: 2 * 20 * 32 * k };
}

describe('dashboard and receipts', () => {
  test('stats count jobs, volunteers online, validation outcomes and credited throughput', async () => {
    expect((await grid.api('/api/stats', { token: null })).status).toBe(401);
    const { flopsPerUnit, cheater } = await runJob(true);
    // A cheater whose result failed the check is suspended and disconnected (it connected first, so
    // it was given a unit); the stats count it offline once its socket is gone.
    await waitFor(() => cheater.closed, 10_000, 'the cheater to be disconnected');
    expect(cheater.closed?.reason).toMatch(/suspended/);
    let stats = (await (await grid.api('/api/stats')).json()) as GridStats;
    for (let i = 0; i < 200 && stats.volunteers.online !== 2; i++) stats = (await (await grid.api('/api/stats')).json()) as GridStats;
    expect(stats.volunteers).toEqual({ online: 2, total: 3 });
    expect(stats.jobs).toEqual({ queued: 0, running: 0, done: 1, failed: 0 });
    expect(stats.results.agreed).toBe(4); // 2 units × 2 replicas
    // The cheater's constant output fails Freivalds' check at once: invalid, not "disagreed".
    expect(stats.results.invalid).toBeGreaterThan(0);
    expect(stats.results.pending).toBe(0);
    expect(stats.throughput.bucketMs).toBe(10_000);
    expect(stats.throughput.points.reduce((s, p) => s + p.flops, 0)).toBe(4 * flopsPerUnit);
  });

  test("a volunteer's receipts are its own ledger entries, each with its coordinator-signed seal and audit path", async () => {
    const { honest, flopsPerUnit } = await runJob();
    const res = await grid.api(`/api/volunteers/${honest[0].volunteerId}/receipts`, { token: null });
    expect(res.status).toBe(200);
    const r = (await res.json()) as Receipts;
    expect(r.receipts).toHaveLength(2);
    expect(r.credit).toBe(2 * flopsPerUnit);
    const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: r.coordinatorPublicKey }, format: 'jwk' });
    for (const { entry: e, seal } of r.receipts) {
      expect(e.volunteerId).toBe(honest[0].volunteerId);
      expect(entryHash(e)).toBe(e.hash);
      expect(e.signature).toBeUndefined(); // entries are sealed, not signed one by one
      const signed = `tabgrid-ledger-seal-v1\n${seal!.firstSeq}\n${seal!.lastSeq}\n${seal!.headHash}\n${seal!.root}`;
      expect(verify(null, Buffer.from(signed), key, Buffer.from(seal!.signature, 'base64url'))).toBe(true);
    }
    for (const receipt of r.receipts) expect((await verifyReceipt({ ...receipt, coordinatorPublicKey: r.coordinatorPublicKey })).ok).toBe(true);
    // Rebuilt from the database, they are the receipts the credit messages carried.
    const sent = new Map(honest[0].receipts.map((x) => [x.entry.seq, x]));
    for (const receipt of r.receipts) expect(receipt).toEqual(sent.get(receipt.entry.seq));
    expect(r.receipts[0].entry.seq).toBeGreaterThan(r.receipts[1].entry.seq); // newest first
    expect((await grid.api('/api/volunteers/v_nobody/receipts', { token: null })).status).toBe(404);
  });

  test('the OpenAPI document lists every API route with schemas generated from zod', async () => {
    const doc = (await (await grid.api('/api/openapi.json', { token: null })).json()) as {
      openapi: string;
      paths: Record<string, Record<string, unknown>>;
      components: { schemas: Record<string, { properties?: Record<string, unknown> }> };
    };
    expect(doc.openapi).toBe('3.1.0');
    for (const path of ['/api/jobs', '/api/shards', '/api/rooms', '/api/rooms/{code}/control', '/api/volunteers/{id}/receipts', '/api/stats']) {
      expect(doc.paths[path], path).toBeDefined();
    }
    expect(Object.keys(doc.components.schemas.MatmulJobSubmit.properties ?? {})).toEqual(
      expect.arrayContaining(['kind', 'inputs', 'replication', 'tile', 'tolerance', 'name']),
    );
  });

  test('any origin may call the API (bearer tokens, no cookies)', async () => {
    const pre = await grid.api('/api/jobs', {
      method: 'OPTIONS',
      token: null,
      headers: { origin: 'http://example.test', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' },
    });
    expect(pre.status).toBeLessThan(300);
    expect(pre.headers.get('access-control-allow-origin')).toBe('*');
    expect(pre.headers.get('access-control-allow-headers')).toContain('authorization');
    const get = await grid.api('/api/info', { token: null, headers: { origin: 'http://example.test' } });
    expect(get.headers.get('access-control-allow-origin')).toBe('*');
  });
});
