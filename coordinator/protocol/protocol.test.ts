import { generateKeyPairSync, randomBytes, sign, verify } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import {
  ClientMessage,
  decodeResultFrame,
  decodeWorkerFrame,
  encodeResultBatchFrame,
  encodeResultFrame,
  FrameError,
  fromBase64Url,
  helloSigningMessage,
  JobSubmit,
  LIMITS,
  PROTOCOL_VERSION,
  RESULT_BATCH_LIMITS,
  resultBatchSigningMessage,
  ResultHeader,
  resultSigningMessage,
  ServerMessage,
  serverMessages,
  encodeServerFrame,
  MAX_BATCH_MESSAGES,
  type ResultBatchHeader,
  type ResultBatchItem,
  toBase64Url,
} from './index.js';

const SHA = 'a'.repeat(64);
const SHA2 = '0123456789abcdef'.repeat(4);

const goodJob = { kind: 'matmul', inputs: { a: SHA, b: SHA2 } };

const { privateKey } = generateKeyPairSync('ed25519');
const publicKey = String(privateKey.export({ format: 'jwk' }).x);
const goodHello = {
  type: 'hello',
  protocol: PROTOCOL_VERSION,
  publicKey,
  signature: sign(null, helloSigningMessage('nonce'), privateKey).toString('base64url'),
  name: 'alice',
  device: { backend: 'webgpu', adapter: 'Test GPU' },
};

const goodHeader = { type: 'result', leaseId: 'l_1', wuId: 'j_1.0', sha256: SHA, signature: 'abc_-' };

describe('JobSubmit', () => {
  test('a minimal submission parses with defaults', () => {
    const parsed = JobSubmit.parse(goodJob);
    expect(parsed).toEqual({ kind: 'matmul', inputs: { a: SHA, b: SHA2 }, replication: 2 });
  });

  test('a full submission parses; the name is trimmed', () => {
    const parsed = JobSubmit.parse({
      ...goodJob,
      name: '  my job  ',
      replication: 3,
      tile: { rows: 64, cols: 32 },
      tolerance: { atol: 0.1, rtol: 0.01 },
    });
    expect(parsed).toMatchObject({ name: 'my job', replication: 3, tile: { rows: 64, cols: 32 } });
  });

  test.each([
    { what: 'unknown kind', body: { ...goodJob, kind: 'conv' } },
    { what: 'missing kind', body: { inputs: goodJob.inputs } },
    { what: 'not an object', body: 'matmul' },
    { what: 'null', body: null },
    { what: 'inputs missing', body: { kind: 'matmul' } },
    { what: 'input b missing', body: { kind: 'matmul', inputs: { a: SHA } } },
    { what: 'sha uppercase', body: { ...goodJob, inputs: { a: SHA.toUpperCase(), b: SHA2 } } },
    { what: 'sha 63 chars', body: { ...goodJob, inputs: { a: SHA.slice(1), b: SHA2 } } },
    { what: 'sha 65 chars', body: { ...goodJob, inputs: { a: SHA + 'a', b: SHA2 } } },
    { what: 'sha non-hex', body: { ...goodJob, inputs: { a: 'g'.repeat(64), b: SHA2 } } },
    { what: 'sha as number', body: { ...goodJob, inputs: { a: 1, b: SHA2 } } },
    { what: 'extra key in inputs', body: { ...goodJob, inputs: { a: SHA, b: SHA2, c: SHA } } },
    { what: 'extra top-level key', body: { ...goodJob, priority: 1 } },
    { what: 'replication as string', body: { ...goodJob, replication: '2' } },
    { what: 'replication 0', body: { ...goodJob, replication: 0 } },
    { what: 'huge replication', body: { ...goodJob, replication: 1_000_000 } },
    { what: 'replication just over the limit', body: { ...goodJob, replication: LIMITS.maxReplication + 1 } },
    { what: 'fractional replication', body: { ...goodJob, replication: 1.5 } },
    { what: 'name over 64 chars', body: { ...goodJob, name: 'x'.repeat(65) } },
    { what: 'blank name', body: { ...goodJob, name: '   ' } },
    { what: 'name as number', body: { ...goodJob, name: 5 } },
    { what: 'tile 0 rows', body: { ...goodJob, tile: { rows: 0, cols: 4 } } },
    { what: 'tile too large', body: { ...goodJob, tile: { rows: 4097, cols: 4 } } },
    { what: 'tile extra key', body: { ...goodJob, tile: { rows: 4, cols: 4, depth: 1 } } },
    { what: 'negative atol', body: { ...goodJob, tolerance: { atol: -1, rtol: 0 } } },
    { what: 'rtol over 1', body: { ...goodJob, tolerance: { atol: 0, rtol: 2 } } },
    { what: 'tolerance extra key', body: { ...goodJob, tolerance: { atol: 0, rtol: 0, mode: 'x' } } },
  ])('rejects: $what', ({ body }) => {
    expect(JobSubmit.safeParse(body).success).toBe(false);
  });

  test('a 64-character name is accepted', () => {
    expect(JobSubmit.safeParse({ ...goodJob, name: 'x'.repeat(64) }).success).toBe(true);
  });
});

