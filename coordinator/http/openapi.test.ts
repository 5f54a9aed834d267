// The OpenAPI document is made from the routes: every route the server registers (as its onRoute
// hook saw them) is in it unless it is no part of the HTTP API, everything in it is a real route,
// every job kind is in the job submission's union, and every reference resolves.
import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { JobSubmit } from '../protocol/index.js';
import { toNpy } from '../protocol/npy.js';
import { startTestCoordinator, type TestCoordinator } from '../testing/helpers.js';
import { apiRoutesOf, openApiPath, type OpenApiDocument } from './openapi.js';
import { PAGES } from './server.js';

let t: TestCoordinator;
let doc: OpenApiDocument;

beforeAll(async () => {
  t = await startTestCoordinator({ staticDir: import.meta.dirname }); // any folder: the page routes are registered
  doc = (await (await t.api('/api/openapi.json', { token: null })).json()) as OpenApiDocument;
});
afterAll(async () => {
  await t?.stop();
});

/** Routes that are no part of the HTTP API: pages and static files, the WebSockets, CORS preflight. */
const notApi = (method: string, url: string) =>
  method === 'OPTIONS' || url === '/*' || url === '/ws' || url.startsWith('/peerjs') || Object.hasOwn(PAGES, url);

describe('the OpenAPI document', () => {
  test('lists every registered route but the pages, static files, WebSockets and CORS preflight', () => {
    const routes = t.c.routes();
    expect(routes.length).toBeGreaterThan(30);
    const missing = routes
      .filter((r) => !r.implied && !notApi(r.method, r.url))
      .filter((r) => doc.paths[openApiPath(r.url)]?.[r.method.toLowerCase()] === undefined)
      .map((r) => `${r.method} ${r.url}`);
    expect(missing).toEqual([]);
    // and what it leaves out is only those
    expect(routes.filter((r) => !r.api && !r.implied && !notApi(r.method, r.url))).toEqual([]);
    expect(routes.some((r) => r.url === '/ws') && routes.some((r) => r.url === '/dashboard')).toBe(true);
  });

  test('lists nothing that is not a route', () => {
    const registered = new Set(t.c.routes().map((r) => `${r.method.toLowerCase()} ${openApiPath(r.url)}`));
    const listed = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m} ${path}`));
    expect(listed.length).toBeGreaterThan(25);
    expect(listed.filter((op) => !registered.has(op))).toEqual([]);
  });

  test('a route added without a declaration is caught', async () => {
    const app = Fastify();
    const routes = apiRoutesOf(app);
    app.get('/api/documented', { config: { api: { tag: 'grid', auth: 'none', summary: 'yes', answers: { 200: null } } } }, async () => ({}));
    app.get('/api/forgotten', async () => ({}));
    await app.ready();
    expect(routes.undocumented().map((r) => `${r.method} ${r.url}`)).toEqual(['GET /api/forgotten', 'HEAD /api/forgotten']);
    expect(Object.keys(routes.document().paths)).toEqual(['/api/documented']);
    await app.close();
  });

  test('POST /api/jobs takes every job kind, as a union discriminated by kind', () => {
    const body = doc.paths['/api/jobs'].post.requestBody as { content: Record<string, { schema: { $ref: string } }> };
    expect(body.content['application/json'].schema.$ref).toBe('#/components/schemas/JobSubmit');
    const union = doc.components.schemas.JobSubmit as { oneOf: { $ref: string }[]; discriminator: { propertyName: string; mapping: Record<string, string> } };
    const kinds = JobSubmit.options.map((o) => o.shape.kind.value);
    expect(kinds).toEqual(['matmul', 'attention', 'onnx', 'train']);
    expect(union.discriminator.propertyName).toBe('kind');
    expect(Object.keys(union.discriminator.mapping)).toEqual(kinds);
    expect(union.oneOf.map((r) => r.$ref)).toEqual(Object.values(union.discriminator.mapping));
    const props = (name: string) => Object.keys((doc.components.schemas[name] as { properties: object }).properties);
    expect(props('AttentionJobSubmit')).toEqual(expect.arrayContaining(['kind', 'inputs', 'causal', 'blockRows', 'replication']));
    expect(props('OnnxJobSubmit')).toEqual(expect.arrayContaining(['kind', 'model', 'inputs', 'itemsPerUnit', 'argmax', 'tolerance']));
    expect(props('TrainJobSubmit')).toEqual(expect.arrayContaining(['kind', 'model', 'data', 'rounds', 'localSteps', 'batchSize', 'innerOptimizer']));
    // Request bodies are documented as clients send them: defaults make fields optional.
    expect((doc.components.schemas.MatmulJobSubmit as { required: string[] }).required).toEqual(['kind', 'inputs']);
  });

  test('the routes the hand-kept table lacked are there, with their answers', () => {
    expect(doc.paths['/api/models'].post.responses).toHaveProperty('201');
    expect(doc.paths['/api/jobs/{id}/outputs/{name}'].get.parameters).toEqual([
      expect.objectContaining({ name: 'id', in: 'path' }),
      expect.objectContaining({ name: 'name', in: 'path' }),
    ]);
    expect(doc.paths['/shards/{sha}'].head).toBeDefined();
    expect(doc.paths['/api/jobs/{id}/model.onnx'].get.responses).toHaveProperty('409');
    expect(Object.keys((doc.components.schemas.JobStatus as { properties: object }).properties)).toContain('outputs');
    const receipts = doc.paths['/api/volunteers/{id}/receipts'].get;
    expect(receipts.security).toEqual([]);
    expect(receipts.parameters).toContainEqual(expect.objectContaining({ name: 'limit', in: 'query', required: false }));
    expect(doc.paths['/api/rooms/{code}/control'].post.security).toEqual([{ teacherKey: [] }, { apiToken: [] }]);
    expect(doc.paths['/api/jobs/{id}/result'].get.responses).toHaveProperty('409');
  });

  test('every $ref resolves to a schema in the document', () => {
    const refs = [...JSON.stringify(doc).matchAll(/"\$ref":"#\/components\/schemas\/([^"]+)"/g)].map((m) => m[1]);
    expect(refs.length).toBeGreaterThan(30);
    expect(refs.filter((name) => !(name in doc.components.schemas))).toEqual([]);
  });
});

describe('HEAD /shards/<sha>', () => {
  test('says whether a shard is stored and its size, without sending or counting its bytes', async () => {
    const sha = await t.uploadShard(toNpy([10, 10], new Float32Array(100)));
    const served = async () => ((await (await t.api('/api/p2p')).json()) as { coordinatorShardBytes: number }).coordinatorShardBytes;
    const before = await served();
    const head = await fetch(`${t.base}/shards/${sha}`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe(String(10 * 10 * 4 + 128));
    expect((await head.arrayBuffer()).byteLength).toBe(0);
    expect(await served()).toBe(before);
    expect((await fetch(`${t.base}/shards/${'0'.repeat(64)}`, { method: 'HEAD' })).status).toBe(404);
    expect((await fetch(`${t.base}/shards/nope`, { method: 'HEAD' })).status).toBe(400);
    // GET still serves and counts them
    expect((await (await fetch(`${t.base}/shards/${sha}`)).arrayBuffer()).byteLength).toBe(528);
    expect(await served()).toBe(before + 528);
  });
});
