// The protocol: every coordinator <-> browser message and every HTTP API body, as zod schemas with
// their inferred types. The only part of coordinator/ that web/ imports; it imports no node: module.
export * from './common.js';
export * from './jobs.js';
export * from './stats.js';
export * from './ledger.js';
export * from './rooms.js';
export * from './p2p.js';
export * from './messages.js';
export * from './frames.js';
export * from './api.js';
export { fromBase64Url, ledgerEntryCanonical, ledgerSealCanonical, toBase64Url } from './canonical.js';
