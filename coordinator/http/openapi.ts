// The HTTP API as an OpenAPI 3.1 document built from the routes themselves. Each route declares,
// once, in its options (`config: { api: {...} }`), what it takes and answers as zod schemas from
// protocol/; an onRoute hook (ApiRoutes) collects every route as Fastify registers it, and zod's
// toJSONSchema turns the schemas into the document's. A route without a declaration is still
// listed (`undocumented()`), so a test can fail on it.
import type { FastifyInstance, RouteOptions as FastifyRouteOptions } from 'fastify';
import { z } from 'zod';
import * as protocol from '../protocol/index.js';
import { ApiError, PROTOCOL_VERSION } from '../protocol/index.js';

/** Who may call a route: an API token (any scope), an admin token, a room's teacher key (or an admin token), anyone. */
export type Auth = 'token' | 'admin' | 'teacher' | 'none';

/** A binary body or answer: a float32 .npy, an ONNX model, or opaque bytes. */
export type Binary = 'npy' | 'onnx' | 'bytes';

/** What a route answers with one status: JSON (a schema), bytes, Server-Sent Events of a schema, or no body. */
export type Answer = z.ZodType | Binary | { events: z.ZodType } | null;

export interface ApiDoc {
  /** One line: what the call does. */
  summary: string;
  description?: string;
  /** The group it is listed under (jobs, ledger, rooms, tokens, grid). */
  tag: Tag;
  auth: Auth;
  /** Path parameters (`:id` → `{id}`); those not named here are documented as strings. */
  params?: z.ZodObject;
  /** Query parameters: each field's `.describe()` is its description. */
  query?: z.ZodObject;
  /** The request body: JSON as this schema accepts it (before defaults), or raw bytes. */
  body?: z.ZodType | Binary;
  /** Answers by status. */
  answers: Record<number, Answer>;
  /** Error answers this route gives, by status: when. (401 is added for routes that need a token, and `default` for every route.) */
  errors?: Record<number, string>;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route's entry in the OpenAPI document (http/openapi.ts). */
    api?: ApiDoc;
  }
}

const TAGS = {
  jobs: 'Researchers: inputs, jobs and their results (API token)',
  grid: 'The grid: its version, limits and statistics',
  ledger: 'The public credit ledger and volunteers’ receipts',
  rooms: 'Classroom rooms and their boards',
  tokens: 'API tokens (admin token)',
} as const;
export type Tag = keyof typeof TAGS;

export interface RegisteredRoute {
  method: string;
  /** As Fastify has it: `/api/jobs/:id`. */
  url: string;
  api?: ApiDoc;
  /** A HEAD route Fastify added for a GET route: documented by that route. */
  implied?: boolean;
}

/** Every route of an app, as its onRoute hook saw them, and the document made from their declarations. */
export class ApiRoutes {
  readonly routes: RegisteredRoute[] = [];

  /** The onRoute hook; add it to the app before any route is registered. */
  readonly onRoute = (route: FastifyRouteOptions) => {
    const api = route.config?.api;
    for (const method of [route.method].flat()) {
      const implied = method === 'HEAD' && api !== undefined && this.routes.some((r) => r.method === 'GET' && r.url === route.url && r.api === api);
      this.routes.push({ method, url: route.url, api, ...(implied && { implied }) });
    }
  };

  /** Routes with no declaration (Fastify's own HEAD routes for GET routes are declared by them). */
  undocumented(): RegisteredRoute[] {
    return this.routes.filter((r) => !r.api && !r.implied);
  }

  document(): OpenApiDocument {
    return buildDocument(this.routes.filter((r) => r.api && !r.implied) as Required<Pick<RegisteredRoute, 'method' | 'url' | 'api'>>[]);
  }
}

const registries = new WeakMap<FastifyInstance, ApiRoutes>();

