// Peer-to-peer shard exchange: the coordinator is the tracker; pages swap shards over WebRTC data
// channels (PeerJS, mounted at /peerjs on the coordinator's port).
import { z } from 'zod';
import { Id, LIMITS, Sha256Hex } from './common.js';

export const P2P_LIMITS = {
  /** Most shard ids in one holdings message. */
  maxHoldingsPerMessage: 1024,
  /** Most peers the tracker recommends per shard in one assignment. */
  maxPeersPerShard: 4,
  /** Largest message a page sends on the PeerJS signalling socket (an SDP offer is a few KiB); a larger one closes it. */
  maxSignalBytes: 16 * 1024,
  /** Largest JSON control message on a peer data channel. */
  maxPeerControlBytes: 1024,
  /** Most shards the tracker keeps as one peer's holdings (held or being fetched); claims beyond are not recorded. */
  maxClaimsPerPeer: 2048,
  /** Most such claims over every peer together. */
  maxClaimsTotal: 200_000,
  /** Most shards one connection's claims may have the coordinator look up (claims of unknown shards are refused). */
  maxLookupsPerPeer: 1024,
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

/**
 * The secret that signs a peer id in at /peerjs (PeerJS's `token` option), issued with the id and
 * sent only to the session it belongs to: other pages learn peer ids from their assignments, so
 * the id alone must not be enough to sign in. 24 random bytes, base64url.
 */
export const PeerToken = z.string().regex(/^[A-Za-z0-9_-]{32}$/, 'must be the 32-character signalling token issued with the peer id');

/** Sent in `welcome`: how this page joins the swarm. */
export const P2pConfig = z.object({
  peerId: PeerId,
  /** Pass as PeerJS's `token`: the PeerServer admits `peerId` only with it. */
  token: PeerToken,
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
  /** A peer served a shard whose bytes matched its sha-256: the tracker may recommend it for that shard. */
  z.object({ type: z.literal('peer-served'), peerId: PeerId, sha256: Sha256Hex }).strict(),
  /** Where the inputs of a lease came from (bytes that were not already cached). */
  z.object({ type: z.literal('shard-traffic'), leaseId: Id, fromPeers: ByteCount, fromCoordinator: ByteCount }).strict(),
] as const;

/**
 * What a page's PeerJS client sends on the signalling socket (/peerjs): a heartbeat, or a message
 * for another peer (`dst`) that the PeerServer relays with the sender stamped as `src`. The payload
 * (an SDP offer or answer, an ICE candidate) is the browsers' business: only its size is capped.
 */
export const PeerSignal = z
  .object({
    type: z.enum(['HEARTBEAT', 'OFFER', 'ANSWER', 'CANDIDATE', 'LEAVE']),
    dst: PeerId.optional(),
    payload: z.unknown().optional(),
  })
  .strict();
export type PeerSignal = z.infer<typeof PeerSignal>;

/** Per-job shard bytes the workers received, by source (GET /api/jobs/<id>). */
export const ShardTraffic = z.object({
  fromPeers: z.number(),
  fromCoordinator: z.number(),
  /** An iterative job's (train) bytes by the round of the units that fetched them (0-based), rounds with traffic only. */
  byRound: z.array(z.object({ round: z.number().int(), fromPeers: z.number(), fromCoordinator: z.number() })).optional(),
});
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
