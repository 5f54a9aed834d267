// HTTP from a chosen loopback address (127.0.0.0/8 all reaches this machine): tests and tools that
// play an attacker from one address check the coordinator from another, so the attacker's lockout
// or rate limit does not lock the checker out too.
import http from 'node:http';

export interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export interface RequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Uint8Array;
  /** The local (source) address; default 127.0.0.1 (::1 for a base on [::1]). */
  from?: string;
  timeoutMs?: number;
}

/** One request to `base` + `path`; the raw answer (never throws for an HTTP error status). */
export function request(base: string, path: string, opts: RequestOptions = {}): Promise<Answer> {
  const url = new URL(base);
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1'); // an IPv6 address without its URL brackets
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host, port: url.port, path, method: opts.method ?? 'GET', headers: opts.headers, localAddress: opts.from ?? (host.includes(':') ? '::1' : '127.0.0.1'), agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.setTimeout(opts.timeoutMs ?? 30_000, () => req.destroy(new Error(`no answer to ${path} in ${opts.timeoutMs ?? 30_000} ms`)));
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** A JSON POST body (and bearer token) as `request` options. */
export function postJson(body: unknown, token?: string, from?: string): RequestOptions {
  return {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
    from,
  };
}
