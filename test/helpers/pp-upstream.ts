// A raw HTTP/1.1 upstream on host loopback that expects a PROXY v2 header at the start of every connection (as a
// tenant with `upstream_proxy_protocol = "v2"` sends it), parses it with our strict parser, and answers every request
// on the connection with what it saw, as JSON:
//   { pp: {command, family, srcAddr, srcPort, dstAddr, dstPort, netns, ssl, tlvs, headerLength},
//     conn: N (1 for the first connection this upstream accepted, 2 for the next…), req: M (1, 2… on that connection),
//     method, path, headers (names lower-cased, repeats joined with ", "), bodyBytes }
// Keep-alive as HTTP/1.1 has it (closes after a request with `Connection: close`, or HTTP/1.0 without keep-alive);
// bodies by Content-Length (chunked ones are read to their terminating 0 chunk). Pipelined requests are answered in
// order. `/slow?ms=N` answers after N ms, to hold a connection busy.
// A connection that does not start with a valid header gets a 400 with {error} and is closed; the error is recorded.
import type { TCPSocketListener } from "bun";
import { type ProxyV2Parsed, type ProxyV2Tlv, parseProxyV2 } from "./proxy-v2-decode.ts";

export interface PpTlvJson {
  type: number;
  hex: string;
  /** The value as latin1 text (readable for NETNS, versions, authority). */
  text: string;
}

export interface PpJson {
  command: ProxyV2Parsed["command"];
  family: ProxyV2Parsed["family"];
  srcAddr?: string;
  srcPort?: number;
  dstAddr?: string;
  dstPort?: number;
  netns?: string;
  ssl?: { client: number; verify: number; version?: string; subTlvs: PpTlvJson[] };
  crc32c?: number;
  tlvs: PpTlvJson[];
  headerLength: number;
}

export interface PpEcho {
  pp: PpJson;
  conn: number;
  req: number;
  method: string;
  path: string;
  headers: Record<string, string>;
  bodyBytes: number;
}

export interface PpUpstream {
  port: number;
  /** The parsed header of every connection, by connection number - 1 (undefined: none complete yet, or invalid). */
  connections: (PpJson | undefined)[];
  /** Header errors, as "conn N: message". */
  errors: string[];
  /** Requests answered, over all connections. */
  requests(): number;
  /** Connections open right now. */
  open(): number;
  stop(): void;
}

const tlvJson = (t: ProxyV2Tlv): PpTlvJson => ({ type: t.type, hex: Buffer.from(t.value).toString("hex"), text: Buffer.from(t.value).toString("latin1") });

export function ppJson(p: ProxyV2Parsed): PpJson {
  return {
    command: p.command,
    family: p.family,
    srcAddr: p.srcAddr,
    srcPort: p.srcPort,
    dstAddr: p.dstAddr,
    dstPort: p.dstPort,
    netns: p.netns,
    ssl: p.ssl && { client: p.ssl.client, verify: p.ssl.verify, version: p.ssl.version, subTlvs: p.ssl.subTlvs.map(tlvJson) },
    crc32c: p.crc32c,
    tlvs: p.tlvs.map(tlvJson),
    headerLength: p.headerLength,
  };
}

interface ConnState {
  conn: number;
  buf: Buffer;
  pp?: PpJson;
  reqs: number;
  /** Answers are written in order: a slow one holds the ones behind it. */
  chain: Promise<void>;
  closing: boolean;
  closed: boolean;
}

/** A head larger than this without its end is refused (the loop stays bounded). */
const MAX_HEAD = 64 * 1024;

