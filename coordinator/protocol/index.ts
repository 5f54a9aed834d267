// The one definition of every coordinator <-> browser message and every HTTP API body.
// Imported by the coordinator and by web/, so both sides validate with the same schemas.
import { z } from 'zod';

export { fromBase64Url, ledgerEntryCanonical, ledgerSealCanonical, toBase64Url } from './canonical.js';

export const PROTOCOL_VERSION = 2;

/** Size caps. Anything over them is refused before it is parsed. */
export const LIMITS = {
  /** Largest uploaded shard (.npy) in bytes. */
  maxShardBytes: 256 * 1024 * 1024,
  /** Largest JSON request body. */
  maxJsonBodyBytes: 64 * 1024,
  /** Largest WebSocket message (a result frame: header + payload). */
  maxWsMessageBytes: 64 * 1024 * 1024,
  /** Largest JSON header inside a binary result frame. */
  maxFrameHeaderBytes: 4096,
  /** Largest matrix dimension a matmul job accepts. */
  maxDim: 1 << 16,
  maxReplication: 5,
  maxNameLength: 64,
} as const;

export const Sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'must be a sha-256 as 64 lowercase hex characters');
const Id = z.string().min(1).max(80).regex(/^[A-Za-z0-9_.-]+$/, 'must be an id of letters, digits, _ . -');
const Base64Url = z.string().max(200).regex(/^[A-Za-z0-9_-]+$/, 'must be base64url');
const Name = z.string().trim().min(1).max(LIMITS.maxNameLength);

// ---------------------------------------------------------------------------------------------
// HTTP API

/** Documented error codes; every API error body is `{ error: { code, message } }`. */
export const ErrorCode = z.enum([
  'bad_request',
  'unauthorized',
  'forbidden',
  'rate_limited',
  'not_found',
  'payload_too_large',
  'unsupported_media_type',
  'not_ready',
  'conflict',
  'internal',
]);
export type ErrorCode = z.infer<typeof ErrorCode>;
export const ApiError = z.object({ error: z.object({ code: ErrorCode, message: z.string() }) });
export type ApiError = z.infer<typeof ApiError>;

export const Tolerance = z
  .object({
    atol: z.number().min(0).max(1e6),
    rtol: z.number().min(0).max(1),
  })
  .strict();
export type Tolerance = z.infer<typeof Tolerance>;

export const MatmulJobSubmit = z
  .object({
    kind: z.literal('matmul'),
    name: Name.optional(),
    inputs: z.object({ a: Sha256Hex, b: Sha256Hex }).strict(),
    replication: z.number().int().min(1).max(LIMITS.maxReplication).default(2),
    /** Output tile per work unit; chosen from the problem size when absent. */
    tile: z
      .object({ rows: z.number().int().min(1).max(4096), cols: z.number().int().min(1).max(4096) })
      .strict()
      .optional(),
    /** Overrides the validator's agreement tolerance (see README). */
    tolerance: Tolerance.optional(),
    /** Adaptive replication (default true): trusted hosts' checked results may go unreplicated (see README). */
    adaptive: z.boolean().optional(),
  })
  .strict();
export type MatmulJobSubmit = z.infer<typeof MatmulJobSubmit>;

// --- attention job kind (issue 3) -----------------------------------------------------------
/** Head dimensions the attention kernel is built for. */
export const ATTENTION_HEAD_DIMS = [64, 128] as const;

export const AttentionJobSubmit = z
  .object({
    kind: z.literal('attention'),
    name: Name.optional(),
    /** Q, K, V as float32 .npy of shape [heads, seq, d]; out = softmax(Q·Kᵀ/√d)·V per head. */
    inputs: z.object({ q: Sha256Hex, k: Sha256Hex, v: Sha256Hex }).strict(),
    /** Query i attends only to keys j <= i (decoder-style masking). */
    causal: z.boolean().default(false),
    replication: z.number().int().min(1).max(LIMITS.maxReplication).default(2),
    /** Query rows per work unit; chosen from the problem size when absent. */
    blockRows: z.number().int().min(1).max(LIMITS.maxDim).optional(),
    tolerance: Tolerance.optional(),
  })
  .strict();
export type AttentionJobSubmit = z.infer<typeof AttentionJobSubmit>;

