// The attacks: what an outsider tried against `npm start` (issue 20) and what already held, each a
// function that attacks a running coordinator over its real endpoints and says whether the
// coordinator held, with the figure that shows it. Each attack comes from a loopback address of its
// own, so one attack's lockout or rate limit does not spoil the next; the suite checks from CHECKER.
import { generateKeyPairSync, sign } from 'node:crypto';
import net from 'node:net';
import WebSocket from 'ws';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { connectionsPerAddress, DEFAULT_SECURITY } from '../../access/security.js';
import { DEMO_STORAGE_BYTES } from '../../jobs/demo.js';
import { ApiError, helloSigningMessage, LIMITS, P2P_LIMITS, PROTOCOL_VERSION, type JobStatus, type RoomCreated, type RoomSnapshot } from '../../protocol/index.js';
import { toNpy } from '../../protocol/npy.js';
import { MAX_BYTES_BEFORE_HELLO } from '../../socket/worker-socket.js';
import { randomMatrix, sleep } from '../../testing/helpers.js';
import { postJson, request, type Answer } from '../../testing/loopback-http.js';
import { CHECKER, cleanEnv, spawnCoordinator, type CoordinatorProcess } from './coordinator-process.js';
import { handshakeStatus, openSocket, type AttackSocket } from './ws-client.js';

export interface AttackResult {
  held: boolean;
  figure: Record<string, unknown>;
}

export interface AttackContext {
  c: CoordinatorProcess;
  /** The loopback address this attack comes from. */
  from: string;
  /** The reduced run (npm test): shorter floods, no exhaustive loops. */
  reduced: boolean;
}

export type Attack = (ctx: AttackContext) => Promise<AttackResult>;

const MiB = 1024 * 1024;
const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;
const errorCode = (a: Answer): string | null => {
  try {
    return ApiError.parse(JSON.parse(a.body)).error.code;
  } catch {
    return null;
  }
};

