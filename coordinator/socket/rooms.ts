// Classroom rooms, live: which connected worker sits in which room, what each reported about its
// device and speed, pausing a whole room, and the board's snapshot. Durable facts (the room, its
// members, their credit) live in the RoomStore; what only matters while connected lives here.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { ROOM_CODE_ALPHABET, type DeviceInfo, type RoomInfo, type RoomSnapshot, type ServerMessage } from '../protocol/index.js';
import type { RoomMemberRecord, RoomRecord, RoomStore } from '../store/views.js';

/** What the rooms need of a connected worker (a WebSocket session). */
export interface RoomSession {
  readonly volunteerId: string;
  slots: number;
  send(msg: ServerMessage): void;
}

interface Live {
  session: RoomSession;
  room: string | null;
  device: string | null;
  gflops: number | null;
  paused: boolean;
  roomPaused: boolean;
}

export function newRoomCode(): string {
  const bytes = randomBytes(6);
  return Array.from(bytes, (b) => ROOM_CODE_ALPHABET[b % ROOM_CODE_ALPHABET.length]).join('');
}

export function hashTeacherKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

export function describeDevice(d: DeviceInfo): string {
  return `${d.backend === 'webgpu' ? 'WebGPU' : 'CPU'}: ${d.adapter}${d.isFallbackAdapter ? ' (software)' : ''}`;
}

export class Rooms {
  private readonly live = new Map<RoomSession, Live>();

  constructor(
    private readonly store: RoomStore,
    private readonly now: () => number,
  ) {}

  async create(name: string): Promise<{ room: RoomRecord; teacherKey: string }> {
    const teacherKey = `tk_${randomBytes(18).toString('base64url')}`;
    for (;;) {
      const code = newRoomCode();
      if (await this.store.getRoom(code)) continue; // 31^6 codes: a clash is rare, but possible
      const room: RoomRecord = { code, name, teacherKeyHash: hashTeacherKey(teacherKey), paused: false, createdAt: this.now() };
      await this.store.createRoom(room);
      return { room, teacherKey };
    }
  }

  get(code: string) {
    return this.store.getRoom(code);
  }

  keyMatches(room: RoomRecord, key: string): boolean {
    const a = Buffer.from(hashTeacherKey(key), 'hex');
    return timingSafeEqual(a, Buffer.from(room.teacherKeyHash, 'hex'));
  }

  /** A worker proved its identity. */
  connected(session: RoomSession, device: DeviceInfo) {
    this.live.set(session, { session, room: null, device: describeDevice(device), gflops: null, paused: false, roomPaused: false });
  }

  /** The worker measured its backends after the hello, or switched: the board shows the new device. */
  deviceChanged(session: RoomSession, device: DeviceInfo) {
    const live = this.live.get(session);
    if (live) live.device = describeDevice(device);
  }

  disconnected(session: RoomSession) {
    this.live.delete(session);
  }

  /** Slots a worker may have: none while its room is paused. */
  allowedSlots(session: RoomSession, wanted: number): number {
    return this.live.get(session)?.roomPaused ? 0 : wanted;
  }

  async join(session: RoomSession, code: string): Promise<RoomRecord | null> {
    const room = await this.store.getRoom(code);
    const live = this.live.get(session);
    if (!room || !live) return null;
    await this.store.join(code, session.volunteerId, this.now());
    live.room = code;
    live.roomPaused = room.paused;
    if (room.paused) session.slots = 0;
    session.send({ type: 'room', code, name: room.name, paused: room.paused });
    return room;
  }

  roomOf(session: RoomSession): string | null {
    return this.live.get(session)?.room ?? null;
  }

  report(session: RoomSession, gflops: number | null, paused: boolean) {
    const live = this.live.get(session);
    if (!live) return;
    live.gflops = gflops;
    live.paused = paused;
  }

  /** Pauses or resumes every member: their pages stop asking for work, and get none meanwhile. */
  async setPaused(room: RoomRecord, paused: boolean) {
    await this.store.setPaused(room.code, paused);
    for (const live of this.live.values()) {
      if (live.room !== room.code) continue;
      live.roomPaused = paused;
      if (paused) live.session.slots = 0;
      live.session.send({ type: 'room', code: room.code, name: room.name, paused });
    }
  }

  private static summary(room: RoomRecord, members: RoomMemberRecord[]): RoomInfo {
    return {
      code: room.code,
      name: room.name,
      paused: room.paused,
      createdAt: room.createdAt,
      credit: members.reduce((s, m) => s + m.credit, 0),
      members: members.length,
    };
  }

  async info(room: RoomRecord): Promise<RoomInfo> {
    return Rooms.summary(room, await this.store.members(room.code));
  }

  async list(): Promise<RoomInfo[]> {
    return (await this.store.listRooms()).map((r) => ({
      code: r.code,
      name: r.name,
      paused: r.paused,
      createdAt: r.createdAt,
      credit: r.credit,
      members: r.members,
    }));
  }

  async snapshot(room: RoomRecord): Promise<RoomSnapshot> {
    const members = await this.store.members(room.code);
    const online = new Map<string, Live>();
    for (const live of this.live.values()) if (live.room === room.code) online.set(live.session.volunteerId, live);
    const memberList = members.map((m) => {
      const live = online.get(m.volunteerId);
      return {
        volunteerId: m.volunteerId,
        name: m.name,
        device: live?.device ?? null,
        online: !!live,
        paused: live ? live.paused || room.paused : false,
        gflops: live?.gflops ?? null,
        units: m.units,
        credit: m.credit,
      };
    });
    const gflops = memberList.reduce((s, m) => s + (m.online && !m.paused ? (m.gflops ?? 0) : 0), 0);
    return {
      ...Rooms.summary(room, members),
      ts: this.now(),
      gflops,
      memberList,
    };
  }
}