export const AttentionParams = z
  .object({
    /** Key/value rows (the head's whole sequence). */
    seq: z.number().int().min(1).max(LIMITS.maxDim),
    /** Query rows in this unit, and the index of its first query in the sequence. */
    rows: z.number().int().min(1).max(LIMITS.maxDim),
    q0: z.number().int().min(0).max(LIMITS.maxDim),
    d: z.union([z.literal(64), z.literal(128)]),
    causal: z.boolean(),
  })
  .strict();
export type AttentionParams = z.infer<typeof AttentionParams>;
// --- end attention ----------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------
// ONNX job kind (issue 4): a model run over a batch; work units are slices of the batch axis.

export const ONNX_LIMITS = {
  /** Largest model a job may use: it travels to every worker as one shard. */
  maxModelBytes: 64 * 1024 * 1024,
  /** Largest output of one work unit (all outputs together). */
  maxUnitOutputBytes: 32 * 1024 * 1024,
  maxTensors: 16,
  maxTensorNameLength: 128,
} as const;

const TensorName = z.string().min(1).max(ONNX_LIMITS.maxTensorNameLength);

export const OnnxJobSubmit = z
  .object({
    kind: z.literal('onnx'),
    name: Name.optional(),
    /** sha-256 of the model uploaded with POST /api/models. */
    model: Sha256Hex,
    /** One .npy shard per model input, by input name; axis 0 of each is the batch. */
    inputs: z.record(TensorName, Sha256Hex),
    replication: z.number().int().min(1).max(LIMITS.maxReplication).default(2),
    /** Batch items per work unit; chosen from the model's size when absent. */
    itemsPerUnit: z.number().int().min(1).max(1 << 20).optional(),
    /** Agreement tolerance: one for every output, or one per output name. */
    tolerance: z.union([Tolerance, z.record(TensorName, Tolerance)]).optional(),
    /** Outputs (classification scores) whose replicas must agree on the argmax of the last axis instead. */
    argmax: z.array(TensorName).max(ONNX_LIMITS.maxTensors).optional(),
    /** FLOPs one batch item costs, for credit; estimated as 2 × the weight count when absent. */
    flopsPerItem: z.number().positive().max(1e15).optional(),
  })
  .strict();
export type OnnxJobSubmit = z.infer<typeof OnnxJobSubmit>;

// (End of the ONNX job kind section; its work-unit spec is below, beside matmul's.)
// ---------------------------------------------------------------------------------------------

export const JobSubmit = z.discriminatedUnion('kind', [MatmulJobSubmit, AttentionJobSubmit, OnnxJobSubmit]);
export type JobSubmit = z.infer<typeof JobSubmit>;
export type JobKindName = JobSubmit['kind'];

export const JobState = z.enum(['queued', 'running', 'done', 'failed']);
export type JobState = z.infer<typeof JobState>;

export const JobStatus = z.object({
  id: Id,
  kind: z.string(),
  name: z.string().nullable(),
  state: JobState,
  progress: z.object({ done: z.number().int(), total: z.number().int() }),
  replication: z.number().int(),
  createdAt: z.number(),
  finishedAt: z.number().nullable(),
  error: z.string().nullable(),
  result: z.object({ sha256: Sha256Hex, shape: z.array(z.number().int()) }).nullable(),
  shardTraffic: z.object({ fromPeers: z.number(), fromCoordinator: z.number() }).optional(),
});
export type JobStatus = z.infer<typeof JobStatus>;

export const VolunteerSummary = z.object({
  id: z.string(),
  name: z.string().nullable(),
  credit: z.number(),
  results: z.object({ valid: z.number().int(), invalid: z.number().int(), pending: z.number().int() }),
  online: z.boolean(),
});
export type VolunteerSummary = z.infer<typeof VolunteerSummary>;

export const LedgerEntry = z.object({
  seq: z.number().int().min(1),
  ts: z.number(),
  volunteerId: z.string(),
  jobId: z.string(),
  wuId: z.string(),
  amount: z.number(),
  prevHash: z.string(),
  hash: z.string(),
  /** Only on entries written before seals (legacy ledgers): the coordinator's signature over the hash. */
  signature: z.string().optional(),
});
export type LedgerEntry = z.infer<typeof LedgerEntry>;

