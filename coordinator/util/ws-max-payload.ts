// A WebSocket connection's own frame cap. The ws package takes one maxPayload per server, but its
// receiver keeps the figure per connection: lowering it there caps one connection (a worker before
// its hello, a signalling socket) without touching the others.

/** Sets the largest frame `socket` (a ws WebSocket) accepts from now on; a larger one closes it with 1009, unread. */
export function setMaxPayload(socket: object, bytes: number) {
  const receiver = (socket as { _receiver?: { _maxPayload?: unknown } })._receiver;
  if (receiver && typeof receiver._maxPayload === 'number') receiver._maxPayload = bytes;
}
