// Whole-ledger audit: the chain (sequence, links, hashes, signatures) and the credit balances the
// coordinator shows, which must equal the sums of the chain.
import type { KeyObject } from 'node:crypto';
import { verifyChain } from './ledger.js';
import { readAllEntries } from './ledger-export.js';
import type { Store } from './store.js';

export interface AuditReport {
  ok: boolean;
  entries: number;
  problems: string[];
}

export async function auditLedger(store: Store, publicKey: KeyObject): Promise<AuditReport> {
  const entries = await readAllEntries(store);
  const chain = verifyChain(entries, publicKey);
  if (!chain.ok && chain.firstBad) {
    return { ok: false, entries: entries.length, problems: [`entry #${chain.firstBad.seq}: ${chain.firstBad.reason}`] };
  }
  const problems: string[] = [];
  for (const v of await store.listVolunteers()) {
    const fromChain = chain.credit.get(v.id) ?? 0;
    if (fromChain !== v.credit) problems.push(`volunteer ${v.id}: balance ${v.credit} but the ledger sums to ${fromChain}`);
  }
  return { ok: problems.length === 0, entries: entries.length, problems };
}
