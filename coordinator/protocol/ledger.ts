// The credit ledger: entries, the seals the coordinator signs once per commit (an RFC 6962 Merkle
// root over a range of entries, coordinator/protocol/merkle.ts), receipts and the public export.
import { z } from 'zod';
import { Base64Url, Sha256Hex } from './common.js';

export const LedgerEntry = z.object({
  seq: z.number().int().min(1),
  ts: z.number(),
  volunteerId: z.string(),
  jobId: z.string(),
  wuId: z.string(),
  amount: z.number(),
  prevHash: z.string(),
  hash: z.string(),
  /** Only on entries written before seals (legacy ledgers): the coordinator's signature over the hash. */
  signature: z.string().optional(),
});
export type LedgerEntry = z.infer<typeof LedgerEntry>;

/** At most 2^64 entries per seal: an audit path is never longer. */
export const MAX_AUDIT_PATH = 64;

export const LedgerSeal = z.object({
  firstSeq: z.number().int().min(1),
  lastSeq: z.number().int().min(1),
  /** Hash of entry `lastSeq`: the chain head this seal vouches for. */
  headHash: Sha256Hex,
  /** RFC 6962 Merkle tree head over the hashes of entries firstSeq..lastSeq. */
  root: Sha256Hex,
  /** Coordinator's Ed25519 signature (base64url) over ledgerSealCanonical(seal). */
  signature: Base64Url,
});
export type LedgerSeal = z.infer<typeof LedgerSeal>;

/** One entry with the proof that the coordinator sealed it: what a volunteer keeps as its receipt. */
export const LedgerReceipt = z.object({
  entry: LedgerEntry,
  /** Absent only for legacy entries that carry their own signature. */
  seal: LedgerSeal.optional(),
  /** Sibling hashes from the entry's leaf up to seal.root, lowest first. */
  path: z.array(Sha256Hex).max(MAX_AUDIT_PATH).optional(),
});
export type LedgerReceipt = z.infer<typeof LedgerReceipt>;

export const Receipts = z.object({
  volunteerId: z.string(),
  coordinatorPublicKey: z.string(),
  credit: z.number(),
  receipts: z.array(LedgerReceipt),
});
export type Receipts = z.infer<typeof Receipts>;

/** A receipt file (`npm run ledger -- verify-receipt <file>`): one sealed ledger entry and the key to check it with. */
export const Receipt = LedgerReceipt.extend({ coordinatorPublicKey: Base64Url }).strict();
export type Receipt = z.infer<typeof Receipt>;

/** The whole ledger for public audit (`npm run ledger -- export`, `GET /api/ledger/export`). */
export const LedgerExport = z.object({
  /** 2: entries are sealed (`seals`); 1: older exports whose entries each carry a signature. */
  format: z.enum(['tabgrid-ledger-1', 'tabgrid-ledger-2']),
  coordinatorPublicKey: Base64Url,
  exportedAt: z.number(),
  entries: z.array(LedgerEntry),
  seals: z.array(LedgerSeal).default([]),
});
export type LedgerExport = z.infer<typeof LedgerExport>;
