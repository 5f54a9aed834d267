// HTTP routes behind the researcher dashboard and the volunteer page: grid statistics (API token)
// and a volunteer's own ledger entries as receipts, each with its seal and audit path (public, like the ledger itself).
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { storedReceipts } from '../ledger/export.js';
import type { GridStats, Receipts } from '../protocol/index.js';
import { ApiFailure, type ServerContext } from './server.js';
import type { StatsStore } from '../store/sqlite/stats.js';

/** The dashboard's throughput chart: the last 30 minutes in 10-second buckets. */
const THROUGHPUT_WINDOW_MS = 30 * 60_000;
const THROUGHPUT_BUCKET_MS = 10_000;

export function registerDashboardRoutes(
  app: FastifyInstance,
  ctx: ServerContext & { stats: StatsStore },
  requireToken: (req: FastifyRequest) => Promise<void>,
) {
  app.get('/api/stats', { onRequest: requireToken }, async (): Promise<GridStats> => {
    const volunteers = await ctx.store.listVolunteers();
    const { results, jobs } = await ctx.stats.counts();
    const until = Math.ceil(ctx.now() / THROUGHPUT_BUCKET_MS) * THROUGHPUT_BUCKET_MS;
    const points = await ctx.stats.throughput(until - THROUGHPUT_WINDOW_MS, until, THROUGHPUT_BUCKET_MS);
    return {
      volunteers: { online: volunteers.filter((v) => ctx.scheduler.isOnline(v.id)).length, total: volunteers.length },
      jobs,
      results,
      throughput: { bucketMs: THROUGHPUT_BUCKET_MS, points },
    };
  });

  app.get<{ Params: { id: string }; Querystring: { limit?: string } }>('/api/volunteers/:id/receipts', async (req): Promise<Receipts> => {
    const volunteer = await ctx.store.getVolunteer(req.params.id);
    if (!volunteer) throw new ApiFailure(404, 'not_found', `no volunteer ${req.params.id}`);
    const limit = Math.min(1000, Math.max(1, Number.parseInt(req.query.limit ?? '100', 10) || 100));
    return {
      volunteerId: volunteer.id,
      coordinatorPublicKey: ctx.keys.publicKeyRaw,
      credit: volunteer.credit,
      receipts: await storedReceipts(ctx.store, await ctx.stats.receipts(volunteer.id, limit)),
    };
  });
}
