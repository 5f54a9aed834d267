// Classroom rooms: what a teacher creates, what a board watches, and the room messages on the
// worker WebSocket.
import { z } from 'zod';
import { Name } from './common.js';

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

/** A room in the public ranking (GET /api/rooms): no code, so nobody joins a room from the list. */
export const RoomListing = RoomInfo.pick({ name: true, createdAt: true, credit: true, members: true });
export type RoomListing = z.infer<typeof RoomListing>;

export const RoomMember = z.object({
  volunteerId: z.string(),
  name: z.string().nullable(),
  device: z.string().nullable(),
  online: z.boolean(),
  paused: z.boolean(),
  /** The member's validated credit of the last minute, per second, in GFLOP/s (never what its page says); null while its page is starting. */
  gflops: z.number().nullable(),
  units: z.number().int(),
  credit: z.number(),
});
export type RoomMember = z.infer<typeof RoomMember>;

/** What the board receives (Server-Sent Events, one snapshot per message). */
export const RoomSnapshot = RoomInfo.extend({
  ts: z.number(),
  /** Sum of the members' GFLOP/s (validated credit of the last minute). */
  gflops: z.number(),
  memberList: z.array(RoomMember),
});
export type RoomSnapshot = z.infer<typeof RoomSnapshot>;

export const RoomControl = z.object({ paused: z.boolean() }).strict();

export const RoomDemo = z.object({ size: z.enum(['small', 'medium', 'large']).default('medium') }).strict();

export const JoinRoomMessage = z.object({ type: z.literal('join-room'), code: RoomCode }).strict();

/** A page's own report of whether it is paused, for its room's board; a `gflops` figure only marks it as computing (boards show validated credit, not this). */
export const StatusMessage = z
  .object({ type: z.literal('status'), gflops: z.number().min(0).max(1e9).nullable(), paused: z.boolean() })
  .strict();

export const RoomMessage = z.object({
  type: z.literal('room'),
  code: z.string(),
  name: z.string(),
  paused: z.boolean(),
});
