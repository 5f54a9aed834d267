// API errors: every error body is `{ error: { code, message } }` with a documented code
// (protocol ErrorCode), and a submission a job kind cannot run is a 400 wherever it is thrown.
import type { FastifyError, FastifyReply } from 'fastify';
import { JobInputError } from '../jobs/types.js';
import { formatIssues, type ErrorCode } from '../protocol/index.js';

export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
    /** Extra response headers (e.g. Retry-After). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** The documented code of an HTTP client-error status (a 403 is `forbidden`, never `bad_request`). */
export function codeOfStatus(status: number): ErrorCode {
  const codes: Record<number, ErrorCode> = {
    401: 'unauthorized',
    403: 'forbidden',
    404: 'not_found',
    409: 'conflict',
    413: 'payload_too_large',
    415: 'unsupported_media_type',
    429: 'rate_limited',
  };
  return codes[status] ?? (status >= 500 ? 'internal' : 'bad_request');
}

export function sendError(reply: FastifyReply, status: number, code: ErrorCode, message: string) {
  return reply.code(status).type('application/json').send({ error: { code, message } });
}

/** The app's error handler: known failures get their code, anything else is logged and answered 500. */
export function errorHandler(log: (msg: string) => void) {
  return (err: FastifyError | ApiFailure | JobInputError, _req: unknown, reply: FastifyReply) => {
    if (err instanceof ApiFailure) return sendError(reply.headers(err.headers), err.status, err.code, err.message);
    if (err instanceof JobInputError) return sendError(reply, 400, 'bad_request', err.message);
    const { code, statusCode } = err as FastifyError;
    if (code === 'FST_ERR_CTP_BODY_TOO_LARGE') return sendError(reply, 413, 'payload_too_large', 'request body is too large');
    if (code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return sendError(reply, 415, 'unsupported_media_type', err.message);
    if (statusCode && statusCode >= 400 && statusCode < 500) return sendError(reply, statusCode, codeOfStatus(statusCode), err.message);
    log(`internal error: ${err.stack ?? err.message}`);
    return sendError(reply, 500, 'internal', 'internal error');
  };
}

type Schema<T> = { safeParse(v: unknown): { success: true; data: T } | { success: false; error: import('zod').ZodError } };

/** `value` parsed by `schema`, or a 400 that names what is wrong. */
export function parseOr400<T>(schema: Schema<T>, value: unknown): T {
  const r = schema.safeParse(value);
  if (!r.success) throw new ApiFailure(400, 'bad_request', formatIssues(r.error));
  return r.data;
}

/** A `?limit=` query parameter: an integer in [1, max], `fallback` when absent or unreadable. */
export function limitParam(raw: string | undefined, fallback = 100, max = 1000): number {
  return Math.min(max, Math.max(1, Number.parseInt(raw ?? String(fallback), 10) || fallback));
}
