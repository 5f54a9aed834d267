// The public ledger: volunteers and their credit, the ledger's entries, the whole ledger for audit
// (one shared document per ledger state, whoever asks: ledger/shared-export.ts), and a volunteer's
// own entries as receipts (each with its seal and audit path).
import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import { storedReceipts } from '../ledger/export.js';
import { SharedLedgerExport } from '../ledger/shared-export.js';
import { LedgerExport, LedgerPage, Receipts, VolunteerList, type VolunteerSummary } from '../protocol/index.js';
import type { RouteOptions } from './context.js';
import { ApiFailure, limitParam } from './errors.js';
import type { ApiDoc } from './openapi.js';

/** The most volunteers one answer lists: identities are cheap to make, so the whole table never goes out. */
export const MAX_VOLUNTEERS = 1000;

const Limit = z.number().int().min(1).max(1000).optional().describe('at most this many (1–1000, default 100)');

/** The declarations of the routes below (the OpenAPI document is made from them). */
const API = {
  volunteers: {
    tag: 'ledger',
    auth: 'none',
    summary: 'The best credited volunteers (credit, result counts, online) and how many there are',
    query: z.object({ limit: z.number().int().min(1).max(MAX_VOLUNTEERS).optional().describe(`at most this many (1–${MAX_VOLUNTEERS}, default ${MAX_VOLUNTEERS}), best credited first`) }),
    answers: { 200: VolunteerList },
  },
  ledger: {
    tag: 'ledger',
    auth: 'none',
    summary: 'Ledger entries in order, and the coordinator public key',
    query: z.object({ after: z.number().int().min(0).optional().describe('entries after this seq (default 0)'), limit: Limit }),
    answers: { 200: LedgerPage },
  },
  export: {
    tag: 'ledger',
    auth: 'none',
    summary: 'The whole ledger as one document for public audit (`npm run ledger -- verify --file`); one document per ledger state, shared by every caller (exportedAt: when it was built)',
    answers: { 200: LedgerExport },
  },
  receipts: {
    tag: 'ledger',
    auth: 'none',
    summary: "A volunteer's own ledger entries, newest first, each with its signed seal and audit path",
    params: z.object({ id: z.string().describe('the volunteer id') }),
    query: z.object({ limit: Limit }),
    answers: { 200: Receipts },
    errors: { 404: 'no such volunteer' },
  },
} satisfies Record<string, ApiDoc>;

export const ledgerRoutes: FastifyPluginAsync<RouteOptions> = async (app, { ctx }) => {
  const { store } = ctx;
  const ledgerExport = new SharedLedgerExport({ source: store, coordinatorPublicKey: ctx.keys.publicKeyRaw, now: ctx.now, log: ctx.log });
  app.addHook('onClose', async () => ledgerExport.clear());

  app.get<{ Querystring: { limit?: string } }>('/api/volunteers', { config: { api: API.volunteers } }, async (req): Promise<VolunteerList> => {
    const limit = limitParam(req.query.limit, MAX_VOLUNTEERS, MAX_VOLUNTEERS);
    const [listed, counts] = await Promise.all([store.listVolunteers(limit), store.countVolunteers()]);
    const volunteers: VolunteerSummary[] = listed.map((v) => ({
      id: v.id,
      name: v.name,
      credit: v.credit,
      results: { valid: v.valid, invalid: v.invalid, pending: v.pending },
      online: ctx.scheduler.isOnline(v.id),
    }));
    return { volunteers, total: counts.total };
  });

  app.get<{ Querystring: { after?: string; limit?: string } }>('/api/ledger', { config: { api: API.ledger } }, async (req) => {
    const after = Math.max(0, Number.parseInt(req.query.after ?? '0', 10) || 0);
    return { coordinatorPublicKey: ctx.keys.publicKeyRaw, entries: await store.ledgerEntries(after, limitParam(req.query.limit)) };
  });

  // The whole ledger in one document, for public audit (verify with `npm run ledger -- verify --file`):
  // the same bytes for every caller until the ledger moves, never a copy per request.
  app.get('/api/ledger/export', { config: { api: API.export } }, async (_req, reply) => {
    const { body } = await ledgerExport.get();
    return reply.type('application/json; charset=utf-8').send(body);
  });

  app.get<{ Params: { id: string }; Querystring: { limit?: string } }>('/api/volunteers/:id/receipts', { config: { api: API.receipts } }, async (req): Promise<Receipts> => {
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
