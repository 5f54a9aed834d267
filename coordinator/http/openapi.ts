// The HTTP API as an OpenAPI 3.1 document, generated from the zod schemas in protocol.ts (zod 4's
// toJSONSchema), so the documentation cannot drift from what the server validates.
import { z } from 'zod';
import {
  ApiError,
  GridStats,
  JobStatus,
  LedgerEntry,
  LedgerExport,
  MatmulJobSubmit,
  PROTOCOL_VERSION,
  Receipts,
  RoomControl,
  RoomCreate,
  RoomCreated,
  RoomDemo,
  RoomInfo,
  RoomSnapshot,
  TokenCreate,
  TokenInfo,
  VolunteerSummary,
} from '../protocol/index.js';

const SCHEMAS = {
  ApiError,
  MatmulJobSubmit,
  JobStatus,
  VolunteerSummary,
  LedgerEntry,
  Receipts,
  GridStats,
  RoomCreate,
  RoomCreated,
  RoomInfo,
  RoomSnapshot,
  RoomControl,
  RoomDemo,
  JobCreated: z.object({ id: z.string(), workUnits: z.number().int() }),
  ShardCreated: z.object({ sha256: z.string(), shape: z.array(z.number().int()), bytes: z.number().int() }),
  JobList: z.object({ jobs: z.array(JobStatus) }),
  VolunteerList: z.object({ volunteers: z.array(VolunteerSummary) }),
  RoomList: z.object({ rooms: z.array(RoomInfo) }),
  Ledger: z.object({ coordinatorPublicKey: z.string(), entries: z.array(LedgerEntry) }),
  LedgerExport,
  TokenCreate,
  TokenCreated: TokenInfo.extend({ token: z.string() }),
  TokenList: z.object({ tokens: z.array(TokenInfo) }),
} as const;
type SchemaName = keyof typeof SCHEMAS;
/** Request bodies are documented as clients send them (before defaults apply). */
const REQUEST_BODIES = new Set<string>(['MatmulJobSubmit', 'RoomCreate', 'RoomControl', 'RoomDemo', 'TokenCreate']);

type Auth = 'token' | 'teacher' | 'none';
interface Op {
  summary: string;
  auth: Auth;
  body?: SchemaName | 'npy';
  ok: { status: number; schema?: SchemaName; binary?: boolean; stream?: boolean };
  params?: string[];
  query?: Record<string, string>;
}

const ref = (name: SchemaName) => ({ $ref: `#/components/schemas/${name}` });

