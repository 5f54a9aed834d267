// What every part of the protocol shares: the version, size caps, ids, API errors and API tokens.
import { z } from 'zod';

export const PROTOCOL_VERSION = 2;

/** Size caps. Anything over them is refused before it is parsed. */
export const LIMITS = {
  /** Largest uploaded shard (.npy) in bytes. */
  maxShardBytes: 256 * 1024 * 1024,
  /** Largest JSON request body. */
  maxJsonBodyBytes: 64 * 1024,
  /** Largest WebSocket message (a result frame: header + payload). */
  maxWsMessageBytes: 64 * 1024 * 1024,
  /** Malformed messages after which a socket (the worker's, a page's signalling one) is closed. */
  maxBadMessages: 20,
  /** Largest JSON header inside a binary result frame. */
  maxFrameHeaderBytes: 4096,
  /** Largest matrix dimension a matmul job accepts. */
  maxDim: 1 << 16,
  maxReplication: 5,
  maxNameLength: 64,
} as const;

export const Sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'must be a sha-256 as 64 lowercase hex characters');

export const Id = z.string().min(1).max(80).regex(/^[A-Za-z0-9_.-]+$/, 'must be an id of letters, digits, _ . -');

export const Base64Url = z.string().max(200).regex(/^[A-Za-z0-9_-]+$/, 'must be base64url');

/**
 * Characters a name may not hold: control characters (C0, DEL, C1), bidirectional overrides and
 * isolates (which make a name read differently from what it is), zero-width characters and
 * line/paragraph separators.
 */
const UNSAFE_NAME_CHARS = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/;

/** A display name (volunteer, room, job, token): 1–64 characters of plain text, shown as text. */
export const Name = z
  .string()
  .trim()
  .min(1)
  .max(LIMITS.maxNameLength)
  .refine((s) => !UNSAFE_NAME_CHARS.test(s), 'must not contain control, bidirectional-override or invisible characters');

/** Documented error codes; every API error body is `{ error: { code, message } }`. */
export const ErrorCode = z.enum([
  'bad_request',
  'unauthorized',
  'forbidden',
  'rate_limited',
  'not_found',
  'payload_too_large',
  'unsupported_media_type',
  'not_ready',
  'conflict',
  'internal',
]);
export type ErrorCode = z.infer<typeof ErrorCode>;

export const ApiError = z.object({ error: z.object({ code: ErrorCode, message: z.string() }) });
export type ApiError = z.infer<typeof ApiError>;

/** One line naming every problem zod found, e.g. `inputs.a: must be a sha-256 …`. */
export function formatIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message))
    .join('; ');
}

export const TokenScope = z.enum(['submit', 'admin']);
export type TokenScope = z.infer<typeof TokenScope>;

export const TokenCreate = z
  .object({ scope: TokenScope, name: Name.optional() })
  .strict();
export type TokenCreate = z.infer<typeof TokenCreate>;

/** What the API shows of a token: never the secret, never its hash. */
export const TokenInfo = z.object({
  id: z.string(),
  scope: TokenScope,
  name: z.string().nullable(),
  createdAt: z.number(),
});
export type TokenInfo = z.infer<typeof TokenInfo>;