// ---------------------------------------------------------------------------------------------
// Ledger seals (issue 7). The coordinator signs one seal per commit instead of every entry: the
// seal names a consecutive range of entries, the hash of its last one and the RFC 6962 Merkle
// root over their hashes (coordinator/merkle.ts). A receipt is an entry, its seal and the audit
// path from the entry to the seal's root, so it verifies on its own with the coordinator's key.

/** At most 2^64 entries per seal: an audit path is never longer. */
export const MAX_AUDIT_PATH = 64;

export const LedgerSeal = z.object({
  firstSeq: z.number().int().min(1),
  lastSeq: z.number().int().min(1),
  /** Hash of entry `lastSeq`: the chain head this seal vouches for. */
  headHash: Sha256Hex,
  /** RFC 6962 Merkle tree head over the hashes of entries firstSeq..lastSeq. */
  root: Sha256Hex,
  /** Coordinator's Ed25519 signature (base64url) over ledgerSealCanonical(seal). */
  signature: Base64Url,
});
export type LedgerSeal = z.infer<typeof LedgerSeal>;

/** One entry with the proof that the coordinator sealed it: what a volunteer keeps as its receipt. */
export const LedgerReceipt = z.object({
  entry: LedgerEntry,
  /** Absent only for legacy entries that carry their own signature. */
  seal: LedgerSeal.optional(),
  /** Sibling hashes from the entry's leaf up to seal.root, lowest first. */
  path: z.array(Sha256Hex).max(MAX_AUDIT_PATH).optional(),
});
export type LedgerReceipt = z.infer<typeof LedgerReceipt>;

// ---------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------
// Rooms, receipts and the dashboard (issue 6). Classroom rooms: a teacher creates a room, students'
// pages join it over the WebSocket, a board watches it; the dashboard reads stats; volunteers read
// their own signed ledger entries as receipts.

/** Short join codes: 6 characters from an alphabet without look-alikes (no 0/O, 1/I/L). */
export const ROOM_CODE_ALPHABET = 'ABCDEFGHJKMNPQRSTUVWXYZ23456789';
export const RoomCode = z
  .string()
  .trim()
  .transform((s) => s.toUpperCase())
  .pipe(z.string().regex(/^[ABCDEFGHJKMNPQRSTUVWXYZ23456789]{6}$/, 'must be a 6-character room code'));

export const RoomCreate = z.object({ name: Name }).strict();
export type RoomCreate = z.infer<typeof RoomCreate>;

export const RoomCreated = z.object({
  code: z.string(),
  name: z.string(),
  /** Secret that lets its holder pause, resume and start demo jobs; shown once, to the teacher. */
  teacherKey: z.string(),
  joinPath: z.string(),
  boardPath: z.string(),
});
export type RoomCreated = z.infer<typeof RoomCreated>;

export const RoomInfo = z.object({
  code: z.string(),
  name: z.string(),
  paused: z.boolean(),
  createdAt: z.number(),
  /** FLOPs credited to the room's members since they joined. */
  credit: z.number(),
  members: z.number().int(),
});
export type RoomInfo = z.infer<typeof RoomInfo>;

export const RoomMember = z.object({
  volunteerId: z.string(),
  name: z.string().nullable(),
  device: z.string().nullable(),
  online: z.boolean(),
  paused: z.boolean(),
  /** Speed of the member's last unit as its page reported it. */
  gflops: z.number().nullable(),
  units: z.number().int(),
  credit: z.number(),
});
export type RoomMember = z.infer<typeof RoomMember>;

/** What the board receives (Server-Sent Events, one snapshot per message). */
export const RoomSnapshot = RoomInfo.extend({
  ts: z.number(),
  /** Sum of the online, unpaused members' GFLOP/s. */
  gflops: z.number(),
  memberList: z.array(RoomMember),
});
export type RoomSnapshot = z.infer<typeof RoomSnapshot>;

export const RoomControl = z.object({ paused: z.boolean() }).strict();
export const RoomDemo = z.object({ size: z.enum(['small', 'medium', 'large']).default('medium') }).strict();

export const Receipts = z.object({
  volunteerId: z.string(),
  coordinatorPublicKey: z.string(),
  credit: z.number(),
  receipts: z.array(LedgerReceipt),
});
export type Receipts = z.infer<typeof Receipts>;


