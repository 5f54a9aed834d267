// The public ledger: volunteers and their credit, the ledger's entries, the whole ledger for audit,
// and a volunteer's own entries as receipts (each with its seal and audit path).
import type { FastifyPluginAsync } from 'fastify';
import { exportLedger, storedReceipts } from '../ledger/export.js';
import type { Receipts, VolunteerSummary } from '../protocol/index.js';
import type { RouteOptions } from './context.js';
import { ApiFailure, limitParam } from './errors.js';

export const ledgerRoutes: FastifyPluginAsync<RouteOptions> = async (app, { ctx }) => {
  const { store } = ctx;

  app.get('/api/volunteers', async () => {
    const volunteers: VolunteerSummary[] = (await store.listVolunteers()).map((v) => ({
      id: v.id,
      name: v.name,
      credit: v.credit,
      results: { valid: v.valid, invalid: v.invalid, pending: v.pending },
      online: ctx.scheduler.isOnline(v.id),
    }));
    return { volunteers };
  });

  app.get<{ Querystring: { after?: string; limit?: string } }>('/api/ledger', async (req) => {
    const after = Math.max(0, Number.parseInt(req.query.after ?? '0', 10) || 0);
    return { coordinatorPublicKey: ctx.keys.publicKeyRaw, entries: await store.ledgerEntries(after, limitParam(req.query.limit)) };
  });

  // The whole ledger in one document, for public audit (verify with `npm run ledger -- verify --file`).
  app.get('/api/ledger/export', async () => exportLedger(store, ctx.keys.publicKeyRaw, ctx.now()));

  app.get<{ Params: { id: string }; Querystring: { limit?: string } }>('/api/volunteers/:id/receipts', async (req): Promise<Receipts> => {
    const volunteer = await store.getVolunteer(req.params.id);
    if (!volunteer) throw new ApiFailure(404, 'not_found', `no volunteer ${req.params.id}`);
    return {
      volunteerId: volunteer.id,
      coordinatorPublicKey: ctx.keys.publicKeyRaw,
      credit: volunteer.credit,
      receipts: await storedReceipts(store, await ctx.stats.receipts(volunteer.id, limitParam(req.query.limit))),
    };
  });
};
