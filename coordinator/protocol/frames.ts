// Binary result frames on the worker WebSocket: one result, or a batch of results under one
// signature, each a u32 little-endian header length, the JSON header, then the payload bytes.
import { z } from 'zod';
import { Base64Url, formatIssues, Id, LIMITS, Sha256Hex } from './common.js';

/** Header of a binary result frame; the payload is the raw little-endian float32 output. */
export const ResultHeader = z
  .object({
    type: z.literal('result'),
    leaseId: Id,
    wuId: Id,
    /** sha-256 of the payload bytes. */
    sha256: Sha256Hex,
    /** Ed25519 signature, base64url, over resultSigningMessage(wuId, sha256). */
    signature: Base64Url,
  })
  .strict();
export type ResultHeader = z.infer<typeof ResultHeader>;

export function resultSigningMessage(wuId: string, sha256: string): Uint8Array {
  return new TextEncoder().encode(`tabgrid-result\n${wuId}\n${sha256}`);
}

export class FrameError extends Error {
  override name = 'FrameError';
}

/** Binary frame: u32 little-endian header length, the JSON header, then the payload bytes. */
export function encodeResultFrame(header: ResultHeader, payload: Uint8Array): Uint8Array {
  return encodeBinaryFrame(header, [payload]);
}

/** u32 little-endian header length, the JSON header, then the payloads back to back. */
function encodeBinaryFrame(header: unknown, payloads: readonly Uint8Array[]): Uint8Array {
  const head = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(4 + head.length + payloads.reduce((n, p) => n + p.length, 0));
  new DataView(out.buffer).setUint32(0, head.length, true);
  out.set(head, 4);
  let at = 4 + head.length;
  for (const p of payloads) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export function decodeResultFrame(frame: Uint8Array): { header: ResultHeader; payload: Uint8Array } {
  const { json, payload } = splitBinaryFrame(frame, LIMITS.maxFrameHeaderBytes);
  return { header: parseResultHeader(json), payload };
}

function parseResultHeader(json: unknown): ResultHeader {
  const parsed = ResultHeader.safeParse(json);
  if (!parsed.success) throw new FrameError(`bad result header: ${formatIssues(parsed.error)}`);
  return parsed.data;
}

/** A binary frame's parsed (not yet validated) JSON header and the bytes after it. */
function splitBinaryFrame(frame: Uint8Array, maxHeaderBytes: number): { json: unknown; payload: Uint8Array } {
  if (frame.length < 4) throw new FrameError('binary frame shorter than its length prefix');
  const len = new DataView(frame.buffer, frame.byteOffset, frame.byteLength).getUint32(0, true);
  if (len > maxHeaderBytes || 4 + len > frame.length) {
    throw new FrameError('binary frame header is truncated or too large');
  }
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(frame.subarray(4, 4 + len)));
  } catch {
    throw new FrameError('binary frame header is not valid UTF-8 JSON');
  }
  return { json, payload: frame.subarray(4 + len) };
}

export const RESULT_BATCH_LIMITS = {
  /** Most results in one batched frame. */
  maxItems: 64,
  /** Largest JSON header of a batched frame (64 items with 80-character ids fit with room). */
  maxHeaderBytes: 24 * 1024,
} as const;

export const ResultBatchItem = z
  .object({
    leaseId: Id,
    wuId: Id,
    /** sha-256 of this item's payload bytes. */
    sha256: Sha256Hex,
    /** Length of this item's payload; the items' payloads follow the header in item order. */
    bytes: z.number().int().min(0).max(LIMITS.maxWsMessageBytes),
  })
  .strict();
export type ResultBatchItem = z.infer<typeof ResultBatchItem>;

export const ResultBatchHeader = z
  .object({
    type: z.literal('results'),
    items: z
      .array(ResultBatchItem)
      .min(1)
      .max(RESULT_BATCH_LIMITS.maxItems)
      .refine((items) => new Set(items.map((i) => i.leaseId)).size === items.length, 'each lease may appear once in a batch'),
    /** Ed25519 signature, base64url, over resultBatchSigningMessage(items). */
    signature: Base64Url,
  })
  .strict();
export type ResultBatchHeader = z.infer<typeof ResultBatchHeader>;

/**
 * What a batch signature covers: every (wuId, sha256) in order, under its own first line, so a
 * batch signature is never a valid single-result signature or the other way round. Ids contain no
 * spaces or newlines, so the text is unambiguous.
 */
export function resultBatchSigningMessage(items: readonly Pick<ResultBatchItem, 'wuId' | 'sha256'>[]): Uint8Array {
  return new TextEncoder().encode(`tabgrid-results-v1\n${items.map((i) => `${i.wuId} ${i.sha256}\n`).join('')}`);
}

/** Batched frame: u32 little-endian header length, the JSON header, then the payloads in item order. */
export function encodeResultBatchFrame(header: ResultBatchHeader, payloads: readonly Uint8Array[]): Uint8Array {
  return encodeBinaryFrame(header, payloads);
}

/** Any binary frame a worker may send: one result, or a batch split into its items' payloads. */
export type WorkerFrame =
  | { type: 'result'; header: ResultHeader; payload: Uint8Array }
  | { type: 'results'; header: ResultBatchHeader; payloads: Uint8Array[] };

export function decodeWorkerFrame(frame: Uint8Array): WorkerFrame {
  const { json, payload } = splitBinaryFrame(frame, RESULT_BATCH_LIMITS.maxHeaderBytes);
  if ((json as { type?: unknown } | null)?.type !== 'results') {
    if (frame.length - payload.length - 4 > LIMITS.maxFrameHeaderBytes) throw new FrameError('binary frame header is truncated or too large');
    return { type: 'result', header: parseResultHeader(json), payload };
  }
  const parsed = ResultBatchHeader.safeParse(json);
  if (!parsed.success) throw new FrameError(`bad results header: ${formatIssues(parsed.error)}`);
  const { items } = parsed.data;
  const total = items.reduce((n, i) => n + i.bytes, 0);
  if (total !== payload.length) {
    throw new FrameError(`the items' sizes add up to ${total} bytes but ${payload.length} payload bytes follow the header`);
  }
  const payloads: Uint8Array[] = [];
  let at = 0;
  for (const i of items) {
    payloads.push(payload.subarray(at, at + i.bytes));
    at += i.bytes;
  }
  return { type: 'results', header: parsed.data, payloads };
}