export const GridStats = z.object({
  volunteers: z.object({ online: z.number().int(), total: z.number().int() }),
  jobs: z.object({ queued: z.number().int(), running: z.number().int(), done: z.number().int(), failed: z.number().int() }),
  /** Results by outcome: agreed with a quorum, disagreed with it, failed the independent check, not yet settled. */
  results: z.object({ agreed: z.number().int(), disagreed: z.number().int(), invalid: z.number().int(), pending: z.number().int() }),
  /** Credited FLOPs per time bucket, oldest first. */
  throughput: z.object({ bucketMs: z.number(), points: z.array(z.object({ t: z.number(), flops: z.number() })) }),
});
export type GridStats = z.infer<typeof GridStats>;

export const JoinRoomMessage = z.object({ type: z.literal('join-room'), code: RoomCode }).strict();
/** A page's own report of its speed and whether it is paused, for its room's board. */
export const StatusMessage = z
  .object({ type: z.literal('status'), gflops: z.number().min(0).max(1e9).nullable(), paused: z.boolean() })
  .strict();
export const RoomMessage = z.object({
  type: z.literal('room'),
  code: z.string(),
  name: z.string(),
  paused: z.boolean(),
});
// ---------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------
// WebSocket: worker <-> coordinator. JSON text frames, except results (binary frames, below).

export const DeviceInfo = z
  .object({
    backend: z.enum(['webgpu', 'cpu']),
    adapter: z.string().max(200),
    isFallbackAdapter: z.boolean().optional(),
    features: z.array(z.string().max(64)).max(64).default([]),
    limits: z.record(z.string().max(64), z.number()).optional(),
    userAgent: z.string().max(400).optional(),
    /** Job kinds this worker can run; absent: every kind except opt-in ones such as onnx (older workers, sim workers). */
    kinds: z.array(z.string().max(32)).max(16).optional(),
    /** Both backends' speed on the start-up matmul, GFLOP/s (null: not available or not measured). */
    measured: z.object({ webgpu: z.number().min(0).nullable(), cpu: z.number().min(0).nullable() }).strict().optional(),
    /** WebAssembly threads the CPU backend uses (1 without cross-origin isolation). */
    threads: z.number().int().min(1).max(256).optional(),
  })
  .strict();
export type DeviceInfo = z.infer<typeof DeviceInfo>;

export const MatmulParams = z
  .object({
    m: z.number().int().min(1),
    k: z.number().int().min(1),
    n: z.number().int().min(1),
  })
  .strict();
export type MatmulParams = z.infer<typeof MatmulParams>;

/** What a worker receives for one lease: enough to fetch inputs, compute and size the output. */
export const MatmulWorkUnitSpec = z.object({
  id: Id,
  jobId: Id,
  kind: z.literal('matmul'),
  params: MatmulParams,
  /** Input shards by name (for matmul: a = m×k rows of A, b = k×n columns of B, both .npy). */
  inputs: z.record(z.string().max(32), Sha256Hex),
  outputBytes: z.number().int().min(0),
  flops: z.number().min(0),
});

// Attention work units (issue 3): q = rows×d block of one head's Q, k and v = that head's seq×d K and V.
export const AttentionWorkUnitSpec = MatmulWorkUnitSpec.extend({ kind: z.literal('attention'), params: AttentionParams });

// ONNX work units (issue 4) ---------------------------------------------------------------------
const Shape = z.array(z.number().int().min(0)).max(8);

/** How the replicas of one output are compared: element-wise within a tolerance, or by argmax. */
export const OutputAgreement = z.discriminatedUnion('mode', [
  z.object({ mode: z.literal('tolerance'), atol: Tolerance.shape.atol, rtol: Tolerance.shape.rtol }).strict(),
  z.object({ mode: z.literal('argmax') }).strict(),
]);
export type OutputAgreement = z.infer<typeof OutputAgreement>;

export const OnnxParams = z
  .object({
    /** sha-256 of the model shard (raw .onnx bytes); the session cache key. */
    model: Sha256Hex,
    modelBytes: z.number().int().min(1),
    /** Batch items in this unit (axis 0 of every input and output). */
    items: z.number().int().min(1),
    inputs: z.array(z.object({ name: TensorName, shape: Shape }).strict()).max(ONNX_LIMITS.maxTensors),
    /** The unit's output is these outputs' float32 values, flattened and concatenated in this order. */
    outputs: z.array(z.object({ name: TensorName, shape: Shape, agreement: OutputAgreement }).strict()).max(ONNX_LIMITS.maxTensors),
  })
  .strict();
