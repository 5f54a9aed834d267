// A protocol fuzzer: malformed and mutated messages over the worker WebSocket and the HTTP API —
// wrong types, huge numbers, deep nesting, truncated or oversized binary frames, invalid UTF-8,
// protocol steps out of order, classroom rooms (bad names, codes, keys, demo sizes) and the swarm
// (claims of shards that do not exist, malformed holdings and reports). Every message is invalid by construction, so each must be answered
// with an error (an `error` message, a refused result, a close with a policy/size/UTF-8 code, or an
// HTTP 4xx `{error:{code,message}}`), and the coordinator's state must not change.
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import WebSocket from 'ws';
import {
  ApiError,
  encodeResultBatchFrame,
  encodeResultFrame,
  helloSigningMessage,
  LIMITS,
  PROTOCOL_VERSION,
  RESULT_BATCH_LIMITS,
  serverMessages,
  type ServerMessage,
  type ResultBatchHeader,
} from '../../protocol/index.js';
import { toNpy } from '../../protocol/npy.js';
import { rng } from '../../testing/helpers.js';
import { MAX_TEXT_BYTES } from '../../socket/worker-socket.js';

export interface FuzzTarget {
  base: string;
  /** An API token with admin scope (the fuzzer sends it with some requests, so auth passes and parsing is reached). */
  token: string;
  /** Known ids, so some messages aim at real things: job and work-unit ids, a shard sha-256. */
  jobId: string;
  wuId: string;
  shardSha: string;
  /** A real room's code (its teacher key is not given: every control must be refused). */
  roomCode: string;
}

export interface FuzzReport {
  sent: number;
  websocket: number;
  http: number;
  /** Answered with an error, as they must be. */
  answeredWithError: number;
  /** Answered with something that is not an error, or not answered at all: each one is a bug. */
  notRejected: number;
  unanswered: number;
  examples: string[];
  byKind: Record<string, number>;
}

type Rand = () => number;
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];

const HUGE = ['1e400', '-1e400', '1e308', '9007199254740993', '-0', '1.5', '"1"', 'null', 'true', '[]', '{}', '"\\u0000"'];

function deepNest(depth: number, open: string, close: string): string {
  return open.repeat(depth) + close.repeat(depth);
}

/** A text frame that is invalid at any protocol step (with a label for the report). */
function badText(r: Rand, t: FuzzTarget, postHello: boolean): [string, string] {
  const n = pick(r, HUGE);
  const kinds: [string, () => string][] = [
    ['not-json', () => pick(r, ['', '{', 'hello', '{"type":"ready","slots":1', '\u0000\u0001', '{"type":"ready"}}'])],
    ['not-object', () => pick(r, ['1', '"ready"', 'null', '[{"type":"ready","slots":1}]', 'true', n])],
    ['deep-nesting', () => (r() < 0.5 ? deepNest(1 + Math.floor(r() * 5000), '[', ']') : `{"type":"ready","slots":${deepNest(1 + Math.floor(r() * 2000), '{"a":', '}').replace(/\}$/, '1}')}}`)],
    ['ready-wrong-type', () => `{"type":"ready","slots":${pick(r, ['"2"', '1e400', '-1', '9', '2.5', 'null', '[1]', '{}', '9007199254740993'])}}`],
    ['ready-extra-key', () => `{"type":"ready","slots":1,"${pick(r, ['admin', '__proto__', 'constructor', 'x'.repeat(100)])}":${n}}`],
    ['unknown-type', () => `{"type":${pick(r, ['"result"', '"credit"', '"welcome"', '"READY"', '1', 'null', '"hello "'])}}`],
    ['hello-bad', () => `{"type":"hello","protocol":${pick(r, ['2', '0', '"1"', '1e400'])},"publicKey":"AAAA","signature":"AAAA","device":{"backend":"webgpu","adapter":"x"}}`],
    ['hello-bad-key', () => `{"type":"hello","protocol":${PROTOCOL_VERSION},"publicKey":"${pick(r, ['', 'A', 'A'.repeat(43), '!!!!', 'A'.repeat(201)])}","signature":"${'A'.repeat(86)}","device":{"backend":"cpu","adapter":"x"}}`],
    ['failure-bad', () => `{"type":"failure","leaseId":${pick(r, ['""', '"../x"', '1', 'null', `"${'l'.repeat(81)}"`])},"reason":"x"}`],
    ['failure-not-leased', () => `{"type":"failure","leaseId":"l_${Math.floor(r() * 1e9)}","reason":"x"}`],
    ['oversized-text', () => `{"type":"failure","leaseId":"l_1","reason":"${'x'.repeat(MAX_TEXT_BYTES + Math.floor(r() * 1000))}"}`],
  ];
  if (postHello) {
    kinds.push(['hello-again', () => `{"type":"hello","protocol":${PROTOCOL_VERSION},"publicKey":"${'A'.repeat(43)}","signature":"${'A'.repeat(86)}","device":{"backend":"cpu","adapter":"x"}}`]);
    kinds.push(...swarmAndRooms(r, t));
  } else kinds.push(['ready-before-hello', () => '{"type":"ready","slots":1}']);
  const [kind, make] = pick(r, kinds);
  return [kind, make()];
}

