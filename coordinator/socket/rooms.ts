// Classroom rooms, live: which connected worker sits in which room, what each said about its
// device and whether it is paused, pausing a whole room, and the board's snapshot. Durable facts
// (the room, its members, their credit) live in the RoomStore; what only matters while connected
// lives here. Rooms are free to make, so they are bounded (per address, in all, members per room)
// and removed when idle; a member's speed on the board is its validated credit of the last minute,
// never what its page says. Identities are free to make too, so a room's cap counts only members
// that hold a place — online here or credited (RoomStore.join) — and throwaway identities that
// joined and left cannot lock students out.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { ROOM_CODE_ALPHABET, type DeviceInfo, type RoomInfo, type RoomListing, type RoomSnapshot, type ServerMessage } from '../protocol/index.js';
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
  /** The page has reported a speed: it is computing, no longer starting (the figure itself is not shown). */
  started: boolean;
  paused: boolean;
  roomPaused: boolean;
}

/** The board's speed: each member's credit over this last window. */
export const SPEED_WINDOW_MS = 60_000;
/** How often rooms with members online are marked used, and idle ones looked for. */
const SWEEP_MS = 10 * 60_000;
/** What the board shows of a page's own device description. */
const MAX_DEVICE_CHARS = 80;

export interface RoomLimits {
  /** Live rooms one address may have made without a token. */
  roomsPerAddress: number;
  roomsMax: number;
  roomIdleMs: number;
  roomMaxMembers: number;
}

/** A room that may not be made or joined now (a cap is reached): the message says which. */
export class RoomLimitError extends Error {
  override name = 'RoomLimitError';
}

export function newRoomCode(): string {
  const bytes = randomBytes(6);
  return Array.from(bytes, (b) => ROOM_CODE_ALPHABET[b % ROOM_CODE_ALPHABET.length]).join('');
}

export function hashTeacherKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

export function describeDevice(d: DeviceInfo): string {
  const text = `${d.backend === 'webgpu' ? 'WebGPU' : 'CPU'}: ${d.adapter}${d.isFallbackAdapter ? ' (software)' : ''}`;
  return text.length > MAX_DEVICE_CHARS ? `${text.slice(0, MAX_DEVICE_CHARS - 1)}…` : text;
}

export const DEFAULT_ROOM_LIMITS: RoomLimits = { roomsPerAddress: 5, roomsMax: 1000, roomIdleMs: 24 * 60 * 60_000, roomMaxMembers: 500 };

export class Rooms {
  private readonly live = new Map<RoomSession, Live>();
  /** Room creation one at a time, so two requests cannot both take the last place under a cap. */
  private creating: Promise<unknown> = Promise.resolve();
  private lastSweep = 0;

  constructor(
    private readonly store: RoomStore,
    private readonly now: () => number,
    readonly limits: RoomLimits = DEFAULT_ROOM_LIMITS,
  ) {}

  /**
   * Makes a room. `createdBy`: the address of a caller without a token (it may have at most
   * roomsPerAddress live rooms), null for a token holder. Idle rooms are removed first.
   */
  create(name: string, createdBy: string | null): Promise<{ room: RoomRecord; teacherKey: string }> {
    const run = this.creating.then(async () => {
      await this.sweep(true);
      if ((await this.store.countRooms()) >= this.limits.roomsMax) {
        throw new RoomLimitError(`this coordinator has ${this.limits.roomsMax} rooms, its limit (TABGRID_ROOMS_MAX); rooms idle for ${Math.round(this.limits.roomIdleMs / 3_600_000)} h are removed`);
      }
      if (createdBy !== null && (await this.store.countRooms(createdBy)) >= this.limits.roomsPerAddress) {
        throw new RoomLimitError(`this address already made ${this.limits.roomsPerAddress} rooms (TABGRID_ROOMS_PER_ADDRESS); an API token may make more`);
      }
      const teacherKey = `tk_${randomBytes(18).toString('base64url')}`;
      for (;;) {
        const code = newRoomCode();
        if (await this.store.getRoom(code)) continue; // 31^6 codes: a clash is rare, but possible
        const t = this.now();
        const room: RoomRecord = { code, name, teacherKeyHash: hashTeacherKey(teacherKey), paused: false, createdAt: t, createdBy, lastActive: t };
        await this.store.createRoom(room);
        return { room, teacherKey };
      }
    });
    this.creating = run.catch(() => undefined);
    return run;
  }

