// Registers raw-hooks.mjs, so modules imported after this one can `import x from '….wgsl?raw'` in
// Node as under Vite. Import it first, then the modules that use `?raw` dynamically.
import { register } from 'node:module';

register('./raw-hooks.mjs', import.meta.url);