describe('ClientMessage', () => {
  test('a good hello, ready and failure parse', () => {
    expect(ClientMessage.parse(goodHello)).toMatchObject({ type: 'hello', name: 'alice', device: { features: [] } });
    expect(ClientMessage.parse({ type: 'ready', slots: 2 })).toEqual({ type: 'ready', slots: 2 });
    expect(ClientMessage.parse({ type: 'failure', leaseId: 'l_1', reason: 'device lost' }).type).toBe('failure');
  });

  test.each([
    { what: 'hello with protocol 1 (before batch frames)', msg: { ...goodHello, protocol: 1 } },
    { what: 'hello with protocol as string', msg: { ...goodHello, protocol: '1' } },
    { what: 'hello with an extra key', msg: { ...goodHello, admin: true } },
    { what: 'hello without device', msg: { ...goodHello, device: undefined } },
    { what: 'hello with unknown backend', msg: { ...goodHello, device: { backend: 'webgl', adapter: 'x' } } },
    { what: 'hello with an extra device key', msg: { ...goodHello, device: { ...goodHello.device, vendor: 'x' } } },
    { what: 'hello with a name over 64 chars', msg: { ...goodHello, name: 'n'.repeat(65) } },
    { what: 'hello with non-base64url key', msg: { ...goodHello, publicKey: 'abc+/=' } },
    { what: 'hello with an over-long signature', msg: { ...goodHello, signature: 'a'.repeat(201) } },
    { what: 'unknown type', msg: { type: 'steal', slots: 1 } },
    { what: 'no type', msg: { slots: 1 } },
    { what: 'ready with slots as string', msg: { type: 'ready', slots: '1' } },
    { what: 'ready with too many slots', msg: { type: 'ready', slots: 9 } },
    { what: 'ready with negative slots', msg: { type: 'ready', slots: -1 } },
    { what: 'ready with an extra key', msg: { type: 'ready', slots: 1, x: 1 } },
    { what: 'failure with a bad lease id', msg: { type: 'failure', leaseId: 'l 1; drop', reason: 'x' } },
    { what: 'failure with an over-long reason', msg: { type: 'failure', leaseId: 'l_1', reason: 'r'.repeat(501) } },
    { what: 'an array', msg: [goodHello] },
  ])('rejects: $what', ({ msg }) => {
    expect(ClientMessage.safeParse(msg).success).toBe(false);
  });
});

describe('ResultHeader', () => {
  test('a good header parses', () => {
    expect(ResultHeader.parse(goodHeader)).toEqual(goodHeader);
  });

  test.each([
    { what: 'uppercase sha', h: { ...goodHeader, sha256: SHA.toUpperCase() } },
    { what: '63-char sha', h: { ...goodHeader, sha256: SHA.slice(1) } },
    { what: 'extra key', h: { ...goodHeader, credit: 1e9 } },
    { what: 'wrong type', h: { ...goodHeader, type: 'results' } },
    { what: 'leaseId as number', h: { ...goodHeader, leaseId: 1 } },
    { what: 'empty wuId', h: { ...goodHeader, wuId: '' } },
    { what: 'wuId with a slash', h: { ...goodHeader, wuId: '../etc' } },
    { what: 'padded base64 signature', h: { ...goodHeader, signature: 'abc=' } },
    { what: 'missing signature', h: { ...goodHeader, signature: undefined } },
  ])('rejects: $what', ({ h }) => {
    expect(ResultHeader.safeParse(h).success).toBe(false);
  });
});