/** A sha-256 no shard has (64 hex digits from the fuzzer's own randomness). */
function madeUpSha(r: Rand): string {
  let out = '';
  while (out.length < 64) out += Math.floor(r() * 2 ** 32).toString(16).padStart(8, '0');
  return out;
}

/** Invalid swarm and room messages after hello: each must be answered with an error. */
function swarmAndRooms(r: Rand, t: FuzzTarget): [string, () => string][] {
  const shas = (n: number) => Array.from({ length: n }, () => madeUpSha(r));
  return [
    // Claims of shards that do not exist here (the tracker looks them up, within a budget, and refuses them).
    ['holdings-made-up', () => JSON.stringify({ type: 'holdings', add: shas(1 + Math.floor(r() * (r() < 0.2 ? 1024 : 16))), remove: [] })],
    ['holdings-too-many', () => JSON.stringify({ type: 'holdings', add: shas(1025 + Math.floor(r() * 10)), remove: [] })],
    ['holdings-bad', () => `{"type":"holdings","add":${pick(r, ['"x"', '[1]', '["nope"]', `["${t.shardSha.toUpperCase()}"]`, 'null', '{}'])}}`],
    ['join-room-unknown', () => `{"type":"join-room","code":"${pick(r, ['ZZZZZZ', 'AAAAAA', '222222'])}"}`],
    ['join-room-bad', () => `{"type":"join-room","code":${pick(r, ['""', '"ABC"', '"ABCDE0"', '1', 'null', `"${'A'.repeat(100)}"`, '"../x"'])}}`],
    ['status-bad', () => `{"type":"status","gflops":${pick(r, ['-1', '1e400', '"fast"', '1e10', '[]'])},"paused":false}`],
    ['peer-served-bad', () => `{"type":"peer-served","peerId":${pick(r, ['""', '"../x"', '1', `"${'p'.repeat(65)}"`])},"sha256":"${t.shardSha}"}`],
    ['bad-peer-bad', () => `{"type":"bad-peer","peerId":"tg-x","sha256":"${pick(r, ['x', t.shardSha.slice(1), ''])}","reason":"x"}`],
  ];
}

/** A binary frame that is invalid (malformed, or a result for a unit never leased). */
function badBinary(r: Rand, t: FuzzTarget): [string, Uint8Array] {
  const header = (h: unknown) => new TextEncoder().encode(JSON.stringify(h));
  const frame = (head: Uint8Array, payload: Uint8Array, declared = head.length) => {
    const out = new Uint8Array(4 + head.length + payload.length);
    new DataView(out.buffer).setUint32(0, declared, true);
    out.set(head, 4);
    out.set(payload, 4 + head.length);
    return out;
  };
  const good = { type: 'result' as const, leaseId: `l_${Math.floor(r() * 1e9)}`, wuId: t.wuId, sha256: '0'.repeat(64), signature: 'A'.repeat(86) };
  const payload = new Uint8Array(Math.floor(r() * 64) * 4);
  const kinds: [string, () => Uint8Array][] = [
    ['short-frame', () => new Uint8Array(Math.floor(r() * 4))],
    ['length-past-end', () => frame(header(good), new Uint8Array(0), 0xffffffff - Math.floor(r() * 100))],
    ['header-too-large', () => frame(new Uint8Array(LIMITS.maxFrameHeaderBytes + 1).fill(32), payload)],
    ['header-invalid-utf8', () => frame(Uint8Array.of(0x7b, 0xff, 0xfe, 0xc3, 0x28, 0x7d), payload)],
    ['header-not-json', () => frame(new TextEncoder().encode('{"type":"result",'), payload)],
    ['header-wrong-types', () => frame(header({ ...good, [pick(r, ['leaseId', 'wuId', 'sha256', 'signature', 'type'])]: pick(r, [1, null, [], {}, 1e308, 'x'.repeat(300)]) }), payload)],
    ['header-extra-key', () => frame(header({ ...good, credit: 1e9 }), payload)],
    ['result-not-leased', () => {
      const data = new Float32Array(payload.length / 4).map(() => r());
      return encodeResultFrame({ ...good, sha256: '1'.repeat(64) }, new Uint8Array(data.buffer));
    }],
    ...badBatches(r, good, payload),
  ];
  const [kind, make] = pick(r, kinds);
  return [kind, make()];
}