/** Starts listing `app`'s routes (call before registering any); the same registry on later calls. */
export function apiRoutesOf(app: FastifyInstance): ApiRoutes {
  let routes = registries.get(app);
  if (!routes) {
    routes = new ApiRoutes();
    app.addHook('onRoute', routes.onRoute);
    registries.set(app, routes);
  }
  return routes;
}

/** `/api/jobs/:id` → `/api/jobs/{id}`. */
export const openApiPath = (url: string) => url.replace(/:(\w+)/g, '{$1}');

// --- the document ----------------------------------------------------------------------------------

type Json = Record<string, unknown>;
type Io = 'input' | 'output';

export interface OpenApiDocument {
  openapi: '3.1.0';
  info: { title: string; version: string; description: string };
  tags: { name: string; description: string }[];
  components: { securitySchemes: Json; schemas: Record<string, Json> };
  paths: Record<string, Record<string, Json>>;
}

/** Each schema protocol/ exports, by its export name: these become the document's named schemas. */
const SCHEMA_NAMES: Map<z.ZodType, string> = (() => {
  const names = new Map<z.ZodType, string>();
  for (const [name, value] of Object.entries(protocol)) if (value instanceof z.ZodType && !names.has(value)) names.set(value, name);
  return names;
})();

const MEDIA: Record<Binary, { type: string; description: string }> = {
  npy: { type: 'application/octet-stream', description: 'a NumPy .npy file in C order: float32 (<f4), or int32 (<i4) for training labels' },
  onnx: { type: 'application/octet-stream', description: 'an ONNX model (.onnx), float32 inputs and outputs, weights inside' },
  bytes: { type: 'application/octet-stream', description: 'the bytes' },
};

/** The named schemas of one document, made as routes refer to them. */
class Components {
  readonly schemas: Record<string, Json> = {};
  private readonly made = new Map<string, Io>();

  /** A schema as the document refers to it: a `$ref` to a named one, else inline. */
  ref(schema: z.ZodType, io: Io): Json {
    const name = SCHEMA_NAMES.get(schema);
    if (!name) return this.inline(schema, io);
    const key = this.named(name, schema, io);
    return { $ref: `#/components/schemas/${key}` };
  }

  private named(name: string, schema: z.ZodType, io: Io): string {
    const previous = this.made.get(name);
    if (previous === undefined) {
      this.made.set(name, io);
      this.schemas[name] = this.body(schema, io);
      return name;
    }
    if (previous === io) return name;
    // Used both as a request body and in an answer: a second entry where the two differ (defaults).
    const other = this.body(schema, io);
    if (JSON.stringify(other) === JSON.stringify(this.schemas[name])) return name;
    const key = `${name}${io === 'input' ? 'Input' : 'Output'}`;
    this.schemas[key] = other;
    return key;
  }

  /** A discriminated union of named schemas is `oneOf` their refs with an OpenAPI discriminator. */
  private body(schema: z.ZodType, io: Io): Json {
    if (schema instanceof z.ZodDiscriminatedUnion && schema.options.every((o) => SCHEMA_NAMES.has(o as z.ZodType))) {
      const property = schema.def.discriminator;
      const options = schema.options as z.ZodObject[];
      const refs = options.map((o) => this.ref(o, io));
      const mapping = Object.fromEntries(options.map((o, i) => [String((o.shape[property] as z.ZodLiteral).value), refs[i].$ref]));
      return { oneOf: refs, discriminator: { propertyName: property, mapping } };
    }
    return this.inline(schema, io);
  }

  private inline(schema: z.ZodType, io: Io): Json {
    const { $schema: _, ...json } = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as Json;
    return json;
  }
}

function security(auth: Auth): Json[] {
  if (auth === 'none') return [];
  if (auth === 'teacher') return [{ teacherKey: [] }, { apiToken: [] }];
  return [{ apiToken: [] }];
}