describe('ServerMessage', () => {
  test('parses an assign and rejects one with a bad work unit', () => {
    const assign = {
      type: 'assign',
      lease: { id: 'l_1', deadline: 1 },
      wu: { id: 'j.0', jobId: 'j', kind: 'matmul', params: { m: 1, k: 1, n: 1 }, inputs: { a: SHA, b: SHA }, outputBytes: 4, flops: 2 },
    };
    expect(ServerMessage.parse(assign)).toEqual(assign);
    expect(ServerMessage.safeParse({ ...assign, wu: { ...assign.wu, params: { m: 0, k: 1, n: 1 } } }).success).toBe(false);
  });
});

describe('server frames', () => {
  const ack = { type: 'result-ack', leaseId: 'l_1', wuId: 'j.0', accepted: true } as const;
  const cancel = { type: 'lease-cancelled', leaseId: 'l_2', reason: 'work unit settled' } as const;

  test('one message travels as itself, several as a batch, and both unpack to the messages in order', () => {
    expect(JSON.parse(encodeServerFrame([ack]))).toEqual(ack);
    const frame = JSON.parse(encodeServerFrame([ack, cancel, ack]));
    expect(frame).toEqual({ type: 'batch', messages: [ack, cancel, ack] });
    expect(serverMessages(frame)).toEqual([ack, cancel, ack]);
    expect(serverMessages(ack)).toEqual([ack]);
  });

  test.each([
    ['a batch holding a bad message', { type: 'batch', messages: [ack, { type: 'assign', lease: { id: 'l' } }] }],
    ['a batch of one', { type: 'batch', messages: [ack] }],
    ['a batch inside a batch', { type: 'batch', messages: [ack, { type: 'batch', messages: [ack, ack] }] }],
    ['a batch over the limit', { type: 'batch', messages: Array.from({ length: MAX_BATCH_MESSAGES + 1 }, () => ack) }],
    ['an unknown message', { type: 'surprise' }],
  ])('%s is refused whole', (_what, raw) => {
    expect(() => serverMessages(raw)).toThrow();
  });
});

