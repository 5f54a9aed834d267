import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { isWeakEd25519Key, volunteerPublicKey } from '../../access/keys.js';
import { ApiError, fromBase64Url } from '../../protocol/index.js';
import { SimWorker } from '../sim-worker.js';
import { SqliteStore } from '../../store/sqlite/store.js';
import { OriginPolicy } from '../../access/security.js';
import { runCli as cli, TOKEN, waitFor, wsHandshakeStatus } from '../helpers.js';
import { useGridPerTest } from '../fixtures.js';

const { grid, start } = useGridPerTest();

async function errorOf(res: Response) {
  return ApiError.parse(await res.json()).error;
}

describe('API tokens', () => {
  test('scoped tokens: submit can run jobs, only admin manages tokens; revoked tokens stop working', async () => {
    await start();
    const created = await grid.api('/api/tokens', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ scope: 'submit', name: 'lab' }) });
    expect(created.status).toBe(201);
    const { token, id, scope } = (await created.json()) as { token: string; id: string; scope: string };
    expect(scope).toBe('submit');

    expect((await grid.api('/api/jobs', { token })).status).toBe(200);
    const forbidden = await grid.api('/api/tokens', { token });
    expect(forbidden.status).toBe(403);
    expect((await errorOf(forbidden)).code).toBe('forbidden');

    // Only the hash is stored: the secret appears nowhere in the database.
    const store = new SqliteStore(join(grid.dir, 'tabgrid.sqlite'));
    const stored = (await store.getMeta('api-tokens')) ?? '';
    await store.close();
    expect(stored).toContain(id);
    expect(stored).not.toContain(token);
    expect((await (await grid.api('/api/tokens')).json()) as unknown).not.toHaveProperty('tokens.0.hash');

    expect((await grid.api(`/api/tokens/${id}`, { method: 'DELETE' })).status).toBe(204);
    const revoked = await grid.api('/api/jobs', { token });
    expect(revoked.status).toBe(401);
    expect((await errorOf(revoked)).code).toBe('unauthorized');
    expect((await grid.api('/api/jobs', { token: `${TOKEN}x` })).status).toBe(401);
  });

  test('`npm run tokens -- create` makes a working token against a running coordinator', async () => {
    await start();
    const made = cli(['tokens', 'create', '--scope', 'submit', '--name', 'cli', '--data', grid.dir]);
    expect(made.status).toBe(0);
    const token = made.out.trim().split('\n').at(-1)!;
    expect(token).toMatch(/^tg_/);
    expect((await grid.api('/api/jobs', { token })).status).toBe(200);
    const listed = cli(['tokens', 'list', '--data', grid.dir]);
    expect(listed.out).toMatch(/tk_[0-9a-f]+\tsubmit\t.*\tcli/);
    expect(cli(['tokens', 'create', '--scope', 'root', '--data', grid.dir]).status).not.toBe(0);
  });
});

