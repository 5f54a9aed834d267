import { svelte } from '@sveltejs/vite-plugin-svelte';
import { resolve } from 'node:path';
import { defineConfig } from 'vite';
import { precompress } from './coordinator/http/precompress.js';

/** One HTML page per view; the coordinator maps its routes to them (server.ts PAGES). */
const PAGES = ['index', 'room', 'board', 'teacher', 'dashboard', 'api-docs', 'embed', 'selftest'];

export default defineConfig({
  root: 'web',
  publicDir: '../public',
  // precompress: .br and .gz beside each output file, served by Accept-Encoding (coordinator/http/server.ts).
  plugins: [svelte({ configFile: '../svelte.config.js' }), precompress()],
  build: {
    outDir: '../dist',
    emptyOutDir: true,
    target: 'es2022',
    // One entry per page (PAGES), plus bench.html: the page `npm run bench:cpu` drives (web/bench/).
    rollupOptions: { input: Object.fromEntries([...PAGES, 'bench'].map((p) => [p, resolve(import.meta.dirname, 'web', `${p}.html`)])) },
  },
  // The compute worker keeps a fixed name, assets/compute.worker.js: the widget on other sites
  // imports it from the coordinator (web/widget/tabgrid-widget.ts).
  worker: { format: 'es', rollupOptions: { output: { entryFileNames: 'assets/[name].js' } } },
  optimizeDeps: { include: ['comlink', 'idb', 'zod', 'uplot', 'qrcode', 'onnxruntime-web', 'onnx-buf', '@bufbuild/protobuf'] },
  // Same isolation headers as the coordinator, so the dev server's wasm can use threads too.
  server: { fs: { allow: ['..'] }, headers: { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' } },
});