describe('result frames', () => {
  const header = ResultHeader.parse(goodHeader);

  test.each([0, 1, 3, 4, 1000, 65_537])('encode/decode round trip preserves %i payload bytes', (len) => {
    const payload = new Uint8Array(randomBytes(len));
    const frame = encodeResultFrame(header, payload);
    const head = new TextEncoder().encode(JSON.stringify(header));
    expect(frame.length).toBe(4 + head.length + len);
    expect(new DataView(frame.buffer).getUint32(0, true)).toBe(head.length);
    const out = decodeResultFrame(frame);
    expect(out.header).toEqual(header);
    expect(Buffer.from(out.payload).equals(Buffer.from(payload))).toBe(true);
  });

  test('decodes a frame that sits at an offset inside a larger buffer', () => {
    const payload = new Uint8Array([1, 2, 3, 4, 5]);
    const frame = encodeResultFrame(header, payload);
    const backing = new Uint8Array(frame.length + 7);
    backing.set(frame, 3);
    const out = decodeResultFrame(backing.subarray(3, 3 + frame.length));
    expect(out.header).toEqual(header);
    expect(Array.from(out.payload)).toEqual([1, 2, 3, 4, 5]);
  });

  function frameWith(headerBytes: Uint8Array, declaredLen = headerBytes.length, payload = new Uint8Array(8)): Uint8Array {
    const out = new Uint8Array(4 + headerBytes.length + payload.length);
    new DataView(out.buffer).setUint32(0, declaredLen, true);
    out.set(headerBytes, 4);
    out.set(payload, 4 + headerBytes.length);
    return out;
  }
  const enc = (s: string) => new TextEncoder().encode(s);

  test.each([0, 1, 2, 3])('rejects a frame of %i bytes (shorter than the length prefix)', (len) => {
    expect(() => decodeResultFrame(new Uint8Array(len))).toThrow(FrameError);
    expect(() => decodeResultFrame(new Uint8Array(len))).toThrow(/shorter than its length prefix/);
  });

  test('rejects a header length beyond the frame', () => {
    const head = enc(JSON.stringify(header));
    const frame = frameWith(head, head.length + 100, new Uint8Array(0));
    expect(() => decodeResultFrame(frame)).toThrow(/truncated or too large/);
    expect(() => decodeResultFrame(frameWith(head, 0xffffffff))).toThrow(FrameError);
  });

  test('rejects a header over 4096 bytes even when the frame holds it', () => {
    const big = enc(JSON.stringify({ ...goodHeader, pad: 'x'.repeat(LIMITS.maxFrameHeaderBytes) }));
    expect(big.length).toBeGreaterThan(LIMITS.maxFrameHeaderBytes);
    expect(() => decodeResultFrame(frameWith(big))).toThrow(/truncated or too large/);
  });

  test('rejects header bytes that are not UTF-8', () => {
    const bytes = enc(JSON.stringify(header));
    bytes[12] = 0xff; // never valid in UTF-8
    expect(() => decodeResultFrame(frameWith(bytes))).toThrow(/not valid UTF-8 JSON/);
    const overlong = new Uint8Array([0x22, 0xc0, 0xaf, 0x22]); // "\xc0\xaf" overlong '/'
    expect(() => decodeResultFrame(frameWith(overlong))).toThrow(/not valid UTF-8 JSON/);
  });

  test('rejects a header that is not JSON', () => {
    expect(() => decodeResultFrame(frameWith(enc('{type: result}')))).toThrow(/not valid UTF-8 JSON/);
    expect(() => decodeResultFrame(frameWith(enc('')))).toThrow(FrameError);
  });

  test.each([
    { what: 'extra key', h: { ...goodHeader, extra: 1 } },
    { what: 'uppercase sha', h: { ...goodHeader, sha256: SHA.toUpperCase() } },
    { what: 'a JSON array', h: [goodHeader] },
    { what: 'a JSON number', h: 5 },
  ])('rejects a header failing the schema ($what)', ({ h }) => {
    expect(() => decodeResultFrame(frameWith(enc(JSON.stringify(h))))).toThrow(/bad result header/);
  });
});

describe('base64url', () => {
  test.each([0, 1, 2, 3, 4, 31, 32, 33, 64, 255])('round trip of %i random bytes', (len) => {
    const bytes = new Uint8Array(randomBytes(len));
    const text = toBase64Url(bytes);
    expect(text).toMatch(/^[A-Za-z0-9_-]*$/);
    expect(text).toBe(Buffer.from(bytes).toString('base64url')); // Node's encoder as the reference
    expect(Array.from(fromBase64Url(text))).toEqual(Array.from(bytes));
  });

  test('all byte values, and the characters that differ from base64', () => {
    const all = Uint8Array.from({ length: 256 }, (_, i) => i);
    expect(Array.from(fromBase64Url(toBase64Url(all)))).toEqual(Array.from(all));
    expect(toBase64Url(new Uint8Array([0xfb, 0xff]))).toBe('-_8');
    expect(Array.from(fromBase64Url('-_8'))).toEqual([0xfb, 0xff]);
  });
});

