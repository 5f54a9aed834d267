// What the pages share about the coordinator: the TypeScript client on the page's own origin (every
// call to the HTTP API goes through it), room codes in paths and where teacher keys are kept.
import { Grid } from '../../clients/typescript';

/** The client on this page's coordinator; `token` an API token (rooms need none). */
export function pageGrid(token: string | null = null): Grid {
  return new Grid(location.origin, token);
}

/** The room code in a path like /room/ABC234 or /board/ABC234, if any. */
export function codeFromPath(): string | null {
  const m = /^\/(?:room|board)\/([A-Za-z0-9]{1,12})\/?$/.exec(location.pathname);
  return m ? m[1].toUpperCase() : null;
}

/** Where each room's teacher key is kept in this browser (the teacher's laptop). */
export const teacherKeyItem = (code: string) => `tabgrid.teacherKey.${code}`;
