// Bulk TCP for TCP-mode tests: a deterministic byte stream, a host-side server that takes one and answers with
// another after the client's FIN, and a client script run inside a namespace (`bun tcp-stream.ts client …`).
import { createHash } from "node:crypto";
import { connect, createServer, type Server } from "node:net";

const BLOCK = 1 << 20;

/** Block i of stream `seed`: 1 MiB of pseudo-random bytes, the first 8 bytes carrying seed and index (no two blocks alike). */
function block(seed: number, i: number): Buffer {
  const b = Buffer.allocUnsafe(BLOCK);
  let x = (seed * 2654435761 + i * 40503 + 1) >>> 0;
  for (let k = 0; k < BLOCK; k += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b.writeUInt32LE(x >>> 0, k);
  }
  b.writeUInt32LE(seed, 0);
  b.writeUInt32LE(i, 4);
  return b;
}

/** The sha256 and length of `bytes` bytes of stream `seed`, computed without sending anything. */
export function expected(seed: number, bytes: number): { sha256: string; bytes: number } {
  const h = createHash("sha256");
  for (let i = 0, left = bytes; left > 0; i++, left -= BLOCK) h.update(left >= BLOCK ? block(seed, i) : block(seed, i).subarray(0, left));
  return { sha256: h.digest("hex"), bytes };
}

/** Write `bytes` bytes of stream `seed` with backpressure, then call done. */
function send(sock: ReturnType<typeof connect>, seed: number, bytes: number, done: () => void): void {
  let i = 0;
  let left = bytes;
  const more = () => {
    while (left > 0) {
      const b = left >= BLOCK ? block(seed, i) : block(seed, i).subarray(0, left);
      i++;
      left -= b.length;
      if (!sock.write(b)) return void sock.once("drain", more);
    }
    done();
  };
  more();
}

export interface Received {
  sha256: string;
  bytes: number;
}

/**
 * A server on host loopback: hashes what a connection sends until its FIN, then sends `replyBytes` of stream
 * `replySeed` and ends. `received` has one entry per finished connection.
 */
export function startSinkServer(replySeed: number, replyBytes: number): Promise<{ server: Server; port: number; received: Received[] }> {
  const received: Received[] = [];
  const server = createServer({ allowHalfOpen: true }, (sock) => {
    const h = createHash("sha256");
    let n = 0;
    sock.on("data", (d) => {
      h.update(d);
      n += d.length;
    });
    sock.on("end", () => {
      received.push({ sha256: h.digest("hex"), bytes: n });
      send(sock, replySeed, replyBytes, () => sock.end());
    });
    sock.on("error", () => {});
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve({ server, port: (server.address() as { port: number }).port, received })));
}

/** Client mode: connect, send `bytes` of stream `seed`, FIN, read until the server's FIN; print what came back as JSON. */
if (import.meta.main && process.argv[2] === "client") {
  const [host, port, seed, bytes] = [process.argv[3]!, Number(process.argv[4]), Number(process.argv[5]), Number(process.argv[6])];
  const h = createHash("sha256");
  let n = 0;
  const t0 = performance.now();
  const sock = connect({ host, port, allowHalfOpen: true }, () => send(sock, seed, bytes, () => sock.end()));
  sock.on("data", (d) => {
    h.update(d);
    n += d.length;
  });
  sock.on("end", () => {
    process.stdout.write(`${JSON.stringify({ sha256: h.digest("hex"), bytes: n, ms: performance.now() - t0 })}\n`);
    sock.destroy();
    process.exit(0);
  });
  sock.on("error", (e) => {
    process.stderr.write(`client: ${e.message}\n`);
    process.exit(1);
  });
}

/** A server on host loopback that sends back every byte it gets (and ends when the client ends). */
export function startEchoServer(): Promise<{ server: Server; port: number }> {
  const server = createServer({ allowHalfOpen: true }, (sock) => {
    sock.on("data", (d) => sock.write(d));
    sock.on("end", () => sock.end());
    sock.on("error", () => {});
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve({ server, port: (server.address() as { port: number }).port })));
}
