// Calls to the coordinator's HTTP API from the pages; an API error becomes an Error carrying the
// server's message (and its documented code).
import { ApiError } from '../../coordinator/protocol';

export class ApiCallError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export async function api<T>(path: string, init: RequestInit & { token?: string | null; json?: unknown } = {}): Promise<Response & { data: T }> {
  const { token, json, ...rest } = init;
  const headers = new Headers(rest.headers);
  if (token) headers.set('authorization', `Bearer ${token}`);
  if (json !== undefined) headers.set('content-type', 'application/json');
  const res = await fetch(path, { ...rest, headers, body: json !== undefined ? JSON.stringify(json) : rest.body });
  if (!res.ok) {
    const body = ApiError.safeParse(await res.json().catch(() => null));
    if (body.success) throw new ApiCallError(res.status, body.data.error.code, body.data.error.message);
    throw new ApiCallError(res.status, 'internal', `HTTP ${res.status}`);
  }
  const type = res.headers.get('content-type') ?? '';
  const data = (type.includes('application/json') ? await res.json() : null) as T;
  return Object.assign(res, { data });
}

/** The room code in a path like /room/ABC234 or /board/ABC234, if any. */
export function codeFromPath(): string | null {
  const m = /^\/(?:room|board)\/([A-Za-z0-9]{1,12})\/?$/.exec(location.pathname);
  return m ? m[1].toUpperCase() : null;
}

/** Where each room's teacher key is kept in this browser (the teacher's laptop). */
export const teacherKeyItem = (code: string) => `tabgrid.teacherKey.${code}`;