export function startPpUpstream(opts: { hostname?: string } = {}): PpUpstream {
  const connections: (PpJson | undefined)[] = [];
  const errors: string[] = [];
  let served = 0;
  let count = 0;
  let openNow = 0;

  const send = (s: { write(d: Uint8Array): number }, st: ConnState, status: number, body: unknown, close: boolean) => {
    if (st.closed) return;
    const json = Buffer.from(JSON.stringify(body));
    const head = `HTTP/1.1 ${status} ${status === 200 ? "OK" : "Bad Request"}\r\nContent-Type: application/json\r\nContent-Length: ${json.length}\r\n${close ? "Connection: close\r\n" : ""}\r\n`;
    s.write(Buffer.concat([Buffer.from(head, "latin1"), json]));
  };

  const listener: TCPSocketListener<ConnState> = Bun.listen<ConnState>({
    hostname: opts.hostname ?? "127.0.0.1",
    port: 0,
    data: undefined as unknown as ConnState,
    socket: {
      open(s) {
        openNow++;
        s.data = { conn: ++count, buf: Buffer.alloc(0), reqs: 0, chain: Promise.resolve(), closing: false, closed: false };
        connections.push(undefined);
      },
      close(s) {
        openNow--;
        s.data.closed = true;
      },
      data(s, d) {
        const st = s.data;
        if (st.closing) return;
        st.buf = st.buf.length ? Buffer.concat([st.buf, d]) : Buffer.from(d);
        if (!st.pp) {
          let p: ProxyV2Parsed | undefined;
          try {
            p = parseProxyV2(st.buf);
          } catch (e) {
            const msg = (e as Error).message;
            errors.push(`conn ${st.conn}: ${msg}`);
            st.closing = true;
            send(s, st, 400, { error: msg, conn: st.conn }, true);
            s.end();
            return;
          }
          if (!p) return;
          st.pp = ppJson(p);
          connections[st.conn - 1] = st.pp;
          st.buf = st.buf.subarray(p.headerLength);
        }
        for (;;) {
          const end = st.buf.indexOf("\r\n\r\n");
          if (end < 0) {
            if (st.buf.length > MAX_HEAD) {
              st.closing = true;
              send(s, st, 400, { error: "request head too large", conn: st.conn }, true);
              s.end();
            }
            return;
          }
          const head = st.buf.subarray(0, end).toString("latin1");
          const lines = head.split("\r\n");
          const [method = "", path = "", version = ""] = (lines[0] ?? "").split(" ");
          const headers: Record<string, string> = {};
          for (const l of lines.slice(1)) {
            const c = l.indexOf(":");
            if (c <= 0) continue;
            const k = l.slice(0, c).trim().toLowerCase();
            const v = l.slice(c + 1).trim();
            headers[k] = k in headers ? `${headers[k]}, ${v}` : v;
          }
          let total = end + 4;
          let bodyBytes = 0;
          if (/chunked/i.test(headers["transfer-encoding"] ?? "")) {
            // From the head's own CRLF CRLF, so that an empty body ("0\r\n\r\n" at once) is found too.
            const z = st.buf.indexOf("\r\n0\r\n\r\n", end);
            if (z < 0) return;
            total = z + 7;
            bodyBytes = total - end - 4;
          } else {
            bodyBytes = Number(headers["content-length"] ?? 0);
            total += bodyBytes;
          }
          if (st.buf.length < total) return;
          st.buf = st.buf.subarray(total);
          const conn = (headers.connection ?? "").toLowerCase();
          const close = conn.includes("close") || (version === "HTTP/1.0" && !conn.includes("keep-alive"));
          const echo: PpEcho = { pp: st.pp, conn: st.conn, req: ++st.reqs, method, path, headers, bodyBytes };
          const slow = /^\/slow\?ms=(\d+)/.exec(path);
          st.chain = st.chain.then(async () => {
            if (slow) await Bun.sleep(Math.min(Number(slow[1]), 60_000));
            served++;
            send(s, st, 200, echo, close);
            if (close && !st.closed) s.end();
          });
          if (close) {
            st.closing = true;
            return;
          }
        }
      },
    },
  });
  return {
    port: listener.port,
    connections,
    errors,
    requests: () => served,
    open: () => openNow,
    stop: () => listener.stop(true),
  };
}
