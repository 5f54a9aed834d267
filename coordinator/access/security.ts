// Access settings: who may open the worker WebSocket (Origin allow-list), how many connections and
// messages each address and identity get, and how many HTTP requests per minute. Read from the
// environment by the CLI (see README, "Trust and security"); tests pass them directly.

export interface SecurityOptions {
  /** Origins (scheme://host[:port]) allowed to open /ws and to frame the page; '*' allows any. Same-origin is always allowed. */
  allowedOrigins: string[];
  /** Refuse WebSocket clients that send no Origin header (Node and other non-browser clients send none). */
  requireOrigin: boolean;
  /** HTTP API requests per minute per API token, or per address without one. */
  rateLimitPerMinute: number;
  /** Concurrent worker WebSockets from one address. */
  wsMaxPerAddress: number;
  /** Concurrent worker WebSockets of one volunteer identity. */
  wsMaxPerIdentity: number;
  /** Sustained WebSocket messages per second per connection, and the burst above it. */
  wsMessagesPerSecond: number;
  wsMessageBurst: number;
}

export const DEFAULT_SECURITY: SecurityOptions = {
  allowedOrigins: [],
  requireOrigin: false,
  rateLimitPerMinute: 6000,
  wsMaxPerAddress: 64,
  wsMaxPerIdentity: 4,
  wsMessagesPerSecond: 200,
  wsMessageBurst: 400,
};

function positiveInt(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got ${value}`);
  return n;
}

/** Settings from TABGRID_* environment variables (documented in README). */
export function securityFromEnv(env: NodeJS.ProcessEnv): SecurityOptions {
  const d = DEFAULT_SECURITY;
  return {
    allowedOrigins: (env.TABGRID_ALLOWED_ORIGINS ?? '')
      .split(',')
      .map((o) => o.trim())
      .filter(Boolean),
    requireOrigin: env.TABGRID_REQUIRE_ORIGIN === '1' || env.TABGRID_REQUIRE_ORIGIN === 'true',
    rateLimitPerMinute: positiveInt('TABGRID_RATE_LIMIT', env.TABGRID_RATE_LIMIT, d.rateLimitPerMinute),
    wsMaxPerAddress: positiveInt('TABGRID_WS_MAX_PER_ADDRESS', env.TABGRID_WS_MAX_PER_ADDRESS, d.wsMaxPerAddress),
    wsMaxPerIdentity: positiveInt('TABGRID_WS_MAX_PER_IDENTITY', env.TABGRID_WS_MAX_PER_IDENTITY, d.wsMaxPerIdentity),
    wsMessagesPerSecond: positiveInt('TABGRID_WS_MESSAGES_PER_SECOND', env.TABGRID_WS_MESSAGES_PER_SECOND, d.wsMessagesPerSecond),
    wsMessageBurst: positiveInt('TABGRID_WS_MESSAGE_BURST', env.TABGRID_WS_MESSAGE_BURST, d.wsMessageBurst),
  };
}

/**
 * May a WebSocket with this Origin connect to a server reached as `host`? Same-origin always;
 * listed origins (or '*'); no Origin at all (a non-browser client) unless requireOrigin.
 */
export function originAllowed(origin: string | undefined, host: string | undefined, opts: Pick<SecurityOptions, 'allowedOrigins' | 'requireOrigin'>): boolean {
  if (origin === undefined) return !opts.requireOrigin;
  if (opts.allowedOrigins.includes('*')) return true;
  let parsed: URL;
  try {
    parsed = new URL(origin);
  } catch {
    return false;
  }
  if (host !== undefined && parsed.host === host) return true;
  return opts.allowedOrigins.includes(parsed.origin);
}

/**
 * Response headers for every HTTP answer. The CSP lets the page run its own module scripts and
 * workers, compile WebAssembly ('wasm-unsafe-eval', for onnxruntime-web; WebGPU needs nothing
 * special), connect to its own origin (HTTP, WebSocket, PeerJS), and be framed only by itself and
 * the allowed origins (the embeddable widget).
 */
export function securityHeaders(opts: Pick<SecurityOptions, 'allowedOrigins'>): Record<string, string> {
  const ancestors = opts.allowedOrigins.includes('*') ? '*' : ["'self'", ...opts.allowedOrigins].join(' ');
  const csp = [
    "default-src 'self'",
    "script-src 'self' 'wasm-unsafe-eval'",
    "worker-src 'self' blob:",
    "connect-src 'self'",
    "img-src 'self' data: blob:",
    "style-src 'self' 'unsafe-inline'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    `frame-ancestors ${ancestors}`,
  ].join('; ');
  return {
    'content-security-policy': csp,
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'cross-origin-opener-policy': 'same-origin',
    // Not camera/microphone: a context's media permission is what lets WebRTC see loopback candidates in tests.
    'permissions-policy': 'geolocation=(), payment=(), usb=()',
  };
}
