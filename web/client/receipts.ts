// A volunteer's receipts: its own ledger entries from the coordinator, each checked here in the
// browser with WebCrypto — the hash must cover the entry's fields, the audit path must lead to its
// seal's Merkle root and the coordinator's Ed25519 signature must verify over the seal — so a
// receipt shown as verified is one the coordinator cannot later deny.
import { receiptProblem, type ReceiptCrypto } from '../../coordinator/protocol/receipt-check';
import { fromBase64Url, Receipts, type LedgerEntry, type LedgerReceipt } from '../../coordinator/protocol';

export interface CheckedReceipt extends LedgerEntry {
  verified: boolean;
}

function webCrypto(coordinatorKey: CryptoKey): ReceiptCrypto {
  return {
    sha256: async (data) => new Uint8Array(await crypto.subtle.digest('SHA-256', data as BufferSource)),
    verify: async (message, signature) => {
      try {
        return await crypto.subtle.verify({ name: 'Ed25519' }, coordinatorKey, fromBase64Url(signature) as BufferSource, message as BufferSource);
      } catch {
        return false;
      }
    },
  };
}

export async function verifyReceipt(receipt: LedgerReceipt, coordinatorKey: CryptoKey): Promise<boolean> {
  return (await receiptProblem(receipt, webCrypto(coordinatorKey))) === null;
}

export async function fetchReceipts(base: string, volunteerId: string, limit = 20): Promise<{ credit: number; receipts: CheckedReceipt[] }> {
  const res = await fetch(`${base}/api/volunteers/${encodeURIComponent(volunteerId)}/receipts?limit=${limit}`);
  if (!res.ok) throw new Error(`receipts: HTTP ${res.status}`);
  const body = Receipts.parse(await res.json());
  const key = await crypto.subtle.importKey('raw', fromBase64Url(body.coordinatorPublicKey) as BufferSource, { name: 'Ed25519' }, false, ['verify']);
  const receipts = await Promise.all(body.receipts.map(async (r) => ({ ...r.entry, verified: await verifyReceipt(r, key) })));
  return { credit: body.credit, receipts };
}