function parameters(url: string, api: ApiDoc, components: Components): Json[] {
  const out: Json[] = [];
  const params = api.params?.shape ?? {};
  for (const [, name] of url.matchAll(/:(\w+)/g)) {
    const field = params[name] as z.ZodType | undefined;
    const schema = field ? components.ref(field, 'input') : { type: 'string' };
    out.push({ name, in: 'path', required: true, ...(field?.description && { description: field.description }), schema });
  }
  for (const [name, field] of Object.entries((api.query?.shape ?? {}) as Record<string, z.ZodType>)) {
    out.push({
      name,
      in: 'query',
      required: !field.safeParse(undefined).success,
      ...(field.description && { description: field.description }),
      schema: components.ref(field, 'input'),
    });
  }
  return out;
}

function content(answer: Exclude<Answer, null>, components: Components, io: Io): Json {
  if (typeof answer === 'string') return { [MEDIA[answer].type]: { schema: { type: 'string', format: 'binary', description: MEDIA[answer].description } } };
  if ('events' in answer && !(answer instanceof z.ZodType)) return { 'text/event-stream': { schema: components.ref(answer.events, io) } };
  return { 'application/json': { schema: components.ref(answer as z.ZodType, io) } };
}

const STATUS_TEXT: Record<number, string> = { 200: 'success', 201: 'created', 204: 'done; no body' };

function operation(url: string, api: ApiDoc, components: Components): Json {
  const error = { content: { 'application/json': { schema: components.ref(ApiError, 'output') } } };
  const errors: Record<number, string> = {};
  if (api.auth !== 'none') errors[401] = api.auth === 'teacher' ? 'missing or wrong teacher key (or admin token)' : 'missing or wrong API token';
  if (api.auth === 'admin') errors[403] = 'the token is not an admin token';
  Object.assign(errors, api.errors);
  const responses: Json = {};
  for (const [status, answer] of Object.entries(api.answers)) {
    const description = typeof answer === 'string' ? MEDIA[answer].description : (STATUS_TEXT[Number(status)] ?? 'success');
    responses[status] = { description, ...(answer !== null && { content: content(answer, components, 'output') }) };
  }
  for (const [status, description] of Object.entries(errors)) responses[status] = { description, ...error };
  responses.default = { description: 'an error: { error: { code, message } }', ...error };
  const body = api.body;
  return {
    summary: api.summary,
    ...(api.description && { description: api.description }),
    tags: [api.tag],
    security: security(api.auth),
    parameters: parameters(url, api, components),
    ...(body !== undefined && { requestBody: { required: true, content: content(body, components, 'input') } }),
    responses,
  };
}

function buildDocument(routes: { method: string; url: string; api: ApiDoc }[]): OpenApiDocument {
  const components = new Components();
  components.ref(ApiError, 'output');
  const paths: OpenApiDocument['paths'] = {};
  // Grouped by tag (the TAGS order), each group in the order its routes were registered.
  const order = Object.keys(TAGS);
  const sorted = [...routes].sort((x, y) => order.indexOf(x.api.tag) - order.indexOf(y.api.tag));
  for (const { method, url, api } of sorted) {
    const ops = (paths[openApiPath(url)] ??= {});
    ops[method.toLowerCase()] = operation(url, api, components);
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'tabgrid coordinator API',
      version: String(PROTOCOL_VERSION),
      description:
        'Researchers submit jobs with the API token; rooms and receipts are public. Errors are always { error: { code, message } }. ' +
        'This document is generated from the routes’ own declarations.',
    },
    tags: Object.entries(TAGS).map(([name, description]) => ({ name, description })),
    components: {
      securitySchemes: {
        apiToken: { type: 'http', scheme: 'bearer', description: 'an API token: the one `npm start` prints, or one made with `npm run tokens -- create`' },
        teacherKey: { type: 'http', scheme: 'bearer', description: "the room's teacher key from POST /api/rooms (an admin token works too)" },
      },
      schemas: components.schemas,
    },
    paths,
  };
}
