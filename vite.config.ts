import { svelte } from '@sveltejs/vite-plugin-svelte';
import { defineConfig } from 'vite';

export default defineConfig({
  root: 'web',
  publicDir: '../public',
  plugins: [svelte({ configFile: '../svelte.config.js' })],
  build: {
    outDir: '../dist',
    emptyOutDir: true,
    target: 'es2022',
    // selftest.html: the kernel harness the e2e kernel tests drive.
    rollupOptions: { input: { main: 'web/index.html', selftest: 'web/selftest.html' } },
  },
  worker: { format: 'es' },
  optimizeDeps: { include: ['comlink', 'idb', 'zod'] },
  server: { fs: { allow: ['..'] } },
});