/** Malformed batched result frames (`results`), and one well-formed batch for a lease never given. */
function badBatches(r: Rand, good: { leaseId: string; wuId: string; sha256: string; signature: string }, payload: Uint8Array): [string, () => Uint8Array][] {
  const item = (i: number, bytes = 4) => ({ leaseId: `${good.leaseId}_${i}`, wuId: good.wuId, sha256: good.sha256, bytes });
  const items = (n: number) => Array.from({ length: n }, (_, i) => item(i));
  const batch = (h: unknown, body: Uint8Array = new Uint8Array(0)) => encodeResultBatchFrame(h as ResultBatchHeader, [body]);
  const header = { type: 'results' as const, items: items(1 + Math.floor(r() * 4)), signature: good.signature };
  const sized = (h: typeof header) => new Uint8Array(h.items.reduce((n, i) => n + i.bytes, 0));
  return [
    ['batch-sizes-mismatch', () => batch(header, new Uint8Array(Math.max(0, sized(header).length + pick(r, [-4, -1, 1, 4, 1000]))))],
    ['batch-no-items', () => batch({ ...header, items: [] })],
    ['batch-too-many-items', () => batch({ ...header, items: items(RESULT_BATCH_LIMITS.maxItems + 1 + Math.floor(r() * 10)) })],
    ['batch-lease-twice', () => batch({ ...header, items: [item(0), item(0)] }, new Uint8Array(8))],
    ['batch-wrong-types', () => batch({ ...header, items: [{ ...item(0), [pick(r, ['leaseId', 'wuId', 'sha256', 'bytes'])]: pick(r, [-1, 1.5, null, [], {}, 1e308, 'x'.repeat(300)]) }] }, new Uint8Array(4))],
    ['batch-extra-key', () => batch(r() < 0.5 ? { ...header, credit: 1e9 } : { ...header, items: [{ ...item(0), accepted: true }] }, sized(header))],
    ['batch-header-too-large', () => batch({ ...header, pad: 'x'.repeat(RESULT_BATCH_LIMITS.maxHeaderBytes) }, sized(header))],
    ['batch-not-leased', () => batch({ ...header, items: [item(0, payload.length)] }, payload)],
  ];
}

interface Answer {
  error: boolean;
  text: string;
}

/** One WebSocket: optionally completes hello with a fresh identity, then sends frames one by one. */
class FuzzSocket {
  private ws!: WebSocket;
  private waiting: ((a: Answer | null) => void) | null = null;
  closed: { code: number } | null = null;

  static async open(base: string, hello: boolean): Promise<FuzzSocket> {
    const s = new FuzzSocket();
    await s.start(base, hello);
    return s;
  }

  private start(base: string, hello: boolean): Promise<void> {
    this.ws = new WebSocket(base.replace(/^http/, 'ws') + '/ws');
    const key: KeyObject = generateKeyPairSync('ed25519').privateKey;
    return new Promise((resolve, reject) => {
      this.ws.on('error', () => undefined);
      this.ws.on('close', (code) => {
        this.closed = { code };
        this.deliver({ error: true, text: `close ${code}` });
        reject(new Error(`closed during handshake (${code})`));
      });
      this.ws.on('message', (data) => {
        for (const msg of serverMessages(JSON.parse(String(data)))) this.onServerMessage(msg, hello, resolve, key);
      });
    });
  }

  private onServerMessage(msg: ServerMessage, hello: boolean, resolve: () => void, key: KeyObject) {
    if (msg.type === 'challenge') {
      if (!hello) return resolve();
      this.ws.send(
        JSON.stringify({
          type: 'hello',
          protocol: PROTOCOL_VERSION,
          publicKey: String(key.export({ format: 'jwk' }).x),
          signature: sign(null, helloSigningMessage(msg.nonce), key).toString('base64url'),
          device: { backend: 'cpu', adapter: 'fuzzer' },
        }),
      );
      return;
    }
    if (msg.type === 'welcome') return resolve();
    const answer = msg.type === 'error' || (msg.type === 'result-ack' && !msg.accepted);
    this.deliver({ error: answer, text: JSON.stringify(msg).slice(0, 200) });
  }

  private deliver(a: Answer) {
    const w = this.waiting;
    this.waiting = null;
    w?.(a);
  }

