import { svelte } from '@sveltejs/vite-plugin-svelte';
import { resolve } from 'node:path';
import { defineConfig } from 'vite';

/** One HTML page per view; the coordinator maps its routes to them (server.ts PAGES). */
const PAGES = ['index', 'room', 'board', 'teacher', 'dashboard', 'api-docs', 'embed', 'selftest'];

export default defineConfig({
  root: 'web',
  publicDir: '../public',
  plugins: [svelte({ configFile: '../svelte.config.js' })],
  build: {
    outDir: '../dist',
    emptyOutDir: true,
    target: 'es2022',
    rollupOptions: { input: Object.fromEntries(PAGES.map((p) => [p, resolve(import.meta.dirname, 'web', `${p}.html`)])) },
  },
  worker: { format: 'es' },
  optimizeDeps: { include: ['comlink', 'idb', 'zod', 'uplot', 'qrcode'] },
  server: { fs: { allow: ['..'] } },
});
