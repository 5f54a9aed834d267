// The exact texts that hashes and signatures cover, and base64url: part of the protocol
// (index.ts re-exports them), kept free of the schemas so that the SQLite writer thread, which
// hashes and seals ledger entries, starts without loading zod.
import type { LedgerEntry, LedgerSeal } from './ledger.js';

/** The exact text a seal's signature covers. */
export function ledgerSealCanonical(s: Omit<LedgerSeal, 'signature'>): string {
  return `tabgrid-ledger-seal-v1\n${s.firstSeq}\n${s.lastSeq}\n${s.headHash}\n${s.root}`;
}

/** The exact text a ledger entry's hash covers: every field but the hash and signature, in order. */
export function ledgerEntryCanonical(e: Omit<LedgerEntry, 'hash' | 'signature'>): string {
  return JSON.stringify([e.seq, e.ts, e.volunteerId, e.jobId, e.wuId, e.amount, e.prevHash]);
}

export function toBase64Url(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

export function fromBase64Url(text: string): Uint8Array {
  const b64 = text.replace(/-/g, '+').replace(/_/g, '/');
  const bin = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
