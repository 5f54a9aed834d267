// The coordinator's settings from environment variables (README: "Configuration"), checked once at
// start: a variable set to something unusable stops `tabgrid start` with its name, never runs the
// grid on NaN.
import { positiveInt, securityFromEnv } from './access/security.js';
import type { CoordinatorOptions } from './app.js';
import { parseIceServers } from './swarm/peer-server.js';

export type EnvOptions = Pick<CoordinatorOptions, 'apiToken' | 'database' | 'leaseMs' | 'heartbeatMs' | 'iceServers' | 'security'>;

export function optionsFromEnv(env: NodeJS.ProcessEnv): EnvOptions {
  return {
    apiToken: env.TABGRID_API_TOKEN || undefined,
    database: env.TABGRID_DB || undefined,
    leaseMs: positiveInt('TABGRID_LEASE_MS', env.TABGRID_LEASE_MS, undefined),
    heartbeatMs: positiveInt('TABGRID_HEARTBEAT_MS', env.TABGRID_HEARTBEAT_MS, undefined),
    iceServers: parseIceServers(env.TABGRID_ICE_SERVERS),
    security: securityFromEnv(env),
  };
}