describe('batched result frames', () => {
  const item = (i: number, bytes: number, id = `j_1.${i}`): ResultBatchItem => ({ leaseId: `l_${i}`, wuId: id, sha256: SHA, bytes });
  const batch = (items: ResultBatchItem[]): ResultBatchHeader => ({ type: 'results', items, signature: 'abc_-' });
  const payloadsOf = (items: ResultBatchItem[]) => items.map((it) => new Uint8Array(randomBytes(it.bytes)));

  test.each([
    { what: 'one item', items: [item(0, 16)] },
    { what: 'empty payloads', items: [item(0, 0), item(1, 0), item(2, 4)] },
    { what: 'odd sizes', items: [item(0, 1), item(1, 3), item(2, 65_537)] },
    { what: '64 items with 80-character ids', items: Array.from({ length: 64 }, (_, i) => ({ ...item(i, 4, `j${'x'.repeat(76)}.${String(i).padStart(2, '0')}`), leaseId: `l${'y'.repeat(76)}.${String(i).padStart(2, '0')}` })) },
  ])('encode/decode round trip: $what', ({ items }) => {
    const payloads = payloadsOf(items);
    const out = decodeWorkerFrame(encodeResultBatchFrame(batch(items), payloads));
    expect(out.type).toBe('results');
    if (out.type !== 'results') return;
    expect(out.header).toEqual(batch(items));
    expect(out.payloads.map((p) => Buffer.from(p).toString('hex'))).toEqual(payloads.map((p) => Buffer.from(p).toString('hex')));
  });

  test('a single result frame still decodes as one result', () => {
    const payload = new Uint8Array([1, 2, 3, 4]);
    const out = decodeWorkerFrame(encodeResultFrame(ResultHeader.parse(goodHeader), payload));
    expect(out).toEqual({ type: 'result', header: goodHeader, payload });
  });

  test.each([
    { what: 'one byte more', extra: 1 },
    { what: 'one byte fewer', extra: -1 },
    { what: 'no payload at all', extra: -12 },
  ])("rejects sizes that don't add up to the payload ($what)", ({ extra }) => {
    const items = [item(0, 4), item(1, 8)];
    const payload = new Uint8Array(12 + extra);
    const frame = encodeResultBatchFrame(batch(items), [payload]);
    expect(() => decodeWorkerFrame(frame)).toThrow(FrameError);
    expect(() => decodeWorkerFrame(frame)).toThrow(/add up to 12 bytes/);
  });

  test.each([
    { what: 'no items', h: batch([]) },
    { what: '65 items', h: batch(Array.from({ length: 65 }, (_, i) => item(i, 0))) },
    { what: 'a lease twice', h: batch([item(0, 0), item(0, 0)]) },
    { what: 'an extra key', h: { ...batch([item(0, 0)]), credit: 1 } },
    { what: 'an item with an extra key', h: batch([{ ...item(0, 0), accepted: true } as ResultBatchItem]) },
    { what: 'a negative size', h: batch([item(0, -4)]) },
    { what: 'a fractional size', h: batch([item(0, 1.5)]) },
    { what: 'a missing signature', h: { type: 'results', items: [item(0, 0)] } },
    { what: 'items that are not an array', h: { type: 'results', items: item(0, 0), signature: 'x' } },
  ])('rejects a batch header failing the schema ($what)', ({ h }) => {
    expect(() => decodeWorkerFrame(encodeResultBatchFrame(h as ResultBatchHeader, []))).toThrow(/bad results header/);
  });

  test('rejects a batch header over its size cap', () => {
    const head = new TextEncoder().encode(JSON.stringify({ ...batch([item(0, 0)]), pad: 'x'.repeat(RESULT_BATCH_LIMITS.maxHeaderBytes) }));
    const frame = new Uint8Array(4 + head.length);
    new DataView(frame.buffer).setUint32(0, head.length, true);
    frame.set(head, 4);
    expect(() => decodeWorkerFrame(frame)).toThrow(/truncated or too large/);
  });

  test('a single result header keeps its own 4096-byte cap', () => {
    const head = new TextEncoder().encode(JSON.stringify(goodHeader) + ' '.repeat(LIMITS.maxFrameHeaderBytes));
    const frame = new Uint8Array(4 + head.length);
    new DataView(frame.buffer).setUint32(0, head.length, true);
    frame.set(head, 4);
    expect(() => decodeWorkerFrame(frame)).toThrow(/truncated or too large/);
  });

  test('the batch signing message: every (wuId, sha256) in order under its own first line', () => {
    const text = new TextDecoder().decode(resultBatchSigningMessage([{ wuId: 'j_1.0', sha256: SHA }, { wuId: 'j_1.1', sha256: SHA2 }]));
    expect(text).toBe(`tabgrid-results-v1\nj_1.0 ${SHA}\nj_1.1 ${SHA2}\n`);
    // Never the single-result message, so neither signature can be replayed as the other.
    const one = resultBatchSigningMessage([{ wuId: 'j_1.0', sha256: SHA }]);
    expect(Buffer.from(one).equals(Buffer.from(resultSigningMessage('j_1.0', SHA)))).toBe(false);
    const signature = sign(null, resultSigningMessage('j_1.0', SHA), privateKey);
    expect(verify(null, one, privateKey, signature)).toBe(false);
  });
});
