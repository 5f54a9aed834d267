// API token management (admin scope): list, create (the secret is shown once), revoke.
import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import { TokenCreate, TokenCreated, TokenList } from '../protocol/index.js';
import { requireScope, type RouteOptions } from './context.js';
import { ApiFailure, parseOr400 } from './errors.js';
import type { ApiDoc } from './openapi.js';

/** The declarations of the routes below (the OpenAPI document is made from them). */
const API = {
  list: { tag: 'tokens', auth: 'admin', summary: 'The API tokens (never their secrets)', answers: { 200: TokenList } },
  create: {
    tag: 'tokens',
    auth: 'admin',
    summary: 'Make a submit or admin token; its secret is shown only in this answer',
    body: TokenCreate,
    answers: { 201: TokenCreated },
    errors: { 400: 'a bad scope or name' },
  },
  revoke: {
    tag: 'tokens',
    auth: 'admin',
    summary: 'Revoke a token: it stops working at once',
    params: z.object({ id: z.string().describe('the token id (not its secret)') }),
    answers: { 204: null },
    errors: { 404: 'no such token' },
  },
} satisfies Record<string, ApiDoc>;

export const tokenRoutes: FastifyPluginAsync<RouteOptions> = async (app, { ctx }) => {
  const requireAdmin = requireScope(ctx, 'admin');
  app.get('/api/tokens', { onRequest: requireAdmin, config: { api: API.list } }, async () => ({ tokens: await ctx.tokens.list() }));
  app.post('/api/tokens', { onRequest: requireAdmin, config: { api: API.create } }, async (req, reply) => {
    const { scope, name } = parseOr400(TokenCreate, req.body);
    const { token, info } = await ctx.tokens.create(scope, name ?? null, ctx.now());
    return reply.code(201).send({ token, ...info });
  });
  app.delete<{ Params: { id: string } }>('/api/tokens/:id', { onRequest: requireAdmin, config: { api: API.revoke } }, async (req, reply) => {
    if (!(await ctx.tokens.revoke(req.params.id))) throw new ApiFailure(404, 'not_found', `no token ${req.params.id}`);
    return reply.code(204).send();
  });
};
