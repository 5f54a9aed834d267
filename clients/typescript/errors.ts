// Errors: every error answer of the coordinator's API becomes an ApiError (or one of its
// subclasses) carrying the API's `code`, `message` and HTTP `status`. Problems found before anything
// is sent are InputErrors; a coordinator that cannot be reached is a GridConnectionError.
import { ApiError as ApiErrorBody } from '../../coordinator/protocol/common.js';

/** An error answer from the coordinator: `{ "error": { "code", "message" } }`. */
export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    /** The API's error code (`bad_request`, `not_found`, …), or `http_<status>` for an answer that is not the API's. */
    readonly code: string,
    message: string,
    readonly status: number,
  ) {
    super(message);
  }

  override toString(): string {
    return `${this.name}: ${this.message} (HTTP ${this.status} ${this.code})`;
  }
}

/** 400 `bad_request`: a malformed job, wrong shapes or dtypes, an unknown shard, a model that cannot run. The message says what is wrong. */
export class BadRequest extends ApiError {
  override name = 'BadRequest';
}

/** 401 `unauthorized`: a missing or wrong API token (or teacher key). */
export class Unauthorized extends ApiError {
  override name = 'Unauthorized';
}

/** 403 `forbidden`: the token's scope does not allow the call. */
export class Forbidden extends ApiError {
  override name = 'Forbidden';
}

/** 404 `not_found`: no such job, shard, output, room or route. */
export class NotFound extends ApiError {
  override name = 'NotFound';
}

/** 409 `not_ready`: a result asked for before the job is done, or after it failed. */
export class NotReady extends ApiError {
  override name = 'NotReady';
}

/** A failed or cancelled job has no result: `jobId` names it, the message says why. */
export class JobFailed extends NotReady {
  override name = 'JobFailed';
  constructor(
    code: string,
    message: string,
    status: number,
    readonly jobId: string,
  ) {
    super(code, message, status);
  }
}

/** 409 `conflict`: e.g. cancelling a job that is already done or failed. */
export class Conflict extends ApiError {
  override name = 'Conflict';
}

/** 413 `payload_too_large`: an upload over the coordinator's limit. */
export class PayloadTooLarge extends ApiError {
  override name = 'PayloadTooLarge';
}

/** 429 `rate_limited`, still so after the client's own retries; `retryAfter` is the wait asked for, in seconds. */
export class RateLimited extends ApiError {
  override name = 'RateLimited';
  constructor(
    code: string,
    message: string,
    status: number,
    readonly retryAfter: number | null,
  ) {
    super(code, message, status);
  }
}

/** A 5xx answer: the coordinator failed (`internal`), or a proxy in front of it did. */
export class ServerError extends ApiError {
  override name = 'ServerError';
}

/** An input the client refuses before sending anything: not a float32 .npy, a shape that does not fit its data, … */
export class InputError extends Error {
  override name = 'InputError';
}

/** The coordinator could not be reached (after the client's retries), or the connection broke. */
export class GridConnectionError extends Error {
  override name = 'GridConnectionError';
}

/** `job.wait({ timeout })` ran out before the job finished. */
export class WaitTimeout extends Error {
  override name = 'WaitTimeout';
  constructor(
    message: string,
    readonly jobId: string,
  ) {
    super(message);
  }
}

const BY_CODE: Record<string, typeof ApiError> = {
  bad_request: BadRequest,
  unauthorized: Unauthorized,
  forbidden: Forbidden,
  not_found: NotFound,
  not_ready: NotReady,
  conflict: Conflict,
  payload_too_large: PayloadTooLarge,
};

const BY_STATUS: Record<number, typeof ApiError> = { 400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict, 413: PayloadTooLarge };

/** The error for an answer of `status` with `body` (any body: a proxy's HTML page becomes `http_<status>`). */
export function errorFrom(status: number, body: string, retryAfter: number | null = null): ApiError {
  let code = `http_${status}`;
  let message = body.slice(0, 300).trim() || `HTTP ${status}`;
  try {
    const parsed = ApiErrorBody.safeParse(JSON.parse(body));
    if (parsed.success) ({ code, message } = parsed.data.error);
  } catch {
    // not JSON: keep the text
  }
  if (status === 429 || code === 'rate_limited') return new RateLimited(code, message, status, retryAfter);
  if (status >= 500) return new ServerError(code, message, status);
  const Class = (Object.hasOwn(BY_CODE, code) ? BY_CODE[code] : undefined) ?? BY_STATUS[status] ?? ApiError;
  return new Class(code, message, status);
}