export type OnnxParams = z.infer<typeof OnnxParams>;

/** The input key of an ONNX unit's model shard (not a valid name for a model's own input). */
export const ONNX_MODEL_INPUT = '@model';

export const OnnxWorkUnitSpec = MatmulWorkUnitSpec.extend({
  kind: z.literal('onnx'),
  params: OnnxParams,
  /**
   * One .npy batch slice per model input, by input name, and the model under ONNX_MODEL_INPUT: a
   * shard like any other, so peers share it and the scheduler counts it for locality.
   */
  inputs: z.record(TensorName, Sha256Hex),
});
// (end of ONNX work units) ----------------------------------------------------------------------

export const WorkUnitSpec = z.discriminatedUnion('kind', [MatmulWorkUnitSpec, AttentionWorkUnitSpec, OnnxWorkUnitSpec]);
export type WorkUnitSpec = z.infer<typeof WorkUnitSpec>;
export type MatmulWorkUnitSpec = z.infer<typeof MatmulWorkUnitSpec>;
export type AttentionWorkUnitSpec = z.infer<typeof AttentionWorkUnitSpec>;
export type OnnxWorkUnitSpec = z.infer<typeof OnnxWorkUnitSpec>;

/** Inputs a worker fetches only when it needs them, as raw bytes (not .npy): an ONNX unit's model. */
export function onDemandInputs(wu: WorkUnitSpec): string[] {
  return wu.kind === 'onnx' ? [ONNX_MODEL_INPUT] : [];
}

/** Every job kind a work unit can be: a worker that implements the whole protocol declares these. */
export const WORK_UNIT_KINDS: readonly WorkUnitSpec['kind'][] = WorkUnitSpec.options.map((o) => o.shape.kind.value);

// ---------------------------------------------------------------------------------------------
// Peer-to-peer shard exchange (issue 5): the coordinator is the tracker; pages swap shards over
// WebRTC data channels (PeerJS, mounted at /peerjs on the coordinator's port).

export const P2P_LIMITS = {
  /** Most shard ids in one holdings message. */
  maxHoldingsPerMessage: 1024,
  /** Most peers the tracker recommends per shard in one assignment. */
  maxPeersPerShard: 4,
  /** Largest JSON control message on a peer data channel. */
  maxPeerControlBytes: 1024,
} as const;

/** A PeerJS peer id (the coordinator hands each session one in `welcome`). */
export const PeerId = z.string().min(1).max(64).regex(/^[A-Za-z0-9_-]+$/, 'must be a peer id of letters, digits, _ -');

export const IceServer = z
  .object({
    urls: z.union([z.string().max(300), z.array(z.string().max(300)).max(8)]),
    username: z.string().max(200).optional(),
    credential: z.string().max(200).optional(),
  })
  .strict();
export type IceServer = z.infer<typeof IceServer>;

/** Sent in `welcome`: how this page joins the swarm. */
export const P2pConfig = z.object({
  peerId: PeerId,
  /** PeerServer mount path on the coordinator's origin. */
  path: z.string().max(100),
  iceServers: z.array(IceServer).max(16),
});
export type P2pConfig = z.infer<typeof P2pConfig>;

/** Sent in `assign`: for each input shard, peers believed to hold it (best first). */
export const ShardPeers = z.record(Sha256Hex, z.array(PeerId).max(P2P_LIMITS.maxPeersPerShard));
export type ShardPeers = z.infer<typeof ShardPeers>;

const ShaList = z.array(Sha256Hex).max(P2P_LIMITS.maxHoldingsPerMessage);
const ByteCount = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

/** Client -> server messages of the swarm. */
export const P2pClientMessages = [
  /** My PeerJS peer (the id from `welcome`) is open and can serve shards. */
  z.object({ type: z.literal('peer-ready') }).strict(),
  /** Shards added to / evicted from my cache. */
  z.object({ type: z.literal('holdings'), add: ShaList.default([]), remove: ShaList.default([]) }).strict(),
  /** A peer served bytes that failed the sha-256 check. */
  z.object({ type: z.literal('bad-peer'), peerId: PeerId, sha256: Sha256Hex, reason: z.string().max(200) }).strict(),
  /** Where the inputs of a lease came from (bytes that were not already cached). */
  z.object({ type: z.literal('shard-traffic'), leaseId: Id, fromPeers: ByteCount, fromCoordinator: ByteCount }).strict(),
] as const;

