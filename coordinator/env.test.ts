// The coordinator's environment variables: parsed values, and a clear refusal naming the variable
// for one that is set to something unusable — at `tabgrid start`, before anything runs.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { optionsFromEnv } from './env.js';
import { runCli } from './testing/helpers.js';

describe('optionsFromEnv', () => {
  test('unset variables leave the embedded defaults to the coordinator', () => {
    const o = optionsFromEnv({});
    expect([o.apiToken, o.database, o.leaseMs, o.heartbeatMs, o.iceServers]).toEqual([undefined, undefined, undefined, undefined, []]);
    expect(o.security?.rateLimitPerMinute).toBeGreaterThan(0);
  });

  test('set variables are parsed', () => {
    const o = optionsFromEnv({
      TABGRID_API_TOKEN: 'tg_x',
      TABGRID_DB: 'postgres://u@127.0.0.1/db',
      TABGRID_LEASE_MS: '90000',
      TABGRID_HEARTBEAT_MS: '5000',
      TABGRID_ICE_SERVERS: 'stun:127.0.0.1:3478, turn:127.0.0.1:3478',
      TABGRID_RATE_LIMIT: '42',
    });
    expect(o).toMatchObject({ apiToken: 'tg_x', database: 'postgres://u@127.0.0.1/db', leaseMs: 90_000, heartbeatMs: 5000 });
    expect(o.iceServers).toEqual([{ urls: 'stun:127.0.0.1:3478' }, { urls: 'turn:127.0.0.1:3478' }]);
    expect(o.security?.rateLimitPerMinute).toBe(42);
  });

  test.each([
    ['TABGRID_LEASE_MS', 'ten minutes'],
    ['TABGRID_LEASE_MS', '0'],
    ['TABGRID_HEARTBEAT_MS', '2.5'],
    ['TABGRID_HEARTBEAT_MS', '-1'],
    ['TABGRID_RATE_LIMIT', 'NaN'],
    ['TABGRID_ICE_SERVERS', '[{"urls": 7}]'],
  ])('%s=%s is refused, naming the variable', (name, value) => {
    expect(() => optionsFromEnv({ [name]: value })).toThrow(name);
  });
});

describe('tabgrid start', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tabgrid-env-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test('a bad variable stops the start with its name and exit status 1', () => {
    const r = runCli(['start', '--no-build', '--port', '0', '--host', '127.0.0.1', '--data', dir], { TABGRID_LEASE_MS: '10m' });
    expect(r.status).toBe(1);
    expect(r.out).toContain('tabgrid: TABGRID_LEASE_MS must be a positive integer, got 10m');
  }, 60_000);
});