  /** Sends one frame and waits for the answer to it. */
  send(data: string | Uint8Array, opts: { binary: boolean }, timeoutMs = 5000): Promise<Answer | null> {
    if (this.closed) return Promise.resolve({ error: true, text: `already closed ${this.closed.code}` });
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiting = null;
        resolve(null);
      }, timeoutMs);
      this.waiting = (a) => {
        clearTimeout(timer);
        resolve(a);
      };
      this.ws.send(data, { binary: opts.binary });
    });
  }

  close() {
    this.ws.close();
  }
}

/** An invalid HTTP request (method, path, headers, body), labelled. */
function badRequest(r: Rand, t: FuzzTarget): [string, string, RequestInit] {
  const auth = { authorization: `Bearer ${t.token}` };
  const json = { ...auth, 'content-type': 'application/json' };
  const valid = { kind: 'matmul', inputs: { a: t.shardSha, b: t.shardSha } };
  const npy = toNpy([2, 2], new Float32Array(4));
  const kinds: [string, () => [string, RequestInit]][] = [
    ['job-not-json', () => ['/api/jobs', { method: 'POST', headers: json, body: pick(r, ['{', '{"kind":', 'null', '1', '"x"', '[]']) }]],
    ['job-wrong-types', () => ['/api/jobs', { method: 'POST', headers: json, body: JSON.stringify({ ...valid, [pick(r, ['kind', 'inputs', 'replication', 'tile', 'tolerance', 'name'])]: pick(r, [1, 'x', null, [], {}, -1, 1e308, 'x'.repeat(100)]) }) }]],
    ['job-huge-numbers', () => ['/api/jobs', { method: 'POST', headers: json, body: `{"kind":"matmul","inputs":{"a":"${t.shardSha}","b":"${t.shardSha}"},"replication":${pick(r, HUGE)},"tile":{"rows":1e400,"cols":1}}` }]],
    ['job-deep-nesting', () => ['/api/jobs', { method: 'POST', headers: json, body: `{"kind":"matmul","inputs":${deepNest(1 + Math.floor(r() * 3000), '{"a":', '}').replace(/\}$/, '1}')}}` }]],
    ['job-extra-key', () => ['/api/jobs', { method: 'POST', headers: json, body: JSON.stringify({ ...valid, owner: 'admin' }) }]],
    ['job-invalid-utf8', () => ['/api/jobs', { method: 'POST', headers: json, body: Uint8Array.of(0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d) }]],
    ['job-oversized', () => ['/api/jobs', { method: 'POST', headers: json, body: `{"kind":"matmul","name":"${'x'.repeat(LIMITS.maxJsonBodyBytes + 10)}"}` }]],
    ['job-no-token', () => ['/api/jobs', { method: 'POST', headers: { 'content-type': 'application/json', ...(r() < 0.5 ? { authorization: `Bearer ${t.token}x` } : {}) }, body: JSON.stringify(valid) }]],
    ['job-wrong-media', () => ['/api/jobs', { method: 'POST', headers: { ...auth, 'content-type': pick(r, ['text/plain', 'application/xml', 'image/png']) }, body: 'x' }]],
    ['shard-truncated', () => ['/api/shards', { method: 'POST', headers: { ...auth, 'content-type': 'application/octet-stream' }, body: npy.slice(0, 1 + Math.floor(r() * (npy.length - 2))) }]],
    ['shard-garbage', () => ['/api/shards', { method: 'POST', headers: { ...auth, 'content-type': 'application/octet-stream' }, body: Uint8Array.from({ length: Math.floor(r() * 200) }, () => Math.floor(r() * 256)) }]],
    ['shard-padded', () => ['/api/shards', { method: 'POST', headers: { ...auth, 'content-type': 'application/octet-stream' }, body: Uint8Array.from([...npy, 1 + Math.floor(r() * 250)]) }]],
    ['bad-ids', () => [pick(r, [`/api/jobs/${encodeURIComponent('../../etc')}`, '/api/jobs/%00', `/shards/${'g'.repeat(64)}`, '/shards/abc', `/api/jobs/${t.jobId}x/result`, '/api/tokens/tk_none']), { method: pick(r, ['GET', 'DELETE']), headers: auth }]],
    ['token-create-bad', () => ['/api/tokens', { method: 'POST', headers: json, body: JSON.stringify({ scope: pick(r, ['root', '', 1, null]), name: 'x' }) }]],
    ['wrong-method', () => [pick(r, ['/api/jobs', '/api/shards', '/api/health', '/api/ledger']), { method: pick(r, ['PUT', 'PATCH', 'DELETE']), headers: auth }]],
    ...roomRequests(r, t),
  ];
  const [kind, make] = pick(r, kinds);
  const [path, init] = make();
  return [kind, path, init];
}