/** Every route, in the order a reader wants them. */
const ROUTES: Record<string, Partial<Record<'get' | 'post' | 'delete', Op>>> = {
  '/api/shards': { post: { summary: 'Upload a float32 .npy input; content-addressed by sha-256', auth: 'token', body: 'npy', ok: { status: 201, schema: 'ShardCreated' } } },
  '/shards/{sha256}': { get: { summary: "A shard's bytes (immutable)", auth: 'none', params: ['sha256'], ok: { status: 200, binary: true } } },
  '/api/jobs': {
    post: { summary: 'Submit a job', auth: 'token', body: 'MatmulJobSubmit', ok: { status: 201, schema: 'JobCreated' } },
    get: { summary: 'All jobs, newest first', auth: 'token', ok: { status: 200, schema: 'JobList' } },
  },
  '/api/jobs/{id}': { get: { summary: "A job's status and progress", auth: 'token', params: ['id'], ok: { status: 200, schema: 'JobStatus' } } },
  '/api/jobs/{id}/cancel': {
    post: { summary: 'Cancel a queued or running job: it fails with "cancelled" and its workers stop (409 once done or failed)', auth: 'token', params: ['id'], ok: { status: 200, schema: 'JobStatus' } },
  },
  '/api/jobs/{id}/result': { get: { summary: 'The verified result as .npy (409 until done)', auth: 'token', params: ['id'], ok: { status: 200, binary: true } } },
  '/api/p2p': { get: { summary: 'Peer-to-peer: bytes the coordinator served, peers and their holdings, peers caught serving bad bytes', auth: 'token', ok: { status: 200 } } },
  '/api/stats': { get: { summary: 'Volunteers online, jobs by state, validation outcomes, credited throughput', auth: 'token', ok: { status: 200, schema: 'GridStats' } } },
  '/api/volunteers': { get: { summary: 'Every volunteer: credit, result counts, online', auth: 'none', ok: { status: 200, schema: 'VolunteerList' } } },
  '/api/volunteers/{id}/receipts': {
    get: { summary: "A volunteer's own ledger entries, newest first, each with its signed seal and audit path", auth: 'none', params: ['id'], query: { limit: 'at most this many (1–1000, default 100)' }, ok: { status: 200, schema: 'Receipts' } },
  },
  '/api/ledger': {
    get: { summary: 'Ledger entries in order, and the coordinator public key', auth: 'none', query: { after: 'entries after this seq', limit: '1–1000, default 100' }, ok: { status: 200, schema: 'Ledger' } },
  },
  '/api/ledger/export': {
    get: { summary: 'The whole ledger as one document for public audit (`npm run ledger -- verify --file`)', auth: 'none', ok: { status: 200, schema: 'LedgerExport' } },
  },
  '/api/tokens': {
    get: { summary: 'API tokens (never their secrets); needs an admin token', auth: 'token', ok: { status: 200, schema: 'TokenList' } },
    post: { summary: 'Make a submit or admin token; the secret is shown once; needs an admin token', auth: 'token', body: 'TokenCreate', ok: { status: 201, schema: 'TokenCreated' } },
  },
  '/api/tokens/{id}': { delete: { summary: 'Revoke a token at once; needs an admin token', auth: 'token', params: ['id'], ok: { status: 204 } } },
  '/api/rooms': {
    post: { summary: 'Create a classroom room; the answer holds the teacher key, shown once', auth: 'none', body: 'RoomCreate', ok: { status: 201, schema: 'RoomCreated' } },
    get: { summary: 'Rooms by credit, so classes can compare', auth: 'none', ok: { status: 200, schema: 'RoomList' } },
  },
  '/api/rooms/{code}': { get: { summary: "A room's name, state and credit", auth: 'none', params: ['code'], ok: { status: 200, schema: 'RoomInfo' } } },
  '/api/rooms/{code}/snapshot': { get: { summary: 'Every laptop in the room, once', auth: 'none', params: ['code'], ok: { status: 200, schema: 'RoomSnapshot' } } },
  '/api/rooms/{code}/events': {
    get: { summary: 'Server-Sent Events: a RoomSnapshot every second (the board)', auth: 'none', params: ['code'], ok: { status: 200, schema: 'RoomSnapshot', stream: true } },
  },
  '/api/rooms/{code}/control': { post: { summary: 'Pause or resume the whole room', auth: 'teacher', params: ['code'], body: 'RoomControl', ok: { status: 200, schema: 'RoomInfo' } } },
  '/api/rooms/{code}/demo': { post: { summary: 'Start a demo matmul job (random inputs, one replica per unit)', auth: 'teacher', params: ['code'], body: 'RoomDemo', ok: { status: 201, schema: 'JobCreated' } } },
};

function operation(op: Op) {
  const content = op.ok.binary
    ? { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } }
    : op.ok.stream
      ? { 'text/event-stream': { schema: ref(op.ok.schema!) } }
      : op.ok.schema
        ? { 'application/json': { schema: ref(op.ok.schema) } }
        : undefined;
  return {
    summary: op.summary,
    security: op.auth === 'none' ? [] : [{ [op.auth === 'token' ? 'apiToken' : 'teacherKey']: [] }],
    parameters: [
      ...(op.params ?? []).map((name) => ({ name, in: 'path', required: true, schema: { type: 'string' } })),
      ...Object.entries(op.query ?? {}).map(([name, description]) => ({ name, in: 'query', required: false, description, schema: { type: 'string' } })),
    ],
    ...(op.body && {
      requestBody: {
        required: true,
        content:
          op.body === 'npy'
            ? { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } }
            : { 'application/json': { schema: ref(op.body) } },
      },
    }),
    responses: {
      [op.ok.status]: { description: 'success', ...(content && { content }) },
      default: { description: 'an error: { error: { code, message } }', content: { 'application/json': { schema: ref('ApiError') } } },
    },
  };
}

export function openApiDocument() {
  const schemas = Object.fromEntries(
    Object.entries(SCHEMAS).map(([name, schema]) => [name, z.toJSONSchema(schema, { io: REQUEST_BODIES.has(name) ? 'input' : 'output', unrepresentable: 'any' })]),
  );
  const paths = Object.fromEntries(
    Object.entries(ROUTES).map(([path, ops]) => [path, Object.fromEntries(Object.entries(ops).map(([method, op]) => [method, operation(op)]))]),
  );
  return {
    openapi: '3.1.0',
    info: {
      title: 'tabgrid coordinator API',
      version: String(PROTOCOL_VERSION),
      description: 'Researchers submit jobs with the API token; rooms and receipts are public. Errors are always { error: { code, message } }.',
    },
    components: {
      securitySchemes: {
        apiToken: { type: 'http', scheme: 'bearer', description: 'the API token printed by `npm start`' },
        teacherKey: { type: 'http', scheme: 'bearer', description: "the room's teacher key from POST /api/rooms (the API token works too)" },
      },
      schemas,
    },
    paths,
  };
}
