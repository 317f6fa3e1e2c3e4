/**
 * In-cluster programs for the personal-intercept suite, run by the Node in the echo image
 * (`node -e`, CommonJS, no dependencies), and the workstation-side WebSocket helpers they talk to.
 *
 * - `TRAFFIC_SCRIPT` sends a plan of requests into the cluster and prints one `TRAFFIC_RESULT
 *   <json>` line: HTTP/1.1 requests in pairs over a keep-alive agent of two connections (so
 *   requests with different headers share connections), a WebSocket upgrade with one frame each
 *   way, and unary gRPC calls on one HTTP/2 connection (gRPC's framing done by hand: a 5-byte
 *   prefix per message, the status in the trailers).
 * - `GRPC_APP_SCRIPT` is the gRPC app of the workload: `/test.Echo/Echo` answers `app:<request>`.
 */
import { createHash } from 'node:crypto';
import type { Socket } from 'node:net';

export interface TrafficPlan {
  /** `x-user` of each HTTP request in order ('' for none). */
  readonly http: { readonly url: string; readonly users: readonly string[] };
  readonly ws: { readonly host: string; readonly port: number; readonly user: string };
  readonly grpc: { readonly authority: string; readonly users: readonly string[] };
}

export interface TrafficResult {
  readonly http: ReadonlyArray<{ user: string; status: number; host: string }>;
  /** How many connections the HTTP requests used. */
  readonly httpConnections: number;
  readonly ws: { status: string; acceptOk: boolean; replies: string[] };
  readonly grpc: ReadonlyArray<{ user: string; status: string; message: string }>;
  readonly errors: string[];
}

export const TRAFFIC_SCRIPT = String.raw`
const http = require('node:http');
const http2 = require('node:http2');
const net = require('node:net');
const crypto = require('node:crypto');
const plan = JSON.parse(process.env.TRAFFIC_PLAN);
const errors = [];
const withTimeout = (p, what) => Promise.race([p, new Promise((_, rej) => setTimeout(() => rej(new Error(what + ': no answer within 10 s')), 10000).unref())]);

async function httpPart() {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 2 });
  const sockets = new Set();
  const one = (user) => new Promise((resolve) => {
    const headers = user ? { 'x-user': user } : {};
    const req = http.get(plan.http.url, { agent, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => {
        let host = '';
        try { host = JSON.parse(body).host; } catch (e) { host = 'unparsable: ' + body.slice(0, 80); }
        resolve({ user, status: res.statusCode, host });
      });
    });
    req.on('socket', (s) => sockets.add(s));
    req.on('error', (e) => { errors.push('http ' + user + ': ' + e.message); resolve({ user, status: 0, host: '' }); });
  });
  const out = [];
  for (let i = 0; i < plan.http.users.length; i += 2) {
    out.push(...(await withTimeout(Promise.all(plan.http.users.slice(i, i + 2).map(one)), 'http pair ' + i)));
  }
  agent.destroy();
  return { http: out, httpConnections: sockets.size };
}

function wsFrame(text) {
  const payload = Buffer.from(text);
  const mask = crypto.randomBytes(4);
  const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]));
  return Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]);
}

function wsPart() {
  return withTimeout(new Promise((resolve, reject) => {
    const key = crypto.randomBytes(16).toString('base64');
    const socket = net.connect(plan.ws.port, plan.ws.host);
    let buf = Buffer.alloc(0);
    let status = '';
    let acceptOk = false;
    const replies = [];
    socket.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      if (status === '') {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.subarray(0, end).toString('latin1');
        buf = buf.subarray(end + 4);
        status = head.split('\r\n')[0];
        const want = crypto.createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
        acceptOk = head.split('\r\n').some((l) => l.toLowerCase().startsWith('sec-websocket-accept:') && l.slice(21).trim() === want);
        socket.write(wsFrame('hello'));
      }
      while (buf.length >= 2 && buf.length >= 2 + (buf[1] & 0x7f)) {
        const len = buf[1] & 0x7f;
        replies.push(buf.subarray(2, 2 + len).toString());
        buf = buf.subarray(2 + len);
        if (replies.length === 1) socket.write(wsFrame('again'));
        if (replies.length === 2) { socket.destroy(); resolve({ status, acceptOk, replies }); }
      }
    });
    socket.on('error', reject);
    socket.write('GET /chat HTTP/1.1\r\nHost: ' + plan.ws.host + '\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      'Sec-WebSocket-Key: ' + key + '\r\nSec-WebSocket-Version: 13\r\nx-user: ' + plan.ws.user + '\r\n\r\n');
  }), 'websocket').catch((e) => { errors.push('ws: ' + e.message); return { status: '', acceptOk: false, replies: [] }; });
}

function grpcPart() {
  const session = http2.connect('http://' + plan.grpc.authority);
  session.on('error', (e) => errors.push('grpc session: ' + e.message));
  const call = (user, i) => new Promise((resolve) => {
    const headers = { ':method': 'POST', ':path': '/test.Echo/Echo', 'content-type': 'application/grpc', te: 'trailers' };
    if (user) headers['x-user'] = user;
    const req = session.request(headers);
    const msg = Buffer.from('m' + i);
    const prefix = Buffer.alloc(5);
    prefix.writeUInt32BE(msg.length, 1);
    let data = Buffer.alloc(0);
    let status = '';
    req.on('response', (h) => { if (h['grpc-status'] !== undefined) status = String(h['grpc-status']); });
    req.on('trailers', (t) => (status = String(t['grpc-status'])));
    req.on('data', (c) => (data = Buffer.concat([data, c])));
    req.on('end', () => resolve({ user, status, message: data.length >= 5 ? data.subarray(5, 5 + data.readUInt32BE(1)).toString() : '' }));
    req.on('error', (e) => { errors.push('grpc ' + user + ': ' + e.message); resolve({ user, status: 'error', message: '' }); });
    req.end(Buffer.concat([prefix, msg]));
  });
  return withTimeout(Promise.all(plan.grpc.users.map(call)), 'grpc')
    .catch((e) => { errors.push(e.message); return []; })
    .finally(() => session.close());
}

(async () => {
  const h = await httpPart();
  const ws = await wsPart();
  const grpc = await grpcPart();
  console.log('TRAFFIC_RESULT ' + JSON.stringify({ ...h, ws, grpc, errors }));
  process.exit(0);
})().catch((e) => { console.error(e); process.exit(1); });
`;

