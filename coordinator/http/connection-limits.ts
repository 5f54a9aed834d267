// TCP connections per address. Node's HTTP server closes no connection that never finishes its
// request headers (nor one that sends nothing at all), and caps none per address, so one address
// could hold every file descriptor the process has. Here an address holds at most a set number of
// connections (IPv6 by its /64); the next is answered 429 and closed. Idle connections are closed by
// the server's own socket timeout (Fastify's connectionTimeout).
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import { AddressCounts } from '../access/address-key.js';

/** The answer to a connection over the cap: no request has been read, so it is written raw. */
function tooMany(max: number): string {
  const body = JSON.stringify({ error: { code: 'rate_limited', message: `too many open connections from this address (${max}, TABGRID_CONNECTIONS_PER_ADDRESS): close some and retry` } });
  return ['HTTP/1.1 429 Too Many Requests', 'content-type: application/json; charset=utf-8', `content-length: ${Buffer.byteLength(body)}`, 'connection: close', 'retry-after: 5', '', body].join('\r\n');
}

/** Caps `server`'s open connections per address at `maxPerAddress`. */
export function limitConnectionsPerAddress(server: Server, maxPerAddress: number) {
  const open = new AddressCounts();
  // Before the HTTP server's own listener: a refused connection never reaches its parser.
  server.prependListener('connection', (socket: Socket) => {
    const address = socket.remoteAddress ?? '';
    if (!open.take(address, maxPerAddress)) {
      socket.on('error', () => undefined);
      socket.end(tooMany(maxPerAddress));
      socket.destroySoon();
      return;
    }
    socket.once('close', () => open.release(address));
  });
}
