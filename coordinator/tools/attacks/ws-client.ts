// A bare worker WebSocket for the attack suite: from a chosen loopback address, with any headers,
// optionally proving a fresh identity (challenge -> hello -> welcome), keeping what the coordinator
// says and how it closes.
import { generateKeyPairSync, sign } from 'node:crypto';
import WebSocket from 'ws';
import { helloSigningMessage, PROTOCOL_VERSION, serverMessages, type ServerMessage } from '../../protocol/index.js';

export interface AttackSocket {
  ws: WebSocket;
  messages: ServerMessage[];
  /** Resolves with the close code. */
  closed: Promise<number>;
  closeCode: number | null;
  send(data: string | Uint8Array): void;
  close(): void;
}

export interface OpenOptions {
  from: string;
  headers?: Record<string, string>;
  /** Prove an identity: resolves once welcomed (or rejects when refused). */
  hello?: boolean;
  name?: string;
  adapter?: string;
}

/** The HTTP status of a refused handshake, or 101 when it opens. */
export function handshakeStatus(base: string, from: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((done) => {
    const ws = new WebSocket(base.replace(/^http/, 'ws') + '/ws', { headers, localAddress: from });
    ws.on('open', () => {
      ws.close();
      done({ status: 101, body: '' });
    });
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => done({ status: res.statusCode ?? 0, body }));
    });
    ws.on('error', () => undefined);
  });
}

export function openSocket(base: string, opts: OpenOptions): Promise<AttackSocket> {
  const ws = new WebSocket(base.replace(/^http/, 'ws') + '/ws', { headers: opts.headers, localAddress: opts.from });
  const key = generateKeyPairSync('ed25519').privateKey;
  const messages: ServerMessage[] = [];
  let resolveClosed!: (code: number) => void;
  const s: AttackSocket = {
    ws,
    messages,
    closed: new Promise((r) => (resolveClosed = r)),
    closeCode: null,
    send: (data) => {
      if (ws.readyState === ws.OPEN) ws.send(data);
    },
    close: () => ws.terminate(),
  };
  ws.on('error', () => undefined);
  ws.on('close', (code) => {
    s.closeCode = code;
    resolveClosed(code);
  });
  return new Promise((resolve, reject) => {
    ws.on('close', (code) => reject(new Error(`closed (${code}) before ${opts.hello ? 'welcome' : 'open'}`)));
    ws.on('open', () => {
      if (!opts.hello) resolve(s);
    });
    ws.on('message', (data) => {
      let batch: ServerMessage[];
      try {
        batch = serverMessages(JSON.parse(String(data)));
      } catch {
        return;
      }
      for (const msg of batch) {
        messages.push(msg);
        if (msg.type === 'challenge' && opts.hello) {
          ws.send(
            JSON.stringify({
              type: 'hello',
              protocol: PROTOCOL_VERSION,
              publicKey: String(key.export({ format: 'jwk' }).x),
              signature: sign(null, helloSigningMessage(msg.nonce), key).toString('base64url'),
              ...(opts.name ? { name: opts.name } : {}),
              device: { backend: 'webgpu', adapter: opts.adapter ?? 'attack suite', features: [] },
            }),
          );
        }
        if (msg.type === 'welcome') resolve(s);
      }
    });
  });
}
