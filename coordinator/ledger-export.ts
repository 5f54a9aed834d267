// The ledger as one public document (for audit) and single signed entries as receipts: both are
// checked offline with nothing but the coordinator's public key.
import type { KeyObject } from 'node:crypto';
import { volunteerPublicKey } from './keys.js';
import { entryProblem, verifyChain } from './ledger.js';
import { LedgerExport, Receipt, formatIssues, type LedgerEntry } from './protocol.js';
import type { Store } from './store.js';

export async function readAllEntries(store: Store): Promise<LedgerEntry[]> {
  const out: LedgerEntry[] = [];
  for (let after = 0; ; ) {
    const page = await store.ledgerEntries(after, 5000);
    if (page.length === 0) return out;
    out.push(...page);
    after = page[page.length - 1].seq;
  }
}

export async function exportLedger(store: Store, coordinatorPublicKey: string, now: number): Promise<LedgerExport> {
  return { format: 'tabgrid-ledger-1', coordinatorPublicKey, exportedAt: now, entries: await readAllEntries(store) };
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
 * Checks a receipt file's JSON: its hash and the coordinator's signature. `expectedKey` (base64url)
 * pins the coordinator; without it the receipt's own key is used, and printed so it can be compared
 * with the coordinator's published one (`GET /api/info`).
 */
export function verifyReceipt(json: unknown, expectedKey?: string): OfflineCheck {
  const parsed = Receipt.safeParse(json);
  if (!parsed.success) return { ok: false, message: `not a receipt: ${formatIssues(parsed.error)}` };
  const { entry, coordinatorPublicKey } = parsed.data;
  const key = keyFor(coordinatorPublicKey, expectedKey);
  if (typeof key === 'string') return { ok: false, message: key };
  const problem = entryProblem(entry, key);
  if (problem) return { ok: false, message: `receipt #${entry.seq}: ${problem}` };
  return {
    ok: true,
    message: `receipt OK: ledger entry #${entry.seq}, ${entry.amount} credit to ${entry.volunteerId} for ${entry.wuId}, signed by coordinator ${coordinatorPublicKey}`,
  };
}

/** Checks a whole exported ledger: every entry's sequence, link, hash and signature. */
export function verifyExport(json: unknown, expectedKey?: string): OfflineCheck {
  const parsed = LedgerExport.safeParse(json);
  if (!parsed.success) return { ok: false, message: `not a ledger export: ${formatIssues(parsed.error)}` };
  const key = keyFor(parsed.data.coordinatorPublicKey, expectedKey);
  if (typeof key === 'string') return { ok: false, message: key };
  const report = verifyChain(parsed.data.entries, key);
  if (!report.ok && report.firstBad) return { ok: false, message: `entry #${report.firstBad.seq}: ${report.firstBad.reason}` };
  return { ok: true, message: `ledger export OK: ${report.checked} entries; chain and signatures verified (coordinator ${parsed.data.coordinatorPublicKey})` };
}
