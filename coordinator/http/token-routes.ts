// API token management (admin scope): list, create (the secret is shown once), revoke.
import type { FastifyPluginAsync } from 'fastify';
import { TokenCreate } from '../protocol/index.js';
import { requireScope, type RouteOptions } from './context.js';
import { ApiFailure, parseOr400 } from './errors.js';

export const tokenRoutes: FastifyPluginAsync<RouteOptions> = async (app, { ctx }) => {
  const requireAdmin = requireScope(ctx, 'admin');
  app.get('/api/tokens', { onRequest: requireAdmin }, async () => ({ tokens: await ctx.tokens.list() }));
  app.post('/api/tokens', { onRequest: requireAdmin }, async (req, reply) => {
    const { scope, name } = parseOr400(TokenCreate, req.body);
    const { token, info } = await ctx.tokens.create(scope, name ?? null, ctx.now());
    return reply.code(201).send({ token, ...info });
  });
  app.delete<{ Params: { id: string } }>('/api/tokens/:id', { onRequest: requireAdmin }, async (req, reply) => {
    if (!(await ctx.tokens.revoke(req.params.id))) throw new ApiFailure(404, 'not_found', `no token ${req.params.id}`);
    return reply.code(204).send();
  });
};
