// Access settings: who may open the worker WebSocket (the coordinator's public origins and the
// Origin allow-list, the Host it is reached by), how many connections and messages each address and
// identity get, how many HTTP requests per minute and failed authentications per address, and what
// a caller without a token may make the coordinator keep (rooms, demo jobs, identities). Read from the
// environment by the CLI (see README, "Trust and security"); tests pass them directly.
import { hostname, networkInterfaces } from 'node:os';

export interface SecurityOptions {
  /**
   * The coordinator's own public origins (TABGRID_PUBLIC_URL, scheme://host[:port]); empty: the
   * listening address (every interface's address when it listens on all of them).
   */
  publicUrls: string[];
  /** Other origins (scheme://host[:port]) allowed to open /ws and to frame the page; '*' allows any. */
  allowedOrigins: string[];
  /** Refuse WebSocket clients that send no Origin header (Node and other non-browser clients send none). */
  requireOrigin: boolean;
  /** HTTP API requests per minute per API token, or per address without one. */
  rateLimitPerMinute: number;
  /** Failed authentications (wrong API token or teacher key) an address may make per minute before it is locked out. */
  authFailuresPerMinute: number;
  /** How long such an address is locked out (doubling with each lockout in a row, up to a day). */
  authLockoutMs: number;
  /** Open TCP connections from one address (HTTP, WebSockets); absent: 4 × wsMaxPerAddress. */
  connectionsPerAddress?: number;
  /** A connection that neither sends nor receives anything for this long is closed (a WebSocket's own heartbeat keeps it). */
  connectionIdleMs: number;
  /** Concurrent worker WebSockets from one address. */
  wsMaxPerAddress: number;
  /** Concurrent worker WebSockets of one volunteer identity. */
  wsMaxPerIdentity: number;
  /** Sustained WebSocket messages per second per connection, and the burst above it. */
  wsMessagesPerSecond: number;
  wsMessageBurst: number;
  /** Creating a room needs an API token (else anyone may: a teacher needs no account). */
  roomsRequireToken: boolean;
  /** Live rooms one address may have made (tokenless creation only). */
  roomsPerAddress: number;
  /** Live rooms in all. */
  roomsMax: number;
  /** A room nobody joined, controlled or computed in for this long is removed. */
  roomIdleMs: number;
  /** Members one room may have. */
  roomMaxMembers: number;
  /** Demo jobs queued or running at once, over every room. */
  demoMaxActive: number;
  /** An identity that never did anything (no result, no credit) is forgotten once unseen this long. */
  identityIdleMs: number;
  /** Stored identities without credit beyond which a hello from an unknown identity is refused ('busy'). */
  identitiesMaxUnproven: number;
}

/**
 * Room codes that name no room an address may send in a minute (looking a room up, joining it)
 * before it is refused every room for a while: a join code is the room's secret (31^6 of them), and
 * a class that mistypes its code now and then stays far below this.
 */
export const ROOM_CODE_MISSES_PER_MINUTE = 30;

/** What an address locked out of rooms is told (`ms`: how long it still is). */
export function roomLockoutMessage(ms: number): string {
  return `too many room codes that name no room from this address: try again in ${Math.max(1, Math.ceil(ms / 1000))} s`;
}

export const DEFAULT_SECURITY: SecurityOptions = {
  publicUrls: [],
  allowedOrigins: [],
  requireOrigin: false,
  rateLimitPerMinute: 6000,
  authFailuresPerMinute: 10,
  authLockoutMs: 15 * 60_000,
  connectionIdleMs: 120_000,
  wsMaxPerAddress: 64,
  wsMaxPerIdentity: 4,
  wsMessagesPerSecond: 200,
  wsMessageBurst: 400,
  roomsRequireToken: false,
  roomsPerAddress: 5,
  roomsMax: 1000,
  roomIdleMs: 24 * 60 * 60_000,
  roomMaxMembers: 500,
  demoMaxActive: 4,
  identityIdleMs: 60 * 60_000,
  identitiesMaxUnproven: 50_000,
};