/** Per-job shard bytes the workers received, by source (GET /api/jobs/<id>). */
export const ShardTraffic = z.object({ fromPeers: z.number(), fromCoordinator: z.number() });
export type ShardTraffic = z.infer<typeof ShardTraffic>;

/** Peer <-> peer control messages on a data channel (text frames; shard bytes go as binary frames). */
export const PeerWireMessage = z.discriminatedUnion('t', [
  /** Ask for a shard. */
  z.object({ t: z.literal('get'), sha256: Sha256Hex }).strict(),
  /** The bytes follow as binary frames, `bytes` in all. */
  z.object({ t: z.literal('ok'), sha256: Sha256Hex, bytes: z.number().int().min(0).max(LIMITS.maxShardBytes) }).strict(),
  /** Refused: not held, or over the upload budget. */
  z.object({ t: z.literal('no'), sha256: Sha256Hex, reason: z.enum(['not-held', 'busy']) }).strict(),
]);
export type PeerWireMessage = z.infer<typeof PeerWireMessage>;

// Server -> client
export const ServerMessage = z.discriminatedUnion('type', [
  z.object({ type: z.literal('challenge'), protocol: z.number().int(), nonce: Base64Url }),
  z.object({
    type: z.literal('welcome'),
    volunteerId: z.string(),
    name: z.string().nullable(),
    credit: z.number(),
    p2p: P2pConfig.optional(),
  }),
  z.object({
    type: z.literal('assign'),
    lease: z.object({ id: Id, deadline: z.number() }),
    wu: WorkUnitSpec,
    peers: ShardPeers.optional(),
  }),
  z.object({
    type: z.literal('lease-cancelled'),
    leaseId: Id,
    reason: z.string(),
    /** Its deadline passed: the unit went to another worker too, but a right result from this one still counts. */
    stillAccepted: z.boolean().optional(),
  }),
  z.object({
    type: z.literal('result-ack'),
    leaseId: Id,
    wuId: Id,
    accepted: z.boolean(),
    reason: z.string().optional(),
  }),
  z.object({
    type: z.literal('credit'),
    wuId: Id,
    amount: z.number(),
    total: z.number(),
    ledgerSeq: z.number().int(),
    /** The ledger entry with its seal and audit path: the volunteer's receipt (negative when revoked). */
    receipt: LedgerReceipt.optional(),
  }),
  z.object({ type: z.literal('error'), code: z.string(), message: z.string() }),
  RoomMessage,
]);
export type ServerMessage = z.infer<typeof ServerMessage>;

/** Most messages in one `batch` frame. */
export const MAX_BATCH_MESSAGES = 256;

/**
 * What the coordinator sends a worker in one event-loop turn (a pass's assignments, a batch's acks
 * and credits) travels as one frame: a single message as it is, several as a `batch`, in order.
 */
export const ServerBatch = z.object({ type: z.literal('batch'), messages: z.array(ServerMessage).min(2).max(MAX_BATCH_MESSAGES) });
export type ServerBatch = z.infer<typeof ServerBatch>;

/** The messages of one text frame from the coordinator, validated, in order. Throws on a bad frame. */
export function serverMessages(raw: unknown): ServerMessage[] {
  if ((raw as { type?: unknown } | null)?.type === 'batch') return ServerBatch.parse(raw).messages;
  return [ServerMessage.parse(raw)];
}

/** One text frame carrying `messages` (one or more, at most MAX_BATCH_MESSAGES). */
export function encodeServerFrame(messages: ServerMessage[]): string {
  return JSON.stringify(messages.length === 1 ? messages[0] : { type: 'batch', messages });
}

// Client -> server (text frames)
export const ClientMessage = z.discriminatedUnion('type', [
  z
    .object({
      type: z.literal('hello'),
      protocol: z.literal(PROTOCOL_VERSION),
      /** Raw Ed25519 public key (32 bytes), base64url. */
      publicKey: Base64Url,
      /** Ed25519 signature (64 bytes), base64url, over helloSigningMessage(nonce). */
      signature: Base64Url,
      name: Name.optional(),
      device: DeviceInfo,
    })
    .strict(),
  z.object({ type: z.literal('ready'), slots: z.number().int().min(0).max(8) }).strict(),
  z.object({ type: z.literal('failure'), leaseId: Id, reason: z.string().max(500) }).strict(),
  JoinRoomMessage,
  StatusMessage,
  ...P2pClientMessages,
]);
export type ClientMessage = z.infer<typeof ClientMessage>;

