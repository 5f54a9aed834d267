// The embeddable widget as its own self-contained bundle, dist/widget.js (a classic script, so a
// plain <script src> from any origin works). Runs after the app build, which empties dist/.
import { defineConfig } from 'vite';

export default defineConfig({
  root: 'web',
  publicDir: false,
  build: {
    outDir: '../dist',
    emptyOutDir: false,
    target: 'es2022',
    lib: { entry: 'widget/main.ts', formats: ['iife'], name: 'TabgridWidget', fileName: () => 'widget.js' },
  },
  server: { fs: { allow: ['..'] } },
});
