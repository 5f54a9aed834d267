// The researcher dashboard's statistics (API token): volunteers online, jobs, validation outcomes
// and credited throughput over the last half hour.
import type { FastifyPluginAsync } from 'fastify';
import { GridStats } from '../protocol/index.js';
import { requireScope, type RouteOptions } from './context.js';
import type { ApiDoc } from './openapi.js';

/** The declaration of the route below (the OpenAPI document is made from it). */
const STATS_API: ApiDoc = {
  tag: 'grid',
  auth: 'token',
  summary: 'Volunteers online, jobs by state, validation outcomes, credited throughput (the last 30 minutes)',
  answers: { 200: GridStats },
};

/** The dashboard's throughput chart: the last 30 minutes in 10-second buckets. */
const THROUGHPUT_WINDOW_MS = 30 * 60_000;
const THROUGHPUT_BUCKET_MS = 10_000;

export const dashboardRoutes: FastifyPluginAsync<RouteOptions> = async (app, { ctx }) => {
  app.get('/api/stats', { onRequest: requireScope(ctx, 'submit'), config: { api: STATS_API } }, async (): Promise<GridStats> => {
    const { total } = await ctx.store.countVolunteers();
    const { results, jobs } = await ctx.stats.counts();
    const until = Math.ceil(ctx.now() / THROUGHPUT_BUCKET_MS) * THROUGHPUT_BUCKET_MS;
    const points = await ctx.stats.throughput(until - THROUGHPUT_WINDOW_MS, until, THROUGHPUT_BUCKET_MS);
    return {
      volunteers: { online: ctx.scheduler.onlineCount(), total },
      jobs,
      results,
      throughput: { bucketMs: THROUGHPUT_BUCKET_MS, points },
    };
  });
};