/** The admin's view, from the checker's address. */
function admin(c: CoordinatorProcess, path: string, init: { method?: string; body?: unknown } = {}) {
  return request(c.base, path, {
    method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
    headers: { authorization: `Bearer ${c.token}`, ...(init.body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
    from: CHECKER,
  });
}

async function uploadShard(c: CoordinatorProcess, bytes: Uint8Array, token = c.token): Promise<Answer> {
  return request(c.base, '/api/shards', { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' }, body: bytes, from: CHECKER });
}

function dirBytes(dir: string): number {
  let n = 0;
  for (const name of readdirSync(dir, { recursive: true }) as string[]) {
    try {
      const st = statSync(join(dir, name));
      if (st.isFile()) n += st.size;
    } catch {
      // a temporary file that went away
    }
  }
  return n;
}

/** A hand-made .npy with any header text. */
function npy(header: string, payloadBytes: number): Uint8Array {
  const text = header + ' '.repeat((64 - ((10 + header.length + 1) % 64)) % 64) + '\n';
  const out = new Uint8Array(10 + text.length + payloadBytes);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  new DataView(out.buffer).setUint16(8, text.length, true);
  out.set(new TextEncoder().encode(text), 10);
  return out;
}

// --- The five holes -----------------------------------------------------------------------------

/** Hole 1: rooms and demo jobs without a token, from several addresses, as fast as allowed. */
const tokenlessStorage: Attack = async ({ c, from }) => {
  const before = dirBytes(c.dataDir);
  const prefix = from.split('.').slice(0, 3).join('.');
  const base = Number(from.split('.')[3]);
  let roomsCreated = 0;
  let roomsRefused = 0;
  let demosStarted = 0;
  let demosRefused = 0;
  for (let a = 0; a < 4; a++) {
    const address = `${prefix}.${base + a}`;
    for (let i = 0; i < 12; i++) {
      const made = await request(c.base, '/api/rooms', postJson({ name: `room ${a}.${i}` }, undefined, address));
      if (made.status !== 201) {
        roomsRefused++;
        continue;
      }
      roomsCreated++;
      const room = JSON.parse(made.body) as RoomCreated;
      for (let d = 0; d < 2; d++) {
        const demo = await request(c.base, `/api/rooms/${room.code}/demo`, postJson({ size: 'large' }, room.teacherKey, address));
        if (demo.status === 201) demosStarted++;
        else demosRefused++;
      }
    }
  }
  const stored = dirBytes(c.dataDir) - before;
  const jobs = (JSON.parse((await admin(c, '/api/jobs')).body) as { jobs: JobStatus[] }).jobs;
  const unitsQueued = jobs.filter((j) => j.state === 'queued' || j.state === 'running').reduce((n, j) => n + j.progress.total - j.progress.done, 0);
  // What may grow: each demo size's inputs and tiles once, and the rooms' and jobs' rows (the WAL).
  const bound = DEMO_STORAGE_BYTES + 2 * MiB;
  return {
    held: stored <= bound && demosStarted <= DEFAULT_SECURITY.demoMaxActive && roomsCreated <= 4 * DEFAULT_SECURITY.roomsPerAddress,
    figure: {
      bytesStored: stored,
      mibStored: round(stored / MiB, 2),
      boundMiB: round(bound / MiB, 2),
      roomsCreated,
      roomsRefused,
      demosStarted,
      demosRefused,
      unitsQueued,
      addresses: 4,
    },
  };
};

/** Hole 2: guessing the API token from one address. */
const failedAuth: Attack = async ({ c, from, reduced }) => {
  const attempts = reduced ? 40 : 300;
  const started = Date.now();
  const statuses: number[] = [];
  let retryAfter: string | undefined;
  for (let i = 0; i < attempts; i++) {
    const res = await request(c.base, '/api/jobs', { headers: { authorization: `Bearer tg_guess_${i}_${'x'.repeat(24)}` }, from });
    statuses.push(res.status);
    if (res.status === 429) retryAfter ??= String(res.headers['retry-after']);
  }
  const seconds = (Date.now() - started) / 1000;
  const allowed = statuses.filter((s) => s === 401).length;
  const right = await request(c.base, '/api/jobs', { headers: { authorization: `Bearer ${c.token}` }, from });
  const elsewhere = await request(c.base, '/api/jobs', { headers: { authorization: `Bearer ${c.token}` }, from: CHECKER });
  return {
    held: allowed <= DEFAULT_SECURITY.authFailuresPerMinute && right.status === 429 && elsewhere.status === 200 && Number(retryAfter) > 0,
    figure: {
      attempts,
      seconds: round(seconds, 2),
      failedLoginsAllowedPerMinute: allowed,
      refused429: statuses.filter((s) => s === 429).length,
      lockedOutForS: Number(retryAfter),
      rightTokenFromThatAddress: right.status,
      rightTokenFromAnotherAddress: elsewhere.status,
    },
  };
};

/** Hole 2b: a weak TABGRID_API_TOKEN; and a fresh start with none makes a strong one. */
const weakToken: Attack = async ({ reduced }) => {
  const { makeTempDir, removeDir } = await import('../../testing/helpers.js');
  const { tokenStrengthBits } = await import('../../access/keys.js');
  const run = async (env: Record<string, string>, untilListening: boolean) => {
    const dir = makeTempDir('tabgrid-attacks-token-');
    const proc = spawnCoordinator(['--port', '0', '--host', '127.0.0.1', '--data', dir], cleanEnv(env));
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((done) => {
      const timer = setTimeout(() => {
        proc.kill('SIGKILL');
        done(null);
      }, 90_000);
      proc.on('exit', (c) => {
        clearTimeout(timer);
        done(c);
      });
      if (untilListening) {
        proc.stdout!.on('data', () => {
          if (/API token:\s+\S+/.test(out)) proc.kill('SIGTERM');
        });
      }
    });
    removeDir(dir);
    return { code, out };
  };
  const weak = await run({ TABGRID_API_TOKEN: 'hunter2-password' }, false);
  const message = /too weak[^\n]*/.exec(weak.out)?.[0] ?? weak.out.slice(0, 200);
  let generatedBits: number | null = null;
  if (!reduced) {
    const fresh = await run({}, true);
    const token = /API token:\s+(\S+)/.exec(fresh.out)?.[1];
    generatedBits = token ? tokenStrengthBits(token) : null;
  }
  return {
    held: weak.code !== 0 && weak.code !== null && /128/.test(message) && (generatedBits === null || generatedBits >= 128),
    figure: { exitCode: weak.code, message, ...(generatedBits !== null ? { generatedTokenBits: generatedBits } : {}) },
  };
};

/** Hole 3: shard-holding claims from many identities as fast as the message limit allows. */
const holdingsFlood: Attack = async ({ c, from, reduced }) => {
  // A few real shards, so some claims are of shards that exist.
  const real: string[] = [];
  for (let i = 0; i < 8; i++) real.push((JSON.parse((await uploadShard(c, toNpy([2, 2], randomMatrix(2, 2, 100 + i)))).body) as { sha256: string }).sha256);
  await sleep(500);
  const rssBefore = c.rssMiB();
  let rssPeak = rssBefore;
  const seconds = reduced ? 4 : 15;
  const connections = reduced ? 4 : 8;
  const perSecond = reduced ? 40 : 150; // per connection, under its 200/s budget
  let claimsSent = 0;
  let sessions = 0;
  let closedForBadMessages = 0;
  let healthMsMax = 0;
  const until = Date.now() + seconds * 1000;
  let counter = 0;
  const madeUp = () => Array.from({ length: P2P_LIMITS.maxHoldingsPerMessage }, () => (counter++).toString(16).padStart(64, 'e'));
  const open: AttackSocket[] = [];
  const flooder = async () => {
    while (Date.now() < until) {
      let s: AttackSocket;
      try {
        s = await openSocket(c.base, { from, hello: true });
      } catch {
        await sleep(100);
        continue;
      }
      sessions++;
      open.push(s);
      s.send(JSON.stringify({ type: 'peer-ready' }));
      s.send(JSON.stringify({ type: 'holdings', add: real, remove: [] }));
      while (Date.now() < until && s.closeCode === null) {
        s.send(JSON.stringify({ type: 'holdings', add: madeUp(), remove: [] }));
        claimsSent += P2P_LIMITS.maxHoldingsPerMessage;
        await sleep(1000 / perSecond);
      }
      if (s.closeCode === 1008) closedForBadMessages++;
    }
  };
  const watcher = async () => {
    while (Date.now() < until) {
      const t0 = performance.now();
      await request(c.base, '/api/health', { from: CHECKER, timeoutMs: 10_000 }).catch(() => null);
      healthMsMax = Math.max(healthMsMax, performance.now() - t0);
      rssPeak = Math.max(rssPeak, c.rssMiB());
      await sleep(250);
    }
  };
  await Promise.all([...Array.from({ length: connections }, flooder), watcher()]);
  await sleep(500);
  // What the tracker keeps while the flooders are still connected.
  const peers = (JSON.parse((await admin(c, '/api/p2p')).body) as { peers: { shards: number }[] }).peers;
  const claimsRecorded = peers.reduce((n, p) => n + p.shards, 0);
  const rssConnected = c.rssMiB();
  for (const s of open) s.close();
  await sleep(500);
  const rssAfter = c.rssMiB();
  return {
    held: Math.max(rssConnected, rssAfter) - rssBefore < 64 && claimsRecorded <= real.length * connections,
    figure: {
      seconds,
      connectionsAtOnce: connections,
      sessions,
      claimsSent,
      claimsRecorded,
      closedForBadMessages,
      rssBeforeMB: round(rssBefore),
      rssPeakMB: round(Math.max(rssPeak, rssConnected)),
      rssAfterMB: round(rssAfter),
      healthMsMax: round(healthMsMax),
    },
  };
};

/** Hole 4a: an https Origin at an http coordinator. */
const originScheme: Attack = async ({ c, from }) => {
  const https = await handshakeStatus(c.base, from, { origin: `https://127.0.0.1:${c.port}` });
  const http = await handshakeStatus(c.base, from, { origin: `http://127.0.0.1:${c.port}` });
  return { held: https.status === 403 && http.status === 101, figure: { httpsOrigin: https.status, httpOrigin: http.status } };
};

/** Hole 4b: a DNS-rebinding page (its own name, our address): foreign Host and Origin. */
const dnsRebinding: Attack = async ({ c, from }) => {
  const both = await handshakeStatus(c.base, from, { host: `evil.example:${c.port}`, origin: `http://evil.example:${c.port}` });
  const hostOnly = await handshakeStatus(c.base, from, { host: `evil.example:${c.port}` });
  return { held: both.status === 403 && hostOnly.status === 403, figure: { rebindingPage: both.status, foreignHostNoOrigin: hostOnly.status } };
};

/** Hole 5: one submit token lists and cancels another's job. */
const jobOwnership: Attack = async ({ c, from }) => {
  const token = async () => (JSON.parse((await admin(c, '/api/tokens', { body: { scope: 'submit', name: 'attack' } })).body) as { token: string }).token;
  const [alice, mallory] = [await token(), await token()];
  const a = (JSON.parse((await uploadShard(c, toNpy([4, 4], randomMatrix(4, 4, 5)), alice)).body) as { sha256: string }).sha256;
  const submitted = await request(c.base, '/api/jobs', postJson({ kind: 'matmul', inputs: { a, b: a }, name: 'alice' }, alice, CHECKER));
  const { id } = JSON.parse(submitted.body) as { id: string };
  const as = (t: string, path: string, method = 'GET') => request(c.base, path, { method, headers: { authorization: `Bearer ${t}` }, from });
  const listed = (JSON.parse((await as(mallory, '/api/jobs')).body) as { jobs: JobStatus[] }).jobs.map((j) => j.id);
  const read = await as(mallory, `/api/jobs/${id}`);
  const cancel = await as(mallory, `/api/jobs/${id}/cancel`, 'POST');
  const state = (JSON.parse((await as(alice, `/api/jobs/${id}`)).body) as JobStatus).state;
  const adminSees = (JSON.parse((await admin(c, '/api/jobs')).body) as { jobs: JobStatus[] }).jobs.some((j) => j.id === id);
  await as(alice, `/api/jobs/${id}/cancel`, 'POST');
  return {
    held: !listed.includes(id) && read.status === 404 && cancel.status === 404 && state === 'queued' && adminSees,
    figure: { othersJobsListed: listed.length, readOthersJob: read.status, cancelOthersJob: cancel.status, jobStateAfter: state, adminSeesIt: adminSees },
  };
};

// --- The weak points ----------------------------------------------------------------------------

/** The public room list and the joinable codes. */
const roomCodesListed: Attack = async ({ c, from }) => {
  const room = JSON.parse((await request(c.base, '/api/rooms', postJson({ name: 'codes' }, undefined, from))).body) as RoomCreated;
  const list = await request(c.base, '/api/rooms', { from });
  const rooms = (JSON.parse(list.body) as { rooms: Record<string, unknown>[] }).rooms;
  return {
    held: !list.body.includes(room.code) && rooms.every((r) => !('code' in r)),
    figure: { roomsListed: rooms.length, codesListed: rooms.filter((r) => 'code' in r).length },
  };
};

/** A joined page claims 1e9 GFLOP/s and an H100 farm. */
const boardSpeedForged: Attack = async ({ c, from }) => {
  const room = JSON.parse((await request(c.base, '/api/rooms', postJson({ name: 'board' }, undefined, from))).body) as RoomCreated;
  const s = await openSocket(c.base, { from, hello: true, name: 'NVIDIA H100 x 1000', adapter: 'NVIDIA H100 x 1000 '.repeat(10) });
  s.send(JSON.stringify({ type: 'join-room', code: room.code }));
  for (let i = 0; i < 100 && !s.messages.some((m) => m.type === 'room'); i++) await sleep(20);
  s.send(JSON.stringify({ type: 'status', gflops: 1e9, paused: false }));
  await sleep(300);
  const snap = JSON.parse((await request(c.base, `/api/rooms/${room.code}/snapshot`, { from: CHECKER })).body) as RoomSnapshot;
  s.close();
  const device = snap.memberList[0]?.device ?? '';
  return {
    held: snap.gflops < 1 && snap.memberList.length === 1 && device.length <= 80,
    figure: { claimedGflops: 1e9, boardGflops: snap.gflops, deviceChars: device.length },
  };
};

/** Room names: over-long, and with a right-to-left override. */
const roomNames: Attack = async ({ c, from }) => {
  const long = await request(c.base, '/api/rooms', postJson({ name: 'x'.repeat(LIMITS.maxNameLength + 1) }, undefined, from));
  const bidi = await request(c.base, '/api/rooms', postJson({ name: 'Physics\u202Etxt.exe' }, undefined, from));
  return { held: long.status === 400 && bidi.status === 400, figure: { tooLong: long.status, bidiOverride: bidi.status } };
};

/** Big text frames before hello, from several connections at once. */
const framesBeforeHello: Attack = async ({ c, from, reduced }) => {
  const rssBefore = c.rssMiB();
  const size = (reduced ? 8 : 64) * MiB;
  const frame = 'x'.repeat(size);
  const t0 = performance.now();
  const codes = await Promise.all(
    Array.from({ length: 4 }, async () => {
      const s = await openSocket(c.base, { from });
      s.send(frame);
      return Promise.race([s.closed, sleep(30_000).then(() => -1)]);
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const rssAfter = c.rssMiB();
  // Closed with 1009 (or reset while the attacker was still sending: 1006), long before it was read.
  return {
    held: codes.every((code) => code === 1009 || code === 1006) && seconds < 10 && rssAfter - rssBefore < 32,
    figure: { frameMiB: size / MiB, connections: 4, closeCodes: codes, capBytes: MAX_BYTES_BEFORE_HELLO, seconds: round(seconds, 2), rssBeforeMB: round(rssBefore), rssAfterMB: round(rssAfter) },
  };
};

/** Every 403 the coordinator gives says `forbidden`. */
const forbiddenCode: Attack = async ({ c, from }) => {
  const answers: { what: string; status: number; code: string | null }[] = [];
  const origin = await handshakeStatus(c.base, from, { origin: 'https://evil.example' });
  answers.push({ what: 'foreign origin', status: origin.status, code: errorCode({ status: origin.status, headers: {}, body: origin.body }) });
  const submit = (JSON.parse((await admin(c, '/api/tokens', { body: { scope: 'submit' } })).body) as { token: string }).token;
  const scope = await request(c.base, '/api/tokens', { headers: { authorization: `Bearer ${submit}` }, from });
  answers.push({ what: 'submit token managing tokens', status: scope.status, code: errorCode(scope) });
  for (const path of ['/assets/../../package.json', '/%00']) {
    const res = await request(c.base, path, { from });
    answers.push({ what: path, status: res.status, code: errorCode(res) });
  }
  const forbidden = answers.filter((a) => a.status === 403);
  return {
    held: forbidden.length >= 2 && forbidden.every((a) => a.code === 'forbidden'),
    figure: { answers403: forbidden.length, codes: [...new Set(forbidden.map((a) => a.code))] },
  };
};

/** /peerjs under the per-address rate limit (the reduced run only checks that the limiter answers it). */
const peerjsRateLimit: Attack = async ({ c, from, reduced }) => {
  const first = await request(c.base, '/peerjs/peerjs/id', { from });
  const limit = Number(first.headers['x-ratelimit-limit']);
  if (reduced) return { held: first.status === 200 && limit === DEFAULT_SECURITY.rateLimitPerMinute, figure: { rateLimitHeader: limit } };
  let sent = 1;
  let firstRefused: number | null = null;
  const t0 = performance.now();
  const worker = async () => {
    while (firstRefused === null && sent < limit + 100) {
      sent++;
      const res = await request(c.base, '/peerjs/peerjs/id', { from });
      if (res.status === 429 && firstRefused === null) firstRefused = sent;
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  return {
    held: firstRefused !== null && firstRefused <= limit + 20,
    figure: { limitPerMinute: limit, requestsUntil429: firstRefused, seconds: round((performance.now() - t0) / 1000, 2) },
  };
};

/** An .npy header NumPy reads differently (duplicate keys) or does not read (unknown keys). */
const npyDuplicateKeys: Attack = async ({ c }) => {
  const twice = await uploadShard(c, npy("{'descr': '<f4', 'shape': (4, 4), 'fortran_order': False, 'descr': '<f8', 'shape': (2, 4), }", 64));
  const unknown = await uploadShard(c, npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4, 4), 'extra': 1, }", 64));
  return { held: twice.status === 400 && unknown.status === 400, figure: { duplicateKeys: twice.status, unknownKey: unknown.status } };
};

// --- What already held ----------------------------------------------------------------------------

const noToken: Attack = async ({ c, from }) => {
  const paths: [string, string][] = [
    ['POST', '/api/jobs'],
    ['POST', '/api/shards'],
    ['GET', '/api/jobs'],
    ['GET', '/api/stats'],
    ['GET', '/api/p2p'],
    ['GET', '/api/tokens'],
  ];
  const statuses = await Promise.all(paths.map(([method, path]) => request(c.base, path, { method, from, headers: { 'content-type': 'application/json' }, body: method === 'POST' ? '{}' : undefined }).then((r) => r.status)));
  return { held: statuses.every((s) => s === 401), figure: { statuses } };
};

const badBodies: Attack = async ({ c }) => {
  const cases = [
    { body: '{', want: 400 },
    { body: JSON.stringify({ kind: 'matmul', inputs: { a: 'x', b: 'y' } }), want: 400 },
    { body: JSON.stringify({ kind: 'matmul', name: 'x'.repeat(LIMITS.maxJsonBodyBytes) }), want: 413 },
    { body: `{"kind":"matmul","inputs":${'{"a":'.repeat(3000)}1${'}'.repeat(3000)}}`, want: 400 },
  ];
  const got = [];
  for (const k of cases) {
    const res = await request(c.base, '/api/jobs', { method: 'POST', headers: { authorization: `Bearer ${c.token}`, 'content-type': 'application/json' }, body: k.body, from: CHECKER });
    got.push({ status: res.status, code: errorCode(res) });
  }
  return { held: got.every((g, i) => g.status === cases[i].want && g.code !== null), figure: { statuses: got.map((g) => g.status) } };
};

const pathTraversal: Attack = async ({ c, from }) => {
  const paths = ['/shards/..%2F..%2F..%2Fetc%2Fpasswd', `/shards/${'../'.repeat(8)}etc/passwd`, `/shards/${'g'.repeat(64)}`, '/api/jobs/..%2F..%2Fetc%2Fpasswd', '/%2e%2e/%2e%2e/etc/passwd'];
  const got = await Promise.all(paths.map((p) => request(c.base, p, { from, headers: { authorization: `Bearer ${c.token}` } })));
  return { held: got.every((r) => r.status >= 400 && !r.body.includes('root:')), figure: { statuses: got.map((r) => r.status) } };
};

const forgedHello: Attack = async ({ c, from }) => {
  const s = await openSocket(c.base, { from });
  const challenge = await (async () => {
    for (let i = 0; i < 100; i++) {
      const m = s.messages.find((x) => x.type === 'challenge');
      if (m?.type === 'challenge') return m;
      await sleep(10);
    }
    return null;
  })();
  const victim = generateKeyPairSync('ed25519').privateKey;
  const me = generateKeyPairSync('ed25519').privateKey;
  s.send(
    JSON.stringify({
      type: 'hello',
      protocol: PROTOCOL_VERSION,
      publicKey: String(victim.export({ format: 'jwk' }).x),
      signature: sign(null, helloSigningMessage(challenge?.nonce ?? 'x'), me).toString('base64url'),
      device: { backend: 'cpu', adapter: 'x' },
    }),
  );
  await sleep(300);
  s.close();
  const refused = s.messages.some((m) => m.type === 'error' && m.code === 'bad_identity');
  return { held: refused && !s.messages.some((m) => m.type === 'welcome'), figure: { refusedAs: refused ? 'bad_identity' : null } };
};

const wsMessageFlood: Attack = async ({ c, from }) => {
  const s = await openSocket(c.base, { from, hello: true });
  for (let i = 0; i < 3000 && s.closeCode === null; i++) s.send('{"type":"ready","slots":0}');
  const code = await Promise.race([s.closed, sleep(10_000).then(() => null)]);
  s.close();
  return { held: code === 1008 && s.messages.some((m) => m.type === 'error' && m.code === 'rate_limited'), figure: { closeCode: code } };
};

const securityHeaders: Attack = async ({ c, from }) => {
  const names = ['content-security-policy', 'x-content-type-options', 'referrer-policy', 'cross-origin-opener-policy', 'permissions-policy'];
  const answers = await Promise.all(['/api/health', '/nowhere', '/api/jobs'].map((p) => request(c.base, p, { from })));
  const missing = answers.flatMap((a) => names.filter((n) => !a.headers[n]));
  return { held: missing.length === 0, figure: { checked: answers.length * names.length, missing } };
};

const lyingNpyHeader: Attack = async ({ c }) => {
  const lie = await uploadShard(c, npy("{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000), }", 16));
  return { held: lie.status === 400, figure: { status: lie.status } };
};

const connectionCap: Attack = async ({ c, from }) => {
  const sockets: AttackSocket[] = [];
  let refused = 0;
  for (let i = 0; i < DEFAULT_SECURITY.wsMaxPerAddress + 6; i++) {
    try {
      sockets.push(await openSocket(c.base, { from, hello: true }));
    } catch {
      refused++;
    }
  }
  for (const s of sockets) s.close();
  return { held: sockets.length === DEFAULT_SECURITY.wsMaxPerAddress && refused === 6, figure: { admitted: sockets.length, refused } };
};

/**
 * A fresh identity's PeerJS socket sends text that is not JSON, then a frame that is not UTF-8:
 * each once ended the process (an uncaught exception). Held when the coordinator still answers.
 */
const peerjsBadFrames: Attack = async ({ c, from }) => {
  const session = await openSocket(c.base, { from, hello: true });
  const welcome = session.messages.find((m) => m.type === 'welcome');
  const p2p = welcome?.type === 'welcome' ? welcome.p2p : undefined;
  if (!p2p) throw new Error('no peer id in welcome');
  const { peerId, token } = p2p;
  /** How each socket ended: its close code, or 'open' when it was still open a second later. */
  const closes: (number | 'open')[] = [];
  for (const bad of ['not json', Buffer.from([0xff, 0xfe, 0xfd])]) {
    const ws = new WebSocket(`${c.base.replace(/^http/, 'ws')}/peerjs/peerjs?key=peerjs&id=${peerId}&token=${token}`, { localAddress: from });
    ws.on('error', () => undefined);
    const closed = new Promise<number>((r) => ws.once('close', r));
    // Signed in (OPEN), or gone: a coordinator that died takes the socket with it.
    await Promise.race([new Promise((opened) => ws.once('message', opened)), closed, sleep(3000)]);
    if (ws.readyState === ws.OPEN) ws.send(bad, { binary: false });
    closes.push(await Promise.race([closed, sleep(1000).then(() => (ws.terminate(), 'open' as const))]));
  }
  session.close();
  const health = await request(c.base, '/api/health', { from: CHECKER, timeoutMs: 5000 }).then((r) => r.status, () => 0);
  return { held: health === 200, figure: { closeCodes: closes, health } };
};

/** Connections that send nothing from one address: at most TABGRID_CONNECTIONS_PER_ADDRESS stay open, the rest are answered 429. */
const silentConnections: Attack = async ({ c, from }) => {
  const max = connectionsPerAddress(DEFAULT_SECURITY);
  const port = Number(new URL(c.base).port);
  const sockets = Array.from({ length: max + 20 }, () => {
    const s = { socket: net.connect({ port, host: '127.0.0.1', localAddress: from }), read: '', closed: false };
    s.socket.on('data', (d) => (s.read += String(d)));
    s.socket.on('close', () => (s.closed = true));
    s.socket.on('error', () => undefined);
    return s;
  });
  await sleep(1000);
  const open = sockets.filter((s) => !s.closed).length;
  const refused429 = sockets.filter((s) => s.closed && s.read.startsWith('HTTP/1.1 429')).length;
  for (const s of sockets) s.socket.destroy();
  return { held: open === max && refused429 === 20, figure: { open, refused429 } };
};

/** kill -9 in the middle of it all: how soon the coordinator answers again on the same data. */
const kill9Recovery: Attack = async ({ c }) => {
  const seconds = await c.killAndRestart();
  const health = await request(c.base, '/api/health', { from: CHECKER });
  return { held: health.status === 200 && seconds < 30, figure: { secondsUntilHealthy: round(seconds, 2) } };
};

/** Every attack in the order the suite runs them; `full` ones only outside the reduced run. */
export const ATTACKS: { name: string; run: Attack; full?: boolean }[] = [
  { name: 'tokenless-rooms-and-demos', run: tokenlessStorage },
  { name: 'failed-logins', run: failedAuth },
  { name: 'weak-api-token', run: weakToken },
  { name: 'holdings-flood', run: holdingsFlood },
  { name: 'origin-scheme', run: originScheme },
  { name: 'dns-rebinding', run: dnsRebinding },
  { name: 'others-jobs', run: jobOwnership },
  { name: 'room-codes-listed', run: roomCodesListed },
  { name: 'board-speed-forged', run: boardSpeedForged },
  { name: 'room-names', run: roomNames },
  { name: 'frames-before-hello', run: framesBeforeHello },
  { name: 'forbidden-code', run: forbiddenCode },
  { name: 'peerjs-rate-limit', run: peerjsRateLimit },
  { name: 'npy-duplicate-keys', run: npyDuplicateKeys },
  { name: 'no-token', run: noToken },
  { name: 'bad-bodies', run: badBodies },
  { name: 'path-traversal', run: pathTraversal },
  { name: 'forged-hello', run: forgedHello },
  { name: 'ws-message-flood', run: wsMessageFlood },
  { name: 'security-headers', run: securityHeaders },
  { name: 'lying-npy-header', run: lyingNpyHeader },
  { name: 'peerjs-bad-frames', run: peerjsBadFrames },
  { name: 'silent-connections', run: silentConnections },
  { name: 'connection-cap', run: connectionCap, full: true },
  { name: 'kill-9-recovery', run: kill9Recovery, full: true },
];
