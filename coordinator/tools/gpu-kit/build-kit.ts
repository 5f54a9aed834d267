// `npm run kit:gpu [-- --out DIR]`: writes the GPU kit — a self-contained folder (≤ 60 MiB) that runs
// the native bench and volunteer on a bare Linux x64 machine with a GPU and no network:
//   run.sh                     unpacks once, finds the Vulkan driver, runs the bench (or `volunteer`)
//   app/tabgrid-native.mjs     the bench and the native volunteer, bundled (WGSL inlined from shaders/)
//   app/node_modules/…         the native packages' JavaScript: webgpu, onnxruntime-node, node-datachannel
//   payload/*.xz               Node itself (process.execPath), dawn.node, libonnxruntime, libdatachannel
//   lib/                       the Vulkan loader and libGLdispatch, used where the machine lacks them
//   app/torch_bench.py         PyTorch's fp32 matmul and SDPA on the same shapes (where torch is installed)
// Compressed binaries are cached in dist-kit/.cache by content hash.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { build, type Plugin } from 'esbuild';

const HERE = import.meta.dirname;
const ROOT = resolve(HERE, '../../..');
const MAX_BYTES = 60 * 1024 * 1024;
const log = (msg: string) => console.log(`[kit] ${msg}`);

/** `import x from './a.wgsl?raw'` → the file's text, as under Vite. */
const rawPlugin: Plugin = {
  name: 'raw',
  setup(b) {
    b.onResolve({ filter: /\?raw$/ }, (args) => ({ path: resolve(args.resolveDir, args.path.slice(0, -4)), namespace: 'raw' }));
    b.onLoad({ filter: /.*/, namespace: 'raw' }, (args) => ({ contents: readFileSync(args.path, 'utf8'), loader: 'text' }));
  },
};

/** A package's folder in node_modules (hoisted: npm ci puts these at the top). */
function packageDir(name: string): string {
  const dir = join(ROOT, 'node_modules', name);
  if (!existsSync(join(dir, 'package.json'))) throw new Error(`${name} is not installed (npm ci?)`);
  return dir;
}

/** Copies `files` (paths or folders inside the package) of package `name` to app/node_modules/name. */
function copyPackage(app: string, name: string, files: string[]) {
  const from = packageDir(name);
  const to = join(app, 'node_modules', name);
  for (const f of ['package.json', ...files]) {
    const src = join(from, f);
    if (!existsSync(src)) throw new Error(`${name}: ${f} is missing (npm ci?)`);
    mkdirSync(dirname(join(to, f)), { recursive: true });
    cpSync(src, join(to, f), { recursive: true });
  }
}

/** xz -9 of a file, cached by its content hash. */
function compressed(file: string): string {
  const bytes = readFileSync(file);
  const hash = createHash('sha256').update(bytes).digest('hex').slice(0, 24);
  const cacheDir = join(ROOT, 'dist-kit', '.cache');
  mkdirSync(cacheDir, { recursive: true });
  const out = join(cacheDir, `${hash}.xz`);
  if (!existsSync(out)) {
    log(`compressing ${file} (${(bytes.length / 2 ** 20).toFixed(1)} MiB; cached afterwards)…`);
    execFileSync('sh', ['-c', `xz -9 -T0 -c "$0" > "$1.tmp" && mv "$1.tmp" "$1"`, file, out]);
  }
  return out;
}

/** The first of these libraries that exists on this machine. */
function systemLibrary(names: string[]): string | null {
  for (const dir of ['/usr/lib/x86_64-linux-gnu', '/lib/x86_64-linux-gnu', '/usr/lib64', '/usr/lib']) {
    for (const name of names) if (existsSync(join(dir, name))) return realpathSync(join(dir, name));
  }
  return null;
}

function packageVersion(name: string): string {
  return (JSON.parse(readFileSync(join(packageDir(name), 'package.json'), 'utf8')) as { version: string }).version;
}

function folderBytes(dir: string): number {
  let total = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    total += e.isDirectory() ? folderBytes(p) : statSync(p).size;
  }
  return total;
}

function gitCommit(): string | null {
  try {
    const sha = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: ROOT, encoding: 'utf8' }).trim() !== '';
    return dirty ? `${sha}+changes` : sha;
  } catch {
    return null;
  }
}

