import { svelte } from '@sveltejs/vite-plugin-svelte';
import { resolve } from 'node:path';
import { defineConfig } from 'vite';

export default defineConfig({
  root: 'web',
  publicDir: '../public',
  plugins: [svelte({ configFile: '../svelte.config.js' })],
  build: {
    outDir: '../dist',
    emptyOutDir: true,
    target: 'es2022',
    // bench.html: the page `npm run bench:cpu` drives (web/bench/).
    rollupOptions: { input: { main: resolve(import.meta.dirname, 'web/index.html'), bench: resolve(import.meta.dirname, 'web/bench.html') } },
  },
  worker: { format: 'es' },
  optimizeDeps: { include: ['comlink', 'idb', 'zod', 'onnxruntime-web', 'onnx-buf', '@bufbuild/protobuf'] },
  // Same isolation headers as the coordinator, so the dev server's wasm can use threads too.
  server: { fs: { allow: ['..'] }, headers: { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' } },
});
