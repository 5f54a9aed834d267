// One HTTP call to the coordinator, with the client's retries: on 429 (waiting as Retry-After says)
// and on connections that fail, where sending the request again cannot do it twice.
import type { z } from 'zod';
import { ApiError, errorFrom, GridConnectionError } from './errors.js';

export interface Call {
  method: 'GET' | 'HEAD' | 'POST' | 'DELETE';
  path: string;
  json?: unknown;
  body?: Uint8Array;
  /** Statuses that are answers rather than errors. */
  ok?: number[];
  /**
   * Whether the call may be sent again after the connection broke while it was in flight: true for
   * reads and content-addressed uploads; false for a job submission, which could otherwise run twice.
   */
  replaySafe?: boolean;
  /** A bearer secret other than the client's token (a room's teacher key); null: none. */
  token?: string | null;
  signal?: AbortSignal;
}

export interface HttpOptions {
  /** The fetch to use (default: the global one). */
  fetch?: typeof fetch;
  /** How often a call is retried on 429 or a failed connection (default 5). */
  retries?: number;
  /** The client's name in User-Agent (Node; browsers send their own). */
  userAgent?: string;
}

/** Error codes of connections that never opened: the request cannot have arrived, so it is always safe to retry. */
const NOT_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT']);

function causeCode(err: unknown): string | undefined {
  let e: unknown = err;
  for (let depth = 0; e && depth < 4; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** Retry-After in seconds: a number, or an HTTP date; null when absent or unreadable. */
export function parseRetryAfter(value: string | null): number | null {
  if (!value) return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds);
  const when = Date.parse(value);
  return Number.isNaN(when) ? null : Math.max(0, (when - Date.now()) / 1000);
}

export const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(done, ms);
    function done() {
      signal?.removeEventListener('abort', abort);
      resolve();
    }
    function abort() {
      clearTimeout(timer);
      reject(signal!.reason);
    }
    signal?.addEventListener('abort', abort, { once: true });
  });

const backoff = (attempt: number) => Math.min(250 * 2 ** attempt, 5000);

export class Http {
  readonly retries: number;
  private readonly fetch: typeof fetch;

  constructor(
    /** The coordinator's base URL without a trailing slash ('' for the page's own origin). */
    readonly url: string,
    readonly token: string | null,
    private readonly options: HttpOptions = {},
  ) {
    this.retries = options.retries ?? 5;
    this.fetch = options.fetch ?? ((...args) => globalThis.fetch(...args));
  }

  /** Sends the call (again, as the retry rules allow) and returns the answer; an error answer throws its ApiError. */
  async request(call: Call): Promise<Response> {
    const headers: Record<string, string> = {};
    const secret = call.token === undefined ? this.token : call.token;
    if (secret) headers.authorization = `Bearer ${secret}`;
    if (this.options.userAgent && typeof window === 'undefined') headers['user-agent'] = this.options.userAgent;
    let body: BodyInit | undefined;
    if (call.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(call.json);
    } else if (call.body) {
      headers['content-type'] = 'application/octet-stream';
      body = call.body as Uint8Array<ArrayBuffer>;
    }
    const ok = call.ok ?? [200, 201];
    const replaySafe = call.replaySafe ?? true;
    for (let attempt = 0; ; attempt++) {
      let res: Response;
      try {
        res = await this.fetch(this.url + call.path, { method: call.method, headers, body, signal: call.signal });
      } catch (err) {
        if (call.signal?.aborted) throw err;
        const notSent = NOT_SENT.has(causeCode(err) ?? '');
        if ((notSent || replaySafe) && attempt < this.retries) {
          await sleep(backoff(attempt), call.signal);
          continue;
        }
        const hint = replaySafe || notSent ? '' : '; the job may or may not have been submitted (grid.jobs() lists them)';
        const why = causeCode(err) ?? ((err as Error).cause as Error | undefined)?.message ?? (err as Error).message;
        throw new GridConnectionError(`${call.method} ${this.url}${call.path} failed: ${why}${hint}`, { cause: err });
      }
      if (ok.includes(res.status)) return res;
      const text = call.method === 'HEAD' ? '' : await res.text().catch(() => '');
      if (res.status === 429) {
        const wait = parseRetryAfter(res.headers.get('retry-after'));
        if (attempt < this.retries) {
          await sleep(wait !== null ? wait * 1000 : backoff(attempt), call.signal);
          continue;
        }
        throw errorFrom(429, text, wait);
      }
      throw errorFrom(res.status, text);
    }
  }

  /** A JSON answer, checked against the protocol's schema. */
  async json<S extends z.ZodType>(schema: S, call: Call): Promise<z.infer<S>> {
    const res = await this.request(call);
    const text = await res.text();
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw new ApiError('invalid_response', `${call.method} ${call.path} answered ${res.status} with a body that is not JSON: ${text.slice(0, 120)}`, res.status);
    }
    const parsed = schema.safeParse(value);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new ApiError(
        'invalid_response',
        `${call.method} ${call.path}: the answer does not match the protocol (${issue.path.join('.') || 'body'}: ${issue.message}); is the coordinator another version?`,
        res.status,
      );
    }
    return parsed.data;
  }

  /** A binary answer's bytes. */
  async bytes(call: Call): Promise<Uint8Array> {
    return new Uint8Array(await (await this.request(call)).arrayBuffer());
  }
}
