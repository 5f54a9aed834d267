// The ledger as one public document (for audit) and single sealed entries as receipts: both are
// checked offline with nothing but the coordinator's public key.
import type { KeyObject } from 'node:crypto';
import { verifySignature, volunteerPublicKey } from '../access/keys.js';
import { receiptsFor, sha256, verifyChain } from './chain.js';
import { LedgerExport, Receipt, formatIssues, type LedgerEntry, type LedgerReceipt, type LedgerSeal } from '../protocol/index.js';
import { receiptProblem } from '../protocol/receipt-check.js';

/** What the ledger's readers need of a store: its entries and seals in order, and the volunteers' balances. */
export interface LedgerSource {
  ledgerEntries(afterSeq: number, limit: number): Promise<LedgerEntry[]>;
  ledgerSeals(afterLastSeq: number, limit: number): Promise<LedgerSeal[]>;
  listVolunteers(): Promise<{ id: string; credit: number }[]>;
}

async function readAll<T>(page: (after: number) => Promise<T[]>, seqOf: (t: T) => number): Promise<T[]> {
  const out: T[] = [];
  for (let after = 0; ; ) {
    const rows = await page(after);
    if (rows.length === 0) return out;
    out.push(...rows);
    after = seqOf(rows[rows.length - 1]);
  }
}

/** Every entry and every seal, in order. */
export async function readLedger(store: LedgerSource): Promise<{ entries: LedgerEntry[]; seals: LedgerSeal[] }> {
  return {
    entries: await readAll((after) => store.ledgerEntries(after, 5000), (e) => e.seq),
    seals: await readAll((after) => store.ledgerSeals(after, 5000), (s) => s.lastSeq),
  };
}

export async function exportLedger(store: LedgerSource, coordinatorPublicKey: string, now: number): Promise<LedgerExport> {
  const { entries, seals } = await readLedger(store);
  // Seals are read after the entries: those over entries committed since are left out, so the
  // document is one consistent prefix of a ledger that may be growing meanwhile.
  const lastSeq = entries.at(-1)?.seq ?? 0;
  return { format: 'tabgrid-ledger-2', coordinatorPublicKey, exportedAt: now, entries, seals: seals.filter((s) => s.lastSeq <= lastSeq) };
}

/** Stored entries as receipts: each with its seal and its audit path to the seal's root. */
export function storedReceipts(store: LedgerSource, entries: LedgerEntry[]): Promise<LedgerReceipt[]> {
  return receiptsFor(entries, async (seq) => {
    const [seal] = await store.ledgerSeals(seq - 1, 1);
    if (!seal || seal.firstSeq > seq) return null;
    const covered = await store.ledgerEntries(seal.firstSeq - 1, seal.lastSeq - seal.firstSeq + 1);
    return { seal, hashes: covered.map((e) => e.hash) };
  });
}

export interface OfflineCheck {
  ok: boolean;
  message: string;
}

function keyFor(raw: string, expected: string | undefined): KeyObject | string {
  if (expected && expected !== raw) return `the document names coordinator key ${raw}, not the expected ${expected}`;
  return volunteerPublicKey(raw) ?? `coordinator key ${raw} is not a raw Ed25519 public key`;
}

/**
 * Checks a receipt file's JSON: the entry's hash, its audit path to its seal and the seal's
 * signature. `expectedKey` (base64url) pins the coordinator; without it the receipt's own key is
 * used, and printed so it can be compared with the coordinator's published one (`GET /api/info`).
 */
export async function verifyReceipt(json: unknown, expectedKey?: string): Promise<OfflineCheck> {
  const parsed = Receipt.safeParse(json);
  if (!parsed.success) return { ok: false, message: `not a receipt: ${formatIssues(parsed.error)}` };
  const { coordinatorPublicKey, ...receipt } = parsed.data;
  const { entry, seal } = receipt;
  const key = keyFor(coordinatorPublicKey, expectedKey);
  if (typeof key === 'string') return { ok: false, message: key };
  const problem = await receiptProblem(receipt, { sha256, verify: (message, signature) => verifySignature(key, message, signature) });
  if (problem) return { ok: false, message: `receipt #${entry.seq}: ${problem}` };
  const by = seal ? `sealed (#${seal.firstSeq}–#${seal.lastSeq}) and signed` : 'signed';
  return {
    ok: true,
    message: `receipt OK: ledger entry #${entry.seq}, ${entry.amount} credit to ${entry.volunteerId} for ${entry.wuId}, ${by} by coordinator ${coordinatorPublicKey}`,
  };
}

/** Checks a whole exported ledger: every entry's sequence, link and hash, and every seal. */
export function verifyExport(json: unknown, expectedKey?: string): OfflineCheck {
  const parsed = LedgerExport.safeParse(json);
  if (!parsed.success) return { ok: false, message: `not a ledger export: ${formatIssues(parsed.error)}` };
  const key = keyFor(parsed.data.coordinatorPublicKey, expectedKey);
  if (typeof key === 'string') return { ok: false, message: key };
  const report = verifyChain(parsed.data, key);
  if (!report.ok && report.firstBad) return { ok: false, message: `${report.firstBad.where}: ${report.firstBad.reason}` };
  const seals = parsed.data.seals.length;
  return {
    ok: true,
    message: `ledger export OK: ${report.checked} entries under ${seals} seals; chain, seals and signatures verified (coordinator ${parsed.data.coordinatorPublicKey})`,
  };
}
