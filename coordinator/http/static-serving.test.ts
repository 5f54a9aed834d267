// The built web app as the coordinator serves it: brotli or gzip copies made at build, chosen by
// Accept-Encoding; content-hashed assets cached for a year, everything else revalidated.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { join } from 'node:path';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { makeTempDir, removeDir, startTestCoordinator, type TestCoordinator } from '../testing/helpers.js';
import { precompressDir } from './precompress.js';
import { cacheControlFor } from './server.js';

let grid: TestCoordinator;
let web: string;
const script = `export const answer = ${JSON.stringify('forty-two '.repeat(400))};\n`;
const wasm = Buffer.concat([Buffer.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]), Buffer.alloc(64 * 1024, 7)]);

function raw(path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    get(`${grid.base}${path}`, { headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    }).on('error', reject);
  });
}

beforeAll(async () => {
  web = makeTempDir('tabgrid-web-');
  mkdirSync(join(web, 'assets'));
  writeFileSync(join(web, 'index.html'), `<!doctype html><title>t</title>${'<p>hello</p>'.repeat(200)}`);
  writeFileSync(join(web, 'assets', 'app-AbC_d-12.js'), script);
  writeFileSync(join(web, 'assets', 'ort-wasm-simd-threaded-DcHrbrbl.wasm'), wasm);
  writeFileSync(join(web, 'assets', 'compute.worker.js'), script);
  writeFileSync(join(web, 'robots.txt'), 'User-agent: *\n'); // under 1 KiB: sent as it is
  const compressed = await precompressDir(web);
  expect(compressed.map((f) => f.slice(web.length + 1))).toEqual([
    'assets/app-AbC_d-12.js',
    'assets/compute.worker.js',
    'assets/ort-wasm-simd-threaded-DcHrbrbl.wasm',
    'index.html',
  ]);
  grid = await startTestCoordinator({ staticDir: web });
});

afterAll(async () => {
  await grid?.stop();
  removeDir(web);
});

describe('precompressed assets', () => {
  test('brotli where the browser takes it, decoding to the same bytes, with the type of the original', async () => {
    const res = await raw('/assets/app-AbC_d-12.js', { 'accept-encoding': 'gzip, deflate, br, zstd' });
    expect(res.status).toBe(200);
    expect(res.headers['content-encoding']).toBe('br');
    expect(res.headers['content-type']).toMatch(/^text\/javascript|^application\/javascript/);
    expect(res.headers.vary).toMatch(/accept-encoding/i);
    expect(res.body.length).toBeLessThan(script.length / 10);
    expect(brotliDecompressSync(res.body).toString()).toBe(script);
  });

  test('gzip for a client without brotli; the file itself for one that takes neither', async () => {
    const gz = await raw('/assets/app-AbC_d-12.js', { 'accept-encoding': 'gzip' });
    expect(gz.headers['content-encoding']).toBe('gzip');
    expect(gunzipSync(gz.body).toString()).toBe(script);
    const plain = await raw('/assets/app-AbC_d-12.js');
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(plain.body.toString()).toBe(script);
  });

  test('wasm keeps application/wasm (streaming compilation needs it); pages are compressed too', async () => {
    const res = await raw('/assets/ort-wasm-simd-threaded-DcHrbrbl.wasm', { 'accept-encoding': 'br' });
    expect(res.headers['content-type']).toBe('application/wasm');
    expect(brotliDecompressSync(res.body).equals(wasm)).toBe(true);
    const page = await raw('/', { 'accept-encoding': 'br' });
    expect(page.headers['content-encoding']).toBe('br');
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(brotliDecompressSync(page.body).toString()).toBe(readFileSync(join(web, 'index.html'), 'utf8'));
  });

  test('a small file has no compressed copy and is sent as it is', async () => {
    const res = await raw('/robots.txt', { 'accept-encoding': 'br' });
    expect(res.headers['content-encoding']).toBeUndefined();
    expect(res.body.toString()).toBe('User-agent: *\n');
  });

  test('a second run compresses nothing that has not changed', async () => {
    expect(await precompressDir(web)).toEqual([]);
  });
});

describe('cache headers', () => {
  test('content-hashed assets: a year, immutable, in either encoding', async () => {
    for (const enc of ['br', 'gzip', 'identity']) {
      const res = await raw('/assets/app-AbC_d-12.js', { 'accept-encoding': enc });
      expect(res.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    }
    expect((await raw('/assets/ort-wasm-simd-threaded-DcHrbrbl.wasm')).headers['cache-control']).toBe('public, max-age=31536000, immutable');
  });

  test('pages and fixed-name scripts are revalidated: a repeat request with the ETag gets 304', async () => {
    for (const path of ['/', '/assets/compute.worker.js', '/robots.txt']) {
      const first = await raw(path, { 'accept-encoding': 'br' });
      expect(first.headers['cache-control'], path).toBe('no-cache');
      const again = await raw(path, { 'accept-encoding': 'br', 'if-none-match': String(first.headers.etag) });
      expect(again.status, path).toBe(304);
    }
  });

  test.each([
    ['/srv/dist/assets/index-BxYz12_a.js', true],
    ['/srv/dist/assets/ort-wasm-simd-threaded.jsep-MDYUKy93.wasm.br', true],
    ['/srv/dist/assets/compute.worker.js', false],
    ['/srv/dist/assets/compute.worker.js.gz', false],
    ['/srv/dist/widget.js', false],
    ['/srv/dist/index.html', false],
    ['/srv/dist/favicon-abcdefgh.svg', false], // not under assets/
  ])('%s immutable: %s', (path, immutable) => {
    expect(cacheControlFor(path).includes('immutable')).toBe(immutable);
  });
});