  /**
   * Marks the rooms with members online here as used, and removes rooms idle for roomIdleMs — at
   * most every few minutes unless `force`.
   */
  async sweep(force = false) {
    const t = this.now();
    if (!force && t - this.lastSweep < SWEEP_MS) return;
    this.lastSweep = t;
    const occupied = new Set<string>();
    for (const live of this.live.values()) if (live.room) occupied.add(live.room);
    await this.store.touch([...occupied], t);
    await this.store.removeIdle(t - this.limits.roomIdleMs);
  }

  /** The room was used (a teacher's control or demo). */
  touch(room: RoomRecord) {
    return this.store.touch([room.code], this.now());
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
    this.live.set(session, { session, room: null, device: describeDevice(device), started: false, paused: false, roomPaused: false });
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

  /**
   * Null for an unknown room; throws RoomLimitError when the room is full of members that hold
   * their places (online here or credited); otherwise one that holds none makes room.
   */
  async join(session: RoomSession, code: string): Promise<RoomRecord | null> {
    const room = await this.store.getRoom(code);
    const live = this.live.get(session);
    if (!room || !live) return null;
    const online: string[] = [];
    for (const other of this.live.values()) if (other.room === code) online.push(other.session.volunteerId);
    if ((await this.store.join(code, session.volunteerId, this.now(), { maxMembers: this.limits.roomMaxMembers, online })) === 'full') {
      throw new RoomLimitError(`room ${code} is full (${this.limits.roomMaxMembers} members online or credited, TABGRID_ROOM_MAX_MEMBERS)`);
    }
    live.room = code;
    live.roomPaused = room.paused;
    if (room.paused) session.slots = 0;
    session.send({ type: 'room', code, name: room.name, paused: room.paused });
    return room;
  }

  roomOf(session: RoomSession): string | null {
    return this.live.get(session)?.room ?? null;
  }

  /**
   * A page says whether it is paused, and a speed once it computes. The speed only tells the board
   * the laptop is past starting: the figure shown is its validated credit (see snapshot).
   */
  report(session: RoomSession, gflops: number | null, paused: boolean) {
    const live = this.live.get(session);
    if (!live) return;
    live.paused = paused;
    if (gflops !== null) live.started = true;
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

  /** The public ranking: names, credit and sizes, never the codes that let anyone join. */
  async list(): Promise<RoomListing[]> {
    await this.sweep();
    return (await this.store.listRooms()).map((r) => ({ name: r.name, createdAt: r.createdAt, credit: r.credit, members: r.members }));
  }

  /** Members whose identity was forgotten (work/identities.ts) leave their rooms. */
  removeForgotten() {
    return this.store.removeForgotten();
  }

  /** Live rooms made by this address without a token. */
  countBy(createdBy: string) {
    return this.store.countRooms(createdBy);
  }

  async snapshot(room: RoomRecord): Promise<RoomSnapshot> {
    const t = this.now();
    const members = await this.store.members(room.code, t - SPEED_WINDOW_MS);
    const online = new Map<string, Live>();
    for (const live of this.live.values()) if (live.room === room.code) online.set(live.session.volunteerId, live);
    let gflops = 0;
    const memberList = members.map((m) => {
      const live = online.get(m.volunteerId);
      // Validated FLOPs credited over the last minute, per second; null while its page is starting
      // (connected, no speed reported, nothing credited in that minute).
      const speed = Math.max(0, m.recent) / (SPEED_WINDOW_MS / 1000) / 1e9;
      gflops += speed;
      return {
        volunteerId: m.volunteerId,
        name: m.name,
        device: live?.device ?? null,
        online: !!live,
        paused: live ? live.paused || room.paused : false,
        gflops: live && !live.started && speed === 0 ? null : speed,
        units: m.units,
        credit: m.credit,
      };
    });
    return {
      ...Rooms.summary(room, members),
      ts: t,
      gflops,
      memberList,
    };
  }
}
