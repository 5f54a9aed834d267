// The worker WebSocket's JSON text messages, both ways. A volunteer's results travel as binary
// frames (frames.ts).
import { z } from 'zod';
import { Base64Url, Id, Name, PROTOCOL_VERSION } from './common.js';
import { WorkUnitSpec } from './jobs.js';
import { LedgerReceipt } from './ledger.js';
import { JoinRoomMessage, RoomMessage, StatusMessage } from './rooms.js';
import { P2pClientMessages, P2pConfig, ShardPeers } from './p2p.js';

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
  /** The device as the page sees it now: its backend measured after the hello, or switched. */
  z.object({ type: z.literal('device'), device: DeviceInfo }).strict(),
  JoinRoomMessage,
  StatusMessage,
  ...P2pClientMessages,
]);
export type ClientMessage = z.infer<typeof ClientMessage>;

export function helloSigningMessage(nonce: string): Uint8Array {
  return new TextEncoder().encode(`tabgrid-hello\n${nonce}`);
}
