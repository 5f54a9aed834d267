// The embeddable widget as its own self-contained bundle, dist/widget.js (a classic script, so a
// plain <script src> from any origin works). Runs after the app build, which empties dist/.
import { defineConfig } from 'vite';
import { precompress } from './coordinator/http/precompress.js';

export default defineConfig({
  root: 'web',
  publicDir: false,
  plugins: [precompress()],
  build: {
    outDir: '../dist',
    emptyOutDir: false,
    target: 'es2022',
    lib: { entry: 'widget/main.ts', formats: ['iife'], name: 'TabgridWidget', fileName: () => 'widget.js' },
  },
  server: { fs: { allow: ['..'] } },
});