export const GRPC_APP_SCRIPT = String.raw`
const http2 = require('node:http2');
const os = require('node:os');
const server = http2.createServer();
server.on('stream', (stream, headers) => {
  let data = Buffer.alloc(0);
  stream.on('data', (c) => (data = Buffer.concat([data, c])));
  stream.on('end', () => {
    const text = data.length >= 5 ? data.subarray(5, 5 + data.readUInt32BE(1)).toString() : '';
    const reply = Buffer.from('app:' + text);
    const prefix = Buffer.alloc(5);
    prefix.writeUInt32BE(reply.length, 1);
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', 'x-host': os.hostname() }));
    stream.end(Buffer.concat([prefix, reply]));
  });
});
server.listen(50051);
process.on('SIGTERM', () => process.exit(0));
`;

/** Finds the `TRAFFIC_RESULT` line; throws, quoting the output, when there is none. */
export function parseTrafficResult(output: string): TrafficResult {
  const line = output.split('\n').find((l) => l.startsWith('TRAFFIC_RESULT '));
  if (line === undefined) throw new Error(`the traffic script printed no TRAFFIC_RESULT line; output:\n${output}`);
  return JSON.parse(line.slice('TRAFFIC_RESULT '.length)) as TrafficResult;
}

/** The Sec-WebSocket-Accept answer to a key (RFC 6455 4.2.2). */
export function websocketAccept(key: string): string {
  return createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
}

/**
 * Serves an upgraded socket as a minimal WebSocket: each masked text frame (payload under 126
 * bytes, as the traffic script sends) is answered with `<name>:<text>`.
 */
export function serveWebSocket(socket: Socket, key: string, name: string, onMessage: (text: string) => void): void {
  socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${websocketAccept(key)}\r\n\r\n`);
  let buf = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    for (;;) {
      if (buf.length < 6) return;
      const len = buf[1]! & 0x7f;
      if (buf.length < 6 + len) return;
      const mask = buf.subarray(2, 6);
      const text = Buffer.from(buf.subarray(6, 6 + len).map((b, i) => b ^ mask[i % 4]!)).toString();
      buf = buf.subarray(6 + len);
      onMessage(text);
      const reply = Buffer.from(`${name}:${text}`);
      socket.write(Buffer.concat([Buffer.from([0x81, reply.length]), reply]));
    }
  });
  socket.on('end', () => socket.end());
  socket.on('error', () => socket.destroy());
}
