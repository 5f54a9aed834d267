#!/usr/bin/env node
// The `tabgrid` command (package.json "bin": `npx tabgrid …`; `npm run tabgrid -- …` in a checkout).
// The coordinator's own commands (start, ledger, tokens) run coordinator/cli.ts; every other is the
// researcher's command line over the TypeScript client (clients/typescript/cli.ts). Both are
// TypeScript, loaded through tsx.
import { register } from 'tsx/esm/api';

register();
const COORDINATOR = new Set(['start', 'ledger', 'tokens']);
if (COORDINATOR.has(process.argv[2])) {
  await import('../coordinator/cli.ts');
} else {
  const { main } = await import('../clients/typescript/cli.ts');
  process.exitCode = await main(process.argv.slice(2));
}
