// The web build's compressed copies: every compressible file in dist/ gets a brotli (.br) and a
// gzip (.gz) sibling at build time, which the coordinator serves by the request's Accept-Encoding
// (@fastify/static `preCompressed`, server.ts). onnxruntime-web's 14 MB wasm goes over the wire
// as ~2.6 MB. Brotli runs at quality 11 on small files and 9 on large ones (11 takes ~35 s on the
// 14 MB wasm for 12% less); results are cached by content under node_modules/.cache, so a rebuild
// compresses only what changed. Used by vite.config.ts and vite.widget.config.ts (a Vite plugin).
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { brotliCompress, constants, gzip } from 'node:zlib';
import type { Plugin } from 'vite';

const brotli = promisify(brotliCompress);
const gzipAsync = promisify(gzip);

/** Files worth compressing (images and fonts are compressed already). */
const COMPRESSIBLE = /\.(js|mjs|css|html|wasm|json|svg|txt|map|wgsl)$/;
/** Smaller files are sent as they are: the saving is less than a packet. */
const MIN_BYTES = 1024;
/** Above this size brotli runs at quality 9, not 11. */
const LARGE_BYTES = 1 << 20;
const CACHE_DIR = resolve(import.meta.dirname, '../../node_modules/.cache/tabgrid-precompress');

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)]));
}

async function compressed(bytes: Buffer, encoding: 'br' | 'gz'): Promise<Buffer> {
  const large = bytes.length > LARGE_BYTES;
  const key = createHash('sha256').update(bytes).digest('hex');
  const cached = join(CACHE_DIR, `${key}.${large ? 'q9' : 'q11'}.${encoding}`);
  if (existsSync(cached)) return readFileSync(cached);
  const out =
    encoding === 'br'
      ? await brotli(bytes, {
          params: {
            [constants.BROTLI_PARAM_QUALITY]: large ? 9 : 11,
            [constants.BROTLI_PARAM_LGWIN]: 24,
            [constants.BROTLI_PARAM_SIZE_HINT]: bytes.length,
          },
        })
      : await gzipAsync(bytes, { level: 9 });
  try {
    mkdirSync(CACHE_DIR, { recursive: true });
    writeFileSync(cached, out);
  } catch {
    // no cache (a read-only node_modules): compress again next time
  }
  return out;
}

/**
 * Writes `.br` and `.gz` beside every compressible file of `dir` that lacks them or is newer than
 * them, unless compressing saves nothing. Returns the files it compressed.
 */
export async function precompressDir(dir: string): Promise<string[]> {
  const files = walk(dir).filter((f) => COMPRESSIBLE.test(f) && statSync(f).size >= MIN_BYTES);
  const done: string[] = [];
  await Promise.all(
    files.map(async (file) => {
      const mtime = statSync(file).mtimeMs;
      const stale = (['br', 'gz'] as const).filter((enc) => !existsSync(`${file}.${enc}`) || statSync(`${file}.${enc}`).mtimeMs < mtime);
      if (!stale.length) return;
      const bytes = readFileSync(file);
      for (const enc of stale) {
        const out = await compressed(bytes, enc);
        if (out.length < bytes.length) writeFileSync(`${file}.${enc}`, out);
      }
      done.push(file);
    }),
  );
  return done.sort();
}

/** A Vite plugin: once the bundle is written, precompress the output directory. */
export function precompress(): Plugin {
  let outDir = '';
  return {
    name: 'tabgrid-precompress',
    apply: 'build',
    configResolved(config) {
      outDir = resolve(config.root, config.build.outDir);
    },
    async closeBundle() {
      await precompressDir(outDir);
    },
  };
}
