/**
 * A lean Modbus server for the simulator and the benchmark: TCP (MBAP) and
 * RTU frames (over any byte stream: a pseudo-terminal, or TCP for RTU-over-TCP),
 * answering from SimDevices by unit id. No timer per request (modbus-serial's
 * ServerTCP defers each one, ~680 requests/s per connection).
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { handlePdu, type Reply, type SimDevice } from './device.js';
import { crc16 } from './crc.js';

export type Devices = ReadonlyMap<number, SimDevice>;

function deliver(reply: Reply, send: (pdu: Buffer) => void, drop: () => void): void {
  switch (reply.kind) {
    case 'pdu':
      send(reply.pdu);
      break;
    case 'drop':
      drop();
      break;
    case 'delay':
      setTimeout(() => deliver(reply.reply, send, drop), reply.ms);
      break;
    case 'none':
      break;
  }
}

/** Serves MBAP-framed requests on one TCP connection. */
function serveTcp(socket: Socket, devices: Devices): void {
  socket.setNoDelay(true);
  let buf: Buffer = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    while (buf.length >= 7) {
      const len = buf.readUInt16BE(4);
      if (len < 2 || len > 254) {
        socket.destroy();
        return;
      }
      if (buf.length < 6 + len) break;
      const frame = buf.subarray(0, 6 + len);
      buf = buf.subarray(6 + len);
      const tid = frame.readUInt16BE(0);
      const unit = frame[6]!;
      const dev = devices.get(unit);
      if (!dev) continue; // no such unit on this link: no answer, as a real bus would do
      deliver(
        handlePdu(dev, frame.subarray(7)),
        (pdu) => {
          if (socket.destroyed) return;
          const head = Buffer.alloc(7);
          head.writeUInt16BE(tid, 0);
          head.writeUInt16BE(0, 2);
          head.writeUInt16BE(pdu.length + 1, 4);
          head[6] = unit;
          socket.write(Buffer.concat([head, pdu]));
        },
        () => socket.destroy(),
      );
    }
  });
  socket.on('error', () => undefined);
}

/** Length of an RTU request frame starting at buf[0], or 0 when more bytes are needed. */
function rtuRequestLength(buf: Buffer): number {
  if (buf.length < 2) return 0;
  const fn = buf[1]!;
  if (fn === 15 || fn === 16) return buf.length < 7 ? 0 : 9 + buf[6]!;
  return 8;
}

/** Serves RTU-framed requests on a byte stream (a pty, or a TCP socket for RTU over TCP). Bad CRCs are ignored, as on a bus. */
export function serveRtu(stream: Duplex, devices: Devices): void {
  let buf: Buffer = Buffer.alloc(0);
  stream.on('data', (chunk: Buffer) => {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    for (;;) {
      const n = rtuRequestLength(buf);
      if (n === 0 || buf.length < n) break;
      const frame = buf.subarray(0, n);
      buf = buf.subarray(n);
      if (crc16(frame.subarray(0, n - 2)) !== frame.readUInt16LE(n - 2)) {
        buf = Buffer.alloc(0);
        break;
      }
      const dev = devices.get(frame[0]!);
      if (!dev) continue;
      deliver(
        handlePdu(dev, frame.subarray(1, n - 2)),
        (pdu) => {
          const body = Buffer.concat([Buffer.from([frame[0]!]), pdu]);
          const crc = Buffer.alloc(2);
          crc.writeUInt16LE(crc16(body));
          stream.write(Buffer.concat([body, crc]));
        },
        () => undefined,
      );
    }
  });
  stream.on('error', () => undefined);
}

export interface RunningServer {
  readonly port: number;
  close(): Promise<void>;
}

export function listenModbus(devices: Devices, opts: { host: string; port: number; framing: 'tcp' | 'rtu' }): Promise<RunningServer> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    if (opts.framing === 'tcp') serveTcp(s, devices);
    else serveRtu(s, devices);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      const addr = server.address();
      resolve({
        port: typeof addr === 'object' && addr ? addr.port : opts.port,
        close: () =>
          new Promise<void>((res) => {
            for (const s of sockets) s.destroy();
            server.close(() => res());
          }),
      });
    });
  });
}