/** Invalid room requests: bad names and bodies, bad codes, controls and demos without the teacher key. */
function roomRequests(r: Rand, t: FuzzTarget): [string, () => [string, RequestInit]][] {
  const jsonOnly = { 'content-type': 'application/json' };
  const badName = () => pick<unknown>(r, ['', ' ', 'x'.repeat(65), 'a\u202Eb', 'tab\there', 'nul\u0000', 1, null, [], {}, 'zw\u200Bsp']);
  return [
    ['room-create-bad', () => ['/api/rooms', { method: 'POST', headers: jsonOnly, body: r() < 0.2 ? pick(r, ['{', 'null', '[]']) : JSON.stringify(r() < 0.2 ? { name: 'ok', [pick(r, ['code', 'teacherKey', 'paused'])]: 'x' } : { name: badName() }) }]],
    ['room-code-bad', () => [`/api/rooms/${encodeURIComponent(pick(r, ['ABC', 'ABCDE0', 'abcdefg', '../../x', '%00', 'O0O0O0']))}${pick(r, ['', '/snapshot', '/events'])}`, { method: 'GET' }]],
    [
      'room-control-bad',
      () => [
        `/api/rooms/${t.roomCode}/${pick(r, ['control', 'demo'])}`,
        { method: 'POST', headers: { ...jsonOnly, ...(r() < 0.7 ? { authorization: `Bearer tk_${madeUpSha(r).slice(0, 24)}` } : {}) }, body: JSON.stringify(pick<unknown>(r, [{ paused: true }, { size: 'large' }, { size: 'huge' }, { paused: 'yes' }])) },
      ],
    ],
  ];
}

export async function runFuzz(t: FuzzTarget, opts: { count: number; seed?: number; httpShare?: number }): Promise<FuzzReport> {
  const r = rng(opts.seed ?? 42);
  const report: FuzzReport = { sent: 0, websocket: 0, http: 0, answeredWithError: 0, notRejected: 0, unanswered: 0, examples: [], byKind: {} };
  const record = (kind: string, ok: boolean | null, detail: string) => {
    report.sent++;
    report.byKind[kind] = (report.byKind[kind] ?? 0) + 1;
    if (ok === true) report.answeredWithError++;
    else {
      if (ok === null) report.unanswered++;
      else report.notRejected++;
      if (report.examples.length < 10) report.examples.push(`${kind}: ${detail}`);
    }
  };
  let socket: FuzzSocket | null = null;
  let onSocket = 0;
  let postHello = false;
  for (let i = 0; i < opts.count; i++) {
    if (r() < (opts.httpShare ?? 0.3)) {
      const [kind, path, init] = badRequest(r, t);
      report.http++;
      try {
        const res = await fetch(t.base + path, init);
        const body: unknown = await res.json().catch(() => null);
        const ok = res.status >= 400 && res.status < 500 && ApiError.safeParse(body).success;
        record(`http:${kind}`, ok, `${init.method} ${path} -> ${res.status} ${JSON.stringify(body).slice(0, 120)}`);
      } catch (err) {
        record(`http:${kind}`, null, `request failed: ${(err as Error).message}`);
      }
      continue;
    }
    // A fresh connection every 15 messages (the coordinator closes one after 20 bad ones), half of
    // them past hello with their own new identity.
    if (!socket || socket.closed || onSocket >= 15) {
      socket?.close();
      postHello = r() < 0.5;
      socket = await FuzzSocket.open(t.base, postHello).catch(() => null);
      onSocket = 0;
      if (!socket) {
        record('ws:connect', null, 'could not connect');
        continue;
      }
    }
    onSocket++;
    report.websocket++;
    const roll = r();
    let kind: string;
    let answer: Answer | null;
    if (roll < 0.45) {
      const [k, text] = badText(r, t, postHello);
      kind = `ws:${k}`;
      answer = await socket.send(text, { binary: false });
    } else if (roll < 0.5) {
      kind = 'ws:text-invalid-utf8';
      answer = await socket.send(Uint8Array.of(0x7b, 0x22, 0xc3, 0x28, 0xa0, 0xa1, 0x22, 0x7d), { binary: false });
    } else {
      const [k, bytes] = badBinary(r, t);
      kind = `ws:${k}${postHello ? '' : ':before-hello'}`;
      answer = await socket.send(bytes, { binary: true });
    }
    record(kind, answer ? answer.error : null, answer?.text ?? 'no answer');
  }
  socket?.close();
  return report;
}