describe('limits and headers', () => {
  test('HTTP requests over the per-minute limit get 429 rate_limited', async () => {
    await start({ security: { rateLimitPerMinute: 5 } });
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++) statuses.push((await grid.api('/api/health', { token: null })).status);
    expect(statuses.slice(0, 5)).toEqual([200, 200, 200, 200, 200]);
    const limited = await grid.api('/api/health', { token: null });
    expect(limited.status).toBe(429);
    expect((await errorOf(limited)).code).toBe('rate_limited');
    // A valid token is its own bucket, separate from the address; made-up tokens are not.
    expect((await grid.api('/api/jobs')).status).toBe(200);
    expect((await grid.api('/api/health', { token: 'made-up' })).status).toBe(429);
  });

  test('every answer carries security headers and a CSP that allows wasm and the worker', async () => {
    await start({ security: { allowedOrigins: ['https://project.example'] } });
    for (const path of ['/', '/api/health', '/nope']) {
      const res = await grid.api(path, { token: null });
      const csp = res.headers.get('content-security-policy') ?? '';
      expect(csp).toContain("script-src 'self' 'wasm-unsafe-eval'");
      expect(csp).toContain("worker-src 'self' blob:");
      expect(csp).toContain("frame-ancestors 'self' https://project.example");
      expect(csp).not.toContain("'unsafe-eval'");
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    }
  });

  test('a flooding worker is told to slow down and then disconnected', async () => {
    await start({ security: { wsMessagesPerSecond: 10, wsMessageBurst: 20 } });
    const w = new SimWorker({ url: grid.base });
    await w.connect();
    for (let i = 0; i < 200; i++) w.send(JSON.stringify({ type: 'ready', slots: 1 }));
    await waitFor(() => w.closed, 5000, 'the flooder to be closed');
    expect(w.messages.some((m) => m.type === 'error' && m.code === 'rate_limited')).toBe(true);
    // The coordinator is fine and serves others.
    const other = new SimWorker({ url: grid.base });
    await other.connect();
    other.close();
  });

  test('connections per address are capped', async () => {
    await start({ security: { wsMaxPerAddress: 2 } });
    const [a, b, c] = [0, 1, 2].map(() => new SimWorker({ url: grid.base }));
    await a.connect();
    await b.connect();
    await expect(c.connect()).rejects.toThrow(/closed before welcome/);
    expect(c.messages.some((m) => m.type === 'error' && m.code === 'rate_limited')).toBe(true);
    a.close();
    b.close();
  });
});

describe('WebSocket Origin allow-list', () => {
  test.each([
    [undefined, 'h:1', [], false, true],
    [undefined, 'h:1', [], true, false],
    ['http://h:1', 'h:1', [], true, true],
    ['http://evil.example', 'h:1', [], false, false],
    ['https://project.example', 'h:1', ['https://project.example'], false, true],
    ['https://project.example:8443', 'h:1', ['https://project.example'], false, false],
    ['null', 'h:1', [], false, false],
    ['https://any.example', 'h:1', ['*'], true, true],
  ])('origin %s to host %s with list %j (require %s): %s', (origin, host, list, requireOrigin, ok) => {
    const policy = new OriginPolicy({ publicUrls: [], allowedOrigins: list, requireOrigin }, ['http://h:1']);
    expect(policy.check(origin, host) === null).toBe(ok);
  });

  test('the coordinator refuses a foreign Origin before the upgrade and accepts same-origin and listed ones', async () => {
    await start({ security: { allowedOrigins: ['https://project.example'] } });
    const host = new URL(grid.base).host;
    expect(await wsHandshakeStatus(grid.base, { origin: 'https://evil.example' })).toBe(403);
    expect(await wsHandshakeStatus(grid.base, { origin: grid.base })).toBe(101);
    expect(await wsHandshakeStatus(grid.base, { origin: 'https://project.example', host })).toBe(101);
    expect(await wsHandshakeStatus(grid.base, {})).toBe(101); // Node clients send no Origin
  });
});

describe('identity keys', () => {
  test.each([
    ['all zero (order 4)', '0000000000000000000000000000000000000000000000000000000000000000'],
    ['identity (order 1)', '0100000000000000000000000000000000000000000000000000000000000000'],
    ['order 2', 'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f'],
    ['order 8', '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05'],
    ['order 8, negated', 'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a'],
    ['order 8, sign bit set', 'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa'],
    ['non-canonical (y = p)', 'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f'],
  ])('a small-order or non-canonical key is refused: %s', (_name, hex) => {
    const bytes = Uint8Array.from(hex.match(/../g)!.map((x) => parseInt(x, 16)));
    expect(isWeakEd25519Key(bytes)).toBe(true);
    const b64 = Buffer.from(bytes).toString('base64url');
    expect(volunteerPublicKey(b64)).toBeNull();
  });

  test('real keys are accepted', () => {
    for (let i = 0; i < 50; i++) {
      const w = new SimWorker({ url: 'http://127.0.0.1:1' });
      expect(isWeakEd25519Key(fromBase64Url(w.publicKeyRaw))).toBe(false);
      expect(volunteerPublicKey(w.publicKeyRaw)).not.toBeNull();
    }
  });
});