/** An environment variable that must hold a positive integer when set (`fallback` when unset or empty). */
export function positiveInt<T extends number | undefined>(name: string, value: string | undefined, fallback: T): number | T {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got ${value}`);
  return n;
}

function flag(value: string | undefined): boolean {
  return value === '1' || value === 'true';
}

/**
 * An origin as the browser sends it — `http://` or `https://`, a host, an optional port, nothing
 * after — normalised (lower case, default port dropped); throws naming `what` otherwise.
 */
export function parseOrigin(text: string, what: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error(`${what}: '${text}' is not an origin such as https://grid.example.org`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`${what}: '${text}' must start with http:// or https://`);
  if (url.username || url.password || url.search || url.hash || (url.pathname !== '/' && url.pathname !== '')) {
    throw new Error(`${what}: '${text}' must be scheme://host[:port] with nothing after it`);
  }
  return url.origin;
}

function origins(list: string | undefined, what: string, allowAny: boolean): string[] {
  return (list ?? '')
    .split(',')
    .map((o) => o.trim())
    .filter(Boolean)
    .map((o) => (allowAny && o === '*' ? '*' : parseOrigin(o.replace(/\/$/, ''), what)));
}

/** Settings from TABGRID_* environment variables (documented in README). */
export function securityFromEnv(env: NodeJS.ProcessEnv): SecurityOptions {
  const d = DEFAULT_SECURITY;
  return {
    publicUrls: origins(env.TABGRID_PUBLIC_URL, 'TABGRID_PUBLIC_URL', false),
    allowedOrigins: origins(env.TABGRID_ALLOWED_ORIGINS, 'TABGRID_ALLOWED_ORIGINS', true),
    requireOrigin: flag(env.TABGRID_REQUIRE_ORIGIN),
    rateLimitPerMinute: positiveInt('TABGRID_RATE_LIMIT', env.TABGRID_RATE_LIMIT, d.rateLimitPerMinute),
    authFailuresPerMinute: positiveInt('TABGRID_AUTH_FAILURES_PER_MINUTE', env.TABGRID_AUTH_FAILURES_PER_MINUTE, d.authFailuresPerMinute),
    authLockoutMs: positiveInt('TABGRID_AUTH_LOCKOUT_MS', env.TABGRID_AUTH_LOCKOUT_MS, d.authLockoutMs),
    connectionsPerAddress: positiveInt('TABGRID_CONNECTIONS_PER_ADDRESS', env.TABGRID_CONNECTIONS_PER_ADDRESS, undefined),
    connectionIdleMs: positiveInt('TABGRID_CONNECTION_IDLE_MS', env.TABGRID_CONNECTION_IDLE_MS, d.connectionIdleMs),
    wsMaxPerAddress: positiveInt('TABGRID_WS_MAX_PER_ADDRESS', env.TABGRID_WS_MAX_PER_ADDRESS, d.wsMaxPerAddress),
    wsMaxPerIdentity: positiveInt('TABGRID_WS_MAX_PER_IDENTITY', env.TABGRID_WS_MAX_PER_IDENTITY, d.wsMaxPerIdentity),
    wsMessagesPerSecond: positiveInt('TABGRID_WS_MESSAGES_PER_SECOND', env.TABGRID_WS_MESSAGES_PER_SECOND, d.wsMessagesPerSecond),
    wsMessageBurst: positiveInt('TABGRID_WS_MESSAGE_BURST', env.TABGRID_WS_MESSAGE_BURST, d.wsMessageBurst),
    roomsRequireToken: flag(env.TABGRID_ROOMS_REQUIRE_TOKEN),
    roomsPerAddress: positiveInt('TABGRID_ROOMS_PER_ADDRESS', env.TABGRID_ROOMS_PER_ADDRESS, d.roomsPerAddress),
    roomsMax: positiveInt('TABGRID_ROOMS_MAX', env.TABGRID_ROOMS_MAX, d.roomsMax),
    roomIdleMs: positiveInt('TABGRID_ROOM_IDLE_MS', env.TABGRID_ROOM_IDLE_MS, d.roomIdleMs),
    roomMaxMembers: positiveInt('TABGRID_ROOM_MAX_MEMBERS', env.TABGRID_ROOM_MAX_MEMBERS, d.roomMaxMembers),
    demoMaxActive: positiveInt('TABGRID_DEMO_MAX_ACTIVE', env.TABGRID_DEMO_MAX_ACTIVE, d.demoMaxActive),
    identityIdleMs: positiveInt('TABGRID_IDENTITY_IDLE_MS', env.TABGRID_IDENTITY_IDLE_MS, d.identityIdleMs),
    identitiesMaxUnproven: positiveInt('TABGRID_IDENTITIES_MAX_UNPROVEN', env.TABGRID_IDENTITIES_MAX_UNPROVEN, d.identitiesMaxUnproven),
  };
}

/** Open TCP connections one address may hold: the setting, else room for each worker WebSocket's page and then some. */
export function connectionsPerAddress(opts: Pick<SecurityOptions, 'connectionsPerAddress' | 'wsMaxPerAddress'>): number {
  return opts.connectionsPerAddress ?? 4 * opts.wsMaxPerAddress;
}

/** `host[:port]` as a URL writes it (an IPv6 address in brackets, the scheme's default port dropped). */
function hostOf(scheme: 'http:' | 'https:', hostnameOrIp: string, port: number): string {
  const h = hostnameOrIp.includes(':') && !hostnameOrIp.startsWith('[') ? `[${hostnameOrIp}]` : hostnameOrIp;
  return new URL(`${scheme}//${h}:${port}`).host;
}

/**
 * The origins the coordinator is reached at when nobody configured one: every name of the address
 * it listens on, over http. On all interfaces (0.0.0.0, ::) that is localhost, the loopback
 * addresses, each interface's address and the machine's host name.
 */
export function listeningOrigins(listenHost: string, port: number): string[] {
  const names = new Set<string>();
  const all = listenHost === '0.0.0.0' || listenHost === '::' || listenHost === '';
  if (all) {
    names.add('localhost').add('127.0.0.1').add('::1').add(hostname().toLowerCase());
    for (const list of Object.values(networkInterfaces())) {
      for (const i of list ?? []) if (!i.address.includes('%')) names.add(i.address);
    }
  } else {
    names.add(listenHost.toLowerCase());
    if (listenHost === '127.0.0.1' || listenHost === '::1' || listenHost === 'localhost') names.add('localhost').add('127.0.0.1');
  }
  const out: string[] = [];
  for (const name of names) {
    try {
      out.push(`http://${hostOf('http:', name, port)}`);
    } catch {
      // a name URL cannot hold: not a way to reach us
    }
  }
  return out;
}

/** Who may open a WebSocket (worker /ws, PeerJS /peerjs), decided from its Origin and Host headers. */
export class OriginPolicy {
  /** Origins a browser page may open the WebSocket from: our own and the allowed ones. */
  readonly origins: ReadonlySet<string>;
  /** Hosts a request may name in its Host header: our public ones and the listening address's. */
  readonly hosts: ReadonlySet<string>;
  private readonly any: boolean;
  private readonly requireOrigin: boolean;

  constructor(
    opts: Pick<SecurityOptions, 'publicUrls' | 'allowedOrigins' | 'requireOrigin'>,
    /** The listening address's origins (listeningOrigins). */
    listening: string[],
  ) {
    const own = opts.publicUrls.length ? opts.publicUrls.map((u) => parseOrigin(u, 'public URL')) : listening;
    this.any = opts.allowedOrigins.includes('*');
    this.origins = new Set([...own, ...opts.allowedOrigins.filter((o) => o !== '*').map((o) => parseOrigin(o, 'allowed origin'))]);
    this.hosts = new Set([...own, ...listening].map((o) => new URL(o).host));
    this.requireOrigin = opts.requireOrigin;
  }

  /** Null when allowed, else why not. */
  check(origin: string | undefined, host: string | undefined): string | null {
    let h: string | null = null;
    try {
      h = host ? new URL(`http://${host}`).host : null;
    } catch {
      h = null;
    }
    if (!h || !this.hosts.has(h)) return `host ${host ?? '(none)'} is not this coordinator's (see TABGRID_PUBLIC_URL)`;
    if (origin === undefined) return this.requireOrigin ? 'a browser Origin is required (TABGRID_REQUIRE_ORIGIN)' : null;
    if (this.any) return null;
    let o: string;
    try {
      o = parseOrigin(origin, 'Origin');
    } catch {
      return `origin ${origin} may not connect (see TABGRID_PUBLIC_URL and TABGRID_ALLOWED_ORIGINS)`;
    }
    return this.origins.has(o) ? null : `origin ${origin} may not connect (see TABGRID_PUBLIC_URL and TABGRID_ALLOWED_ORIGINS)`;
  }
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
