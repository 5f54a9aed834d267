// Whole-ledger audit: the chain (sequence, links, hashes, seals) and the credit balances the
// coordinator shows, which must equal the sums of the chain.
import type { KeyObject } from 'node:crypto';
import { verifyChain } from './chain.js';
import { readLedger, type LedgerSource } from './export.js';

export interface AuditReport {
  ok: boolean;
  entries: number;
  seals: number;
  problems: string[];
}

export async function auditLedger(store: LedgerSource, publicKey: KeyObject): Promise<AuditReport> {
  const ledger = await readLedger(store);
  const entries = ledger.entries;
  const chain = verifyChain(ledger, publicKey);
  if (!chain.ok && chain.firstBad) {
    return { ok: false, entries: entries.length, seals: ledger.seals.length, problems: [`${chain.firstBad.where}: ${chain.firstBad.reason}`] };
  }
  const problems: string[] = [];
  for (const v of await store.listVolunteers()) {
    const fromChain = chain.credit.get(v.id) ?? 0;
    if (fromChain !== v.credit) problems.push(`volunteer ${v.id}: balance ${v.credit} but the ledger sums to ${fromChain}`);
  }
  return { ok: problems.length === 0, entries: entries.length, seals: ledger.seals.length, problems };
}
