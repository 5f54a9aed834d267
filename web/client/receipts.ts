// A volunteer's receipts: its own ledger entries from the coordinator, each checked here in the
// browser — the hash must cover the entry's fields and the coordinator's Ed25519 signature must
// verify over it — so a receipt shown as verified is one the coordinator cannot later deny.
import { fromBase64Url, ledgerEntryCanonical, Receipts, type LedgerEntry } from '../../coordinator/protocol';

export interface CheckedReceipt extends LedgerEntry {
  verified: boolean;
}

async function sha256Hex(text: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text)));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

function hexBytes(hex: string): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export async function verifyReceipt(entry: LedgerEntry, coordinatorKey: CryptoKey): Promise<boolean> {
  if ((await sha256Hex(ledgerEntryCanonical(entry))) !== entry.hash) return false;
  try {
    return await crypto.subtle.verify({ name: 'Ed25519' }, coordinatorKey, fromBase64Url(entry.signature) as BufferSource, hexBytes(entry.hash));
  } catch {
    return false;
  }
}

export async function fetchReceipts(base: string, volunteerId: string, limit = 20): Promise<{ credit: number; receipts: CheckedReceipt[] }> {
  const res = await fetch(`${base}/api/volunteers/${encodeURIComponent(volunteerId)}/receipts?limit=${limit}`);
  if (!res.ok) throw new Error(`receipts: HTTP ${res.status}`);
  const body = Receipts.parse(await res.json());
  const key = await crypto.subtle.importKey('raw', fromBase64Url(body.coordinatorPublicKey) as BufferSource, { name: 'Ed25519' }, false, ['verify']);
  const receipts = await Promise.all(body.entries.map(async (e) => ({ ...e, verified: await verifyReceipt(e, key) })));
  return { credit: body.credit, receipts };
}