/** The bench and the native volunteer as one ES module for Node (kit-entry.ts), WGSL inlined. */
export async function bundleNative(outfile: string) {
  await build({
    entryPoints: [join(HERE, 'kit-entry.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    minify: true,
    legalComments: 'none',
    // Native packages load their binaries by path at run time: they ship as folders beside the bundle.
    external: ['webgpu', 'onnxruntime-node', 'node-datachannel', 'node-datachannel/*', 'bufferutil', 'utf-8-validate'],
    // CommonJS dependencies (ws) require Node's built-ins.
    banner: { js: "import { createRequire as __kitRequire } from 'node:module'; const require = __kitRequire(import.meta.url);" },
    plugins: [rawPlugin],
    logLevel: 'warning',
  });
}

export async function buildKit(out: string) {
  if (process.platform !== 'linux' || process.arch !== 'x64') throw new Error('the GPU kit is built on Linux x64 (its binaries are this machine\'s)');
  rmSync(out, { recursive: true, force: true });
  const app = join(out, 'app');
  mkdirSync(app, { recursive: true });

  log('bundling the bench and the native volunteer…');
  await bundleNative(join(app, 'tabgrid-native.mjs'));
  copyFileSync(join(HERE, 'torch_bench.py'), join(app, 'torch_bench.py'));

  const payload: { from: string; to: string }[] = [];
  const nodeModule = (pkg: string, file: string) => ({ from: join(packageDir(pkg), file), to: `app/node_modules/${pkg}/${file}` });
  copyPackage(app, 'webgpu', ['index.js', 'LICENSE.md']);
  payload.push(nodeModule('webgpu', 'dist/linux-x64/dawn.node'));
  const ortBin = 'bin/napi-v6/linux/x64';
  copyPackage(app, 'onnxruntime-node', ['dist', `${ortBin}/onnxruntime_binding.node`]);
  payload.push(nodeModule('onnxruntime-node', `${ortBin}/libonnxruntime.so.1`));
  copyPackage(app, 'onnxruntime-common', ['dist/cjs', 'dist/esm']);
  copyPackage(app, 'node-datachannel', ['dist/esm', 'dist/cjs', 'LICENSE']);
  copyPackage(app, 'detect-libc', ['lib']);
  copyPackage(app, '@node-datachannel/linux-x64-gnu', []);
  payload.push(nodeModule('@node-datachannel/linux-x64-gnu', 'node_datachannel.node'));
  payload.push({ from: realpathSync(process.execPath), to: 'node' });

  mkdirSync(join(out, 'payload'), { recursive: true });
  const manifest: string[] = [];
  for (const [i, p] of payload.entries()) {
    const name = `${i}-${p.to.split('/').at(-1)}.xz`;
    copyFileSync(compressed(p.from), join(out, 'payload', name));
    manifest.push(`${name} ${p.to}`);
  }
  writeFileSync(join(out, 'payload', 'MANIFEST'), manifest.join('\n') + '\n');

  // The Vulkan loader (and the GL dispatch library NVIDIA's driver links to), for machines without them.
  mkdirSync(join(out, 'lib'), { recursive: true });
  for (const [name, candidates] of [
    ['libvulkan.so.1', ['libvulkan.so.1']],
    ['libGLdispatch.so.0', ['libGLdispatch.so.0']],
  ] as const) {
    const lib = systemLibrary([...candidates]);
    if (lib) copyFileSync(lib, join(out, 'lib', name));
    else log(`warning: ${name} is not installed here; the kit relies on the target's`);
  }

  const info = { commit: gitCommit(), built: new Date().toISOString(), node: process.version, webgpu: packageVersion('webgpu'), onnxruntime: packageVersion('onnxruntime-node') };
  writeFileSync(join(app, 'kit.json'), JSON.stringify(info, null, 2) + '\n');
  const stamp = createHash('sha256').update(JSON.stringify(info)).update(manifest.join()).digest('hex').slice(0, 16);
  writeFileSync(join(out, 'run.sh'), readFileSync(join(HERE, 'run.sh'), 'utf8').replace('@STAMP@', stamp));
  chmodSync(join(out, 'run.sh'), 0o755);
  copyFileSync(join(HERE, 'KIT-README.txt'), join(out, 'README.txt'));

  const bytes = folderBytes(out);
  log(`wrote ${relative(process.cwd(), out) || out}: ${(bytes / 2 ** 20).toFixed(1)} MiB (limit 60 MiB)`);
  if (bytes > MAX_BYTES) throw new Error(`the kit is ${(bytes / 2 ** 20).toFixed(1)} MiB, over the 60 MiB limit`);
  return { out, bytes };
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  const { values } = parseArgs({ options: { out: { type: 'string', default: join(ROOT, 'dist-kit', 'tabgrid-gpu-kit') } } });
  buildKit(resolve(values.out)).catch((err: Error) => {
    console.error(`kit: ${err.message}`);
    process.exit(1);
  });
}
