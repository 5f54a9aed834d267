// The HTTP API's answers that no other boundary owns: uploads, job submissions, lists, the
// coordinator's info. The routes declare them (http/openapi.ts documents them from there) and the
// clients (clients/typescript) parse what they receive with them.
import { z } from 'zod';
import { LIMITS, Sha256Hex, TokenInfo } from './common.js';
import { JobStatus } from './jobs.js';
import { LedgerEntry } from './ledger.js';
import { RoomListing } from './rooms.js';
import { VolunteerSummary } from './stats.js';

/** POST /api/shards: the stored shard. */
export const ShardCreated = z.object({
  sha256: Sha256Hex,
  shape: z.array(z.number().int()),
  bytes: z.number().int(),
});
export type ShardCreated = z.infer<typeof ShardCreated>;

/** A model's input or output: its name and shape, "?" marking a dynamic axis. */
export const ModelTensorInfo = z.object({
  name: z.string(),
  shape: z.array(z.union([z.number().int(), z.literal('?')])),
});
export type ModelTensorInfo = z.infer<typeof ModelTensorInfo>;

/** POST /api/models: the stored model and what the coordinator read from it. */
export const ModelCreated = z.object({
  sha256: Sha256Hex,
  bytes: z.number().int(),
  inputs: z.array(ModelTensorInfo),
  outputs: z.array(ModelTensorInfo),
  /** Float weights in the model's initializers. */
  parameters: z.number().int(),
  opset: z.number().int(),
  /** Operator types the model uses, sorted. */
  ops: z.array(z.string()),
});
export type ModelCreated = z.infer<typeof ModelCreated>;

/** POST /api/jobs (and a room's demo job): the job's id and how many work units it was split into. */
export const JobCreated = z.object({ id: z.string(), workUnits: z.number().int() });
export type JobCreated = z.infer<typeof JobCreated>;

export const JobList = z.object({ jobs: z.array(JobStatus) });
export type JobList = z.infer<typeof JobList>;

/** The best credited volunteers (at most the `limit` asked for), and how many the coordinator stores. */
export const VolunteerList = z.object({ volunteers: z.array(VolunteerSummary), total: z.number().int() });
export type VolunteerList = z.infer<typeof VolunteerList>;

export const RoomList = z.object({ rooms: z.array(RoomListing) });
export type RoomList = z.infer<typeof RoomList>;

/** GET /api/ledger: a page of entries and the key that seals them. */
export const LedgerPage = z.object({ coordinatorPublicKey: z.string(), entries: z.array(LedgerEntry) });
export type LedgerPage = z.infer<typeof LedgerPage>;

/** POST /api/tokens: the new token's secret (shown only here) and its record. */
export const TokenCreated = TokenInfo.extend({ token: z.string() });
export type TokenCreated = z.infer<typeof TokenCreated>;

export const TokenList = z.object({ tokens: z.array(TokenInfo) });
export type TokenList = z.infer<typeof TokenList>;

export const Health = z.object({ ok: z.literal(true), protocol: z.number().int() });
export type Health = z.infer<typeof Health>;

/** GET /api/info: the protocol version, the coordinator's public key and the size caps. */
export const CoordinatorInfo = z.object({
  protocol: z.number().int(),
  coordinatorPublicKey: z.string(),
  limits: z.object(Object.fromEntries(Object.keys(LIMITS).map((k) => [k, z.number()])) as Record<keyof typeof LIMITS, z.ZodNumber>),
});
export type CoordinatorInfo = z.infer<typeof CoordinatorInfo>;

/** GET /api/p2p: shard bytes the coordinator served, the swarm's peers, peers caught serving bad bytes. */
export const P2pStatus = z.object({
  coordinatorShardBytes: z.number(),
  peers: z.array(
    z.object({ peerId: z.string(), volunteerId: z.string(), ready: z.boolean(), shards: z.number().int(), bad: z.boolean() }),
  ),
  badVolunteers: z.array(z.string()),
});
export type P2pStatus = z.infer<typeof P2pStatus>;