/** Header of a binary result frame; the payload is the raw little-endian float32 output. */
export const ResultHeader = z
  .object({
    type: z.literal('result'),
    leaseId: Id,
    wuId: Id,
    /** sha-256 of the payload bytes. */
    sha256: Sha256Hex,
    /** Ed25519 signature, base64url, over resultSigningMessage(wuId, sha256). */
    signature: Base64Url,
  })
  .strict();
export type ResultHeader = z.infer<typeof ResultHeader>;

export function helloSigningMessage(nonce: string): Uint8Array {
  return new TextEncoder().encode(`tabgrid-hello\n${nonce}`);
}

export function resultSigningMessage(wuId: string, sha256: string): Uint8Array {
  return new TextEncoder().encode(`tabgrid-result\n${wuId}\n${sha256}`);
}

export class FrameError extends Error {
  override name = 'FrameError';
}

/** Binary frame: u32 little-endian header length, the JSON header, then the payload bytes. */
export function encodeResultFrame(header: ResultHeader, payload: Uint8Array): Uint8Array {
  return encodeBinaryFrame(header, [payload]);
}

/** u32 little-endian header length, the JSON header, then the payloads back to back. */
function encodeBinaryFrame(header: unknown, payloads: readonly Uint8Array[]): Uint8Array {
  const head = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(4 + head.length + payloads.reduce((n, p) => n + p.length, 0));
  new DataView(out.buffer).setUint32(0, head.length, true);
  out.set(head, 4);
  let at = 4 + head.length;
  for (const p of payloads) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export function decodeResultFrame(frame: Uint8Array): { header: ResultHeader; payload: Uint8Array } {
  const { json, payload } = splitBinaryFrame(frame, LIMITS.maxFrameHeaderBytes);
  return { header: parseResultHeader(json), payload };
}

function parseResultHeader(json: unknown): ResultHeader {
  const parsed = ResultHeader.safeParse(json);
  if (!parsed.success) throw new FrameError(`bad result header: ${formatIssues(parsed.error)}`);
  return parsed.data;
}

/** A binary frame's parsed (not yet validated) JSON header and the bytes after it. */
function splitBinaryFrame(frame: Uint8Array, maxHeaderBytes: number): { json: unknown; payload: Uint8Array } {
  if (frame.length < 4) throw new FrameError('binary frame shorter than its length prefix');
  const len = new DataView(frame.buffer, frame.byteOffset, frame.byteLength).getUint32(0, true);
  if (len > maxHeaderBytes || 4 + len > frame.length) {
    throw new FrameError('binary frame header is truncated or too large');
  }
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(frame.subarray(4, 4 + len)));
  } catch {
    throw new FrameError('binary frame header is not valid UTF-8 JSON');
  }
  return { json, payload: frame.subarray(4 + len) };
}

// ---------------------------------------------------------------------------------------------
// Batched results (issue 7): several finished units in one binary frame under one signature, as
// BOINC's scheduler RPCs report many tasks at once. Header `{ type: 'results', items, signature }`,
// then every item's payload, concatenated in item order. Node workers with several slots use it;
// the single `result` frame above stays (the browser client sends one unit at a time).

export const RESULT_BATCH_LIMITS = {
  /** Most results in one batched frame. */
  maxItems: 64,
  /** Largest JSON header of a batched frame (64 items with 80-character ids fit with room). */
  maxHeaderBytes: 24 * 1024,
} as const;

export const ResultBatchItem = z
  .object({
    leaseId: Id,
    wuId: Id,
    /** sha-256 of this item's payload bytes. */
    sha256: Sha256Hex,
    /** Length of this item's payload; the items' payloads follow the header in item order. */
    bytes: z.number().int().min(0).max(LIMITS.maxWsMessageBytes),
  })
  .strict();
export type ResultBatchItem = z.infer<typeof ResultBatchItem>;

