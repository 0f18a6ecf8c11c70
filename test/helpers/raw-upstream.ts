// A host-side upstream that records the exact bytes of every request and answers with exact bytes.
import type { TCPSocketListener } from "bun";

/** Between the pieces of a response sent in pieces: long enough for each to be read on its own. */
const PIECE_GAP_MS = 50;

export interface RawUpstream {
  port: number;
  /** Every request head and body as received, one entry per request (a head, then the body bytes by Content-Length). */
  requests: string[];
  stop(): void;
}

/**
 * `answer(request)` gives the response bytes for a request (its head, plus body by Content-Length;
 * chunked bodies are read to the terminating 0 chunk): a string written at once, pieces written
 * PIECE_GAP_MS apart (a response still arriving), or null to close the connection without answering.
 */
export function startRawUpstream(answer: (request: string) => string | string[] | null): RawUpstream {
  const requests: string[] = [];
  const listener: TCPSocketListener<{ buf: string }> = Bun.listen<{ buf: string }>({
    hostname: "127.0.0.1",
    port: 0,
    data: { buf: "" },
    socket: {
      open(s) {
        s.data = { buf: "" };
      },
      data(s, d) {
        s.data.buf += Buffer.from(d).toString("latin1");
        for (;;) {
          const end = s.data.buf.indexOf("\r\n\r\n");
          if (end < 0) return;
          const head = s.data.buf.slice(0, end + 4);
          const cl = /\r\ncontent-length: *(\d+)/i.exec(head);
          let total = end + 4;
          if (cl) total += Number(cl[1]);
          else if (/\r\ntransfer-encoding: *chunked/i.test(head)) {
            const z = s.data.buf.indexOf("\r\n0\r\n\r\n", end);
            if (z < 0) return;
            total = z + 7;
          }
          if (s.data.buf.length < total) return;
          const req = s.data.buf.slice(0, total);
          s.data.buf = s.data.buf.slice(total);
          requests.push(req);
          const a = answer(req);
          if (a === null) {
            s.end();
            return;
          }
          if (typeof a === "string") s.write(Buffer.from(a, "latin1"));
          else a.forEach((piece, i) => setTimeout(() => s.write(Buffer.from(piece, "latin1")), i * PIECE_GAP_MS));
        }
      },
    },
  });
  return { port: listener.port, requests, stop: () => listener.stop(true) };
}