export const ResultBatchHeader = z
  .object({
    type: z.literal('results'),
    items: z
      .array(ResultBatchItem)
      .min(1)
      .max(RESULT_BATCH_LIMITS.maxItems)
      .refine((items) => new Set(items.map((i) => i.leaseId)).size === items.length, 'each lease may appear once in a batch'),
    /** Ed25519 signature, base64url, over resultBatchSigningMessage(items). */
    signature: Base64Url,
  })
  .strict();
export type ResultBatchHeader = z.infer<typeof ResultBatchHeader>;

/**
 * What a batch signature covers: every (wuId, sha256) in order, under its own first line, so a
 * batch signature is never a valid single-result signature or the other way round. Ids contain no
 * spaces or newlines, so the text is unambiguous.
 */
export function resultBatchSigningMessage(items: readonly Pick<ResultBatchItem, 'wuId' | 'sha256'>[]): Uint8Array {
  return new TextEncoder().encode(`tabgrid-results-v1\n${items.map((i) => `${i.wuId} ${i.sha256}\n`).join('')}`);
}

/** Batched frame: u32 little-endian header length, the JSON header, then the payloads in item order. */
export function encodeResultBatchFrame(header: ResultBatchHeader, payloads: readonly Uint8Array[]): Uint8Array {
  return encodeBinaryFrame(header, payloads);
}

/** Any binary frame a worker may send: one result, or a batch split into its items' payloads. */
export type WorkerFrame =
  | { type: 'result'; header: ResultHeader; payload: Uint8Array }
  | { type: 'results'; header: ResultBatchHeader; payloads: Uint8Array[] };

export function decodeWorkerFrame(frame: Uint8Array): WorkerFrame {
  const { json, payload } = splitBinaryFrame(frame, RESULT_BATCH_LIMITS.maxHeaderBytes);
  if ((json as { type?: unknown } | null)?.type !== 'results') {
    if (frame.length - payload.length - 4 > LIMITS.maxFrameHeaderBytes) throw new FrameError('binary frame header is truncated or too large');
    return { type: 'result', header: parseResultHeader(json), payload };
  }
  const parsed = ResultBatchHeader.safeParse(json);
  if (!parsed.success) throw new FrameError(`bad results header: ${formatIssues(parsed.error)}`);
  const { items } = parsed.data;
  const total = items.reduce((n, i) => n + i.bytes, 0);
  if (total !== payload.length) {
    throw new FrameError(`the items' sizes add up to ${total} bytes but ${payload.length} payload bytes follow the header`);
  }
  const payloads: Uint8Array[] = [];
  let at = 0;
  for (const i of items) {
    payloads.push(payload.subarray(at, at + i.bytes));
    at += i.bytes;
  }
  return { type: 'results', header: parsed.data, payloads };
}
// (end of batched results) --------------------------------------------------------------------

/** One line naming every problem zod found, e.g. `inputs.a: must be a sha-256 …`. */
export function formatIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message))
    .join('; ');
}


// ---------------------------------------------------------------------------------------------
// Trust and access (issue 8): receipts, ledger export, API tokens.

/** A receipt file (`npm run ledger -- verify-receipt <file>`): one sealed ledger entry and the key to check it with. */
export const Receipt = LedgerReceipt.extend({ coordinatorPublicKey: Base64Url }).strict();
export type Receipt = z.infer<typeof Receipt>;

/** The whole ledger for public audit (`npm run ledger -- export`, `GET /api/ledger/export`). */
export const LedgerExport = z.object({
  /** 2: entries are sealed (`seals`); 1: older exports whose entries each carry a signature. */
  format: z.enum(['tabgrid-ledger-1', 'tabgrid-ledger-2']),
  coordinatorPublicKey: Base64Url,
  exportedAt: z.number(),
  entries: z.array(LedgerEntry),
  seals: z.array(LedgerSeal).default([]),
});
export type LedgerExport = z.infer<typeof LedgerExport>;

export const TokenScope = z.enum(['submit', 'admin']);
export type TokenScope = z.infer<typeof TokenScope>;

export const TokenCreate = z
  .object({ scope: TokenScope, name: Name.optional() })
  .strict();
export type TokenCreate = z.infer<typeof TokenCreate>;

/** What the API shows of a token: never the secret, never its hash. */
export const TokenInfo = z.object({
  id: z.string(),
  scope: TokenScope,
  name: z.string().nullable(),
  createdAt: z.number(),
});
export type TokenInfo = z.infer<typeof TokenInfo>;
