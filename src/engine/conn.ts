// One client connection and the upstream connection it uses: keep-alive, pipelining in order, bodies by their framing, Upgrade tunnels, backpressure, timeouts.
import { ByteWriter, concat } from "./bytes.ts";
import { bytesToLatin1, HEAD_BARE_LF, HEAD_MORE, scanHead, scanResume } from "./chars.ts";
import { ChunkedScanner } from "./chunked.ts";
import { classify, Kind, TE_OTHER, transferCodings } from "./fields.ts";
import { Leg, type LegOwner } from "./upstream-pool.ts";
import { localStat, observeDuration, Stat } from "./stats.ts";
import { isParseError } from "./parse-error.ts";
import { PAUSE_PIPELINE, Pipe } from "./pipe.ts";
import { newRequestHead, parseRequestHead, type RequestHead } from "./request-head.ts";
import { newResponseHead, parseResponseHead, type ResponseHead } from "./response-head.ts";
import { clientResponseHead, latin1, plainResponse, unchangedResponseHead, upstreamRequestHead } from "./rewrite.ts";
import type { Duplex, Env, Route } from "./types.ts";

const enum Phase {
  /** Reading a request head (or idle between requests). */
  Head,
  /** Forwarding the request body. */
  Body,
  /** Request forwarded; waiting for its response to complete. Further bytes are pipelined requests. */
  Wait,
  /** After a 101: bytes flow both ways untouched. */
  Tunnel,
  Closed,
}

/** What the sweep checks a connection against. */
const enum Timer {
  None,
  /** A fresh connection or one mid-head: request_timeout from the first byte (or from accept). */
  Head,
  /** Keep-alive between requests: idle_timeout. */
  Idle,
  Connect,
  /** Request sent, no response head yet: the tenant's upstream_timeout. */
  Response,
  /** A body moving in either direction: body_timeout since the last byte. */
  Body,
  Tunnel,
  /** Draining and idle: closed if no request comes within DRAIN_IDLE_MS. */
  Drain,
}

/** How long a draining, idle keep-alive connection may stay open for one last request. */
const DRAIN_IDLE_MS = 1000;

/**
 * Methods a request may be sent twice with (RFC 9110 §9.2.2): a stale upstream connection may have
 * received one before it closed. Any other one is retried only when none of its bytes left.
 */
const IDEMPOTENT: ReadonlySet<string> = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]);

/** Response heads may be larger than request heads (cookies); still bounded. */
const MAX_RESPONSE_HEAD = 64 * 1024;

export class ProxyConn implements LegOwner {
  private phase = Phase.Head;
  private timer = Timer.Head;
  private since: number;
  /** Bytes from the client not yet handled: buf[pos, buf.length). */
  private buf: Uint8Array | undefined;
  private pos = 0;
  private scanned = 0;
  private req: RequestHead | undefined;
  private reqLeft = 0;
  private reqChunks: ChunkedScanner | undefined;
  private reqDone = false;
  private reqStarted = 0;
  /** Ingress: the Host the current request asked for ("" for none); the access log names it, routed or not. */
  private reqHost: string | undefined;
  /** The upstream request head, kept until the first response byte for one retry on a stale connection. */
  private reqHead: Uint8Array | undefined;
  /** c2u.sent before the request head went: nothing of the request reached the upstream while it is unchanged. */
  private reqSentBefore = 0;
  /** Where upstream request heads are written, head after head (see startRequest). */
  private headOut: ByteWriter | undefined;

  /** Client to upstream: the sink is the upstream connection in use, undefined while none is open. */
  private readonly c2u: Pipe;
  /** Upstream to client: the source is the upstream connection in use. */
  private readonly u2c: Pipe;
  private leg: Leg | undefined;
  private upConnecting = false;
  private upReused = false;

  private rbuf: Uint8Array | undefined;
  private rscanned = 0;
  private res: ResponseHead | undefined;
  private resLeft = 0;
  private resChunks: ChunkedScanner | undefined;
  /** An HTTP/1.0 client's response de-chunked to the close: the data spans found in each read (see http10Response). */
  private dechunk: number[] | undefined;
  /** The current response's head was accepted from the upstream (and logged). */
  private resStarted = false;
  /** A byte of the current response was written to the client: errors can no longer be reported as a status. */
  private resFlushed = false;
  private keepClient = false;
  /** Close the client once its queue is flushed. */
  private closing = false;
  /** Stop after the current exchange (tenant detached or daemon stopping). */
  private draining = false;
  private requests = 0;
  /** The client half-closed: answer what was asked, then close. */
  private clientEnded = false;
  /** The request head and the response's field table, reused head after head (a head is only read while it is handled). */
  private reqHeadIn: RequestHead | undefined;
  private resHeadIn: ResponseHead | undefined;
  /** The current final response's head was not rebuilt: it goes as received, with the body bytes of the same read. */
  private headAsReceived = false;
  /** "X-Forwarded-For: <client>\r\n" as bytes, made on the first request: the client does not change. */
  private xffLine: Uint8Array | undefined;
  /** Whoever accepted this connection (the runtime's bookkeeping); the engine never looks at it. */
  owner: unknown;
  /**
   * upstream_proxy_protocol: the PROXY header each new upstream connection of this client connection
   * starts with (made when it opens: a TLS client's version is known by then). Such a tenant has no pool.
   */
  proxyHeader: (() => Uint8Array) | undefined;

  /**
   * Ingress listeners: the route of each request, chosen by its Host; a refusal (404 unknown host, 503
   * tenant's namespace gone) is answered by nsproxy. Undefined for a tenant's own listener.
   */
  router: ((host: string) => Route | { status: number; reason: string }) | undefined;

  constructor(
    readonly client: Duplex,
    public route: Route,
    readonly clientAddress: string,
    private readonly env: Env,
  ) {
    this.since = env.now();
    this.c2u = new Pipe(client, undefined);
    this.u2c = new Pipe(undefined, client);
  }

  /** The upstream connection in use, once open. */
  private get up(): Duplex | undefined {
    return this.c2u.sink;
  }

  // ---------------------------------------------------------------- client side

  onClientData(data: Uint8Array): void {
    this.cork();
    this.clientData(data);
    this.uncork();
  }

  private clientData(data: Uint8Array): void {
    if (this.phase === Phase.Closed) return;
    const st = this.route.stats;
    st[Stat.BytesIn] = st[Stat.BytesIn]! + data.length;
    if (this.phase === Phase.Tunnel) {
      this.since = this.env.now();
      this.sendUp(data);
      return;
    }
    if (this.buf === undefined || this.pos === this.buf.length) {
      this.buf = data;
      this.pos = 0;
    } else {
      this.buf = concat(this.buf.subarray(this.pos), data);
      this.scanned -= this.pos;
      this.pos = 0;
    }
    if (this.phase === Phase.Head && this.timer !== Timer.Head) this.setTimer(Timer.Head);
    else if (this.phase === Phase.Body) this.since = this.env.now();
    this.pump();
  }

  onClientDrain(): void {
    this.u2c.flush(); // the upstream is read again once the client took everything
    if (this.u2c.queue.length > 0 || !this.closing) return;
    this.client.end();
    this.finish();
  }

  /**
   * The client sent FIN: nothing more will come, but what it asked for is still answered (a client may
   * half-close after its request, as `nc -q` and some scripts do). Then the connection closes.
   */
  onClientEnd(): void {
    if (this.phase === Phase.Closed) return;
    this.clientEnded = true;
    if (this.phase === Phase.Wait) return; // the response is on its way; finishExchange closes after it
    if (this.phase === Phase.Head && this.buf !== undefined && this.pos < this.buf.length) {
      // Complete pipelined requests were handled as they arrived: what is left is a head that cannot end.
      this.closeClient();
      return;
    }
    this.closeClient(); // idle, mid-body (the request can never be complete), or a tunnel
  }

  /** An https:// listener's handshake failed: counted (never logged per attempt); the close follows. */
  onHandshakeFailed(why?: string): void {
    this.count(Stat.TlsHandshakeFailures);
    this.env.tlsFailed?.(this.route.tenant, this.clientAddress, why);
    this.destroy();
  }

  /** The client connection is gone (closed by either side). */
  onClientClose(): void {
    if (this.phase === Phase.Closed) return;
    this.finish();
  }

  /** Serve what is in flight, then close: used when a tenant is detached or the daemon stops. */
  drain(): void {
    this.draining = true;
    // An idle keep-alive connection is not closed at once: its client may be sending a request right
    // now, and closing under it resets that request (wrk counted 34 read errors in 68k requests over six
    // replacements). The next request is answered with "Connection: close"; a connection that stays
    // silent is closed after DRAIN_IDLE_MS.
    if (this.phase === Phase.Head && (this.buf === undefined || this.pos === this.buf.length)) this.setTimer(Timer.Drain);
  }

  /** Close now, whatever is in flight. */
  destroy(): void {
    if (this.phase === Phase.Closed) return;
    this.client.terminate();
    this.finish();
  }

  /** Trailer fields a request may not carry: the proxy's own fields and look-alikes, and framing or routing. */
  private readonly forbiddenTrailer = (name: string): boolean => {
    const k = classify(name, this.route.stamp.protectedNames);
    return k === Kind.Protected || k === Kind.Host || k === Kind.ContentLength || k === Kind.TransferEncoding || k === Kind.Connection;
  };

  /** Handle what is buffered from the client, as far as the current phase allows. */
  private pump(): void {
    for (;;) {
      const buf = this.buf;
      if (buf === undefined || this.pos >= buf.length) {
        this.buf = undefined;
        this.pos = 0;
        this.scanned = 0;
        return;
      }
      if (this.phase === Phase.Head) {
        if (!this.readHead(buf)) return;
      } else if (this.phase === Phase.Body) {
        if (!this.forwardRequestBody(buf)) return;
      } else if (this.phase === Phase.Wait) {
        // Pipelined requests wait their turn; keep at most one head's worth, then stop reading.
        if (buf.length - this.pos > this.env.limits.maxHeaderBytes) this.c2u.pause(PAUSE_PIPELINE);
        if (this.pos > 0) this.keepRest();
        return;
      } else {
        // Tunnel: whatever followed the upgrade request goes up as it is.
        const rest = buf.subarray(this.pos);
        this.buf = undefined;
        this.pos = 0;
        this.sendUp(rest);
        return;
      }
    }
  }

  /** Keep only the unhandled bytes (a view: buffers given to the engine are never reused or changed). */
  private keepRest(): void {
    const rest = this.buf!.subarray(this.pos);
    this.scanned -= this.pos;
    this.buf = rest;
    this.pos = 0;
  }

  /** Returns true when it made progress and pump should go on. */
  private readHead(buf: Uint8Array): boolean {
    const limits = this.env.limits;
    const start = this.pos;
    const from = Math.max(start, this.scanned);
    const end = scanHead(buf, from, buf.length, start);
    if (end === HEAD_BARE_LF) return this.refuse(400, "bare LF: lines must end with CRLF");
    if (end === HEAD_MORE) {
      if (buf.length - start > limits.maxHeaderBytes) return this.refuse(431, `request head larger than ${limits.maxHeaderBytes} bytes`);
      this.scanned = scanResume(from, buf.length);
      if (start > 0 || buf.length > 0) this.keepRest();
      return false;
    }
    this.scanned = 0;
    if (end - start > limits.maxHeaderBytes) return this.refuse(431, `request head larger than ${limits.maxHeaderBytes} bytes`);
    const s = bytesToLatin1(buf, start, end);
    const head = parseRequestHead(s, end - start, limits, this.route.stamp.protectedNames, (this.reqHeadIn ??= newRequestHead()));
    if (isParseError(head)) return this.refuse(head.status, head.reason);
    this.pos = end;
    return this.startRequest(buf, start, s, head);
  }

  /**
   * Ingress: the route of one request from its Host (exact name, then the longest wildcard; see
   * worker/ingress.ts). A client connection may ask for several tenants in turn: its upstream connection
   * changes with the tenant (the old one goes back to its own tenant's pool when idle).
   */
  private routeRequest(s: string, head: RequestHead): boolean {
    const f = head.fields;
    const host = head.host >= 0 ? s.slice(f.vs[head.host]!, f.ve[head.host]!) : "";
    const r = this.router!(host);
    this.reqHost = host;
    if ("status" in r) {
      // Refused, but parsed: the access log says what was asked for, and the answer speaks the client's version.
      this.req = head;
      this.reqStarted = performance.now();
      return this.refuse(r.status, r.reason);
    }
    if (r !== this.route) {
      if (this.leg) this.releaseUp();
      this.route = r;
    }
    return true;
  }

  /** `head` was parsed from `s`, the bytes of buf from `start`. */
  private startRequest(buf: Uint8Array, start: number, s: string, head: RequestHead): boolean {
    if (this.router && !this.routeRequest(s, head)) return false;
    this.req = head;
    this.requests++;
    this.reqStarted = performance.now();
    this.reqDone = false;
    this.resStarted = false;
    this.resFlushed = false;
    this.res = undefined;
    this.rbuf = undefined;
    this.rscanned = 0;
    // The previous head's buffer is written into again only once the transport is done with it: its write()
    // copies what it takes (env.writeCopies) and it took all of that head (nothing of it queued or held).
    const w = (this.headOut ??= new ByteWriter(512, 4096));
    w.begin(!this.env.writeCopies || !this.c2u.empty);
    const out = upstreamRequestHead(w, buf, start, head, this.route.stamp, (this.xffLine ??= latin1(`X-Forwarded-For: ${this.clientAddress}\r\n`)));
    this.reqHead = out;
    this.ensureUpstream();
    this.reqSentBefore = this.c2u.sent;
    this.sendUp(out);
    const f = head.framing;
    if (f.body === "length") {
      this.reqLeft = f.contentLength;
      this.phase = Phase.Body;
      this.setTimer(Timer.Body);
    } else if (f.body === "chunked") {
      this.reqChunks = new ChunkedScanner(this.forbiddenTrailer);
      this.phase = Phase.Body;
      this.setTimer(Timer.Body);
    } else this.requestSent();
    return true;
  }

  private forwardRequestBody(buf: Uint8Array): boolean {
    const avail = buf.length - this.pos;
    let end: number;
    if (this.reqChunks) {
      end = this.reqChunks.feed(buf, this.pos, buf.length);
      if (end < 0) {
        const reason = `invalid chunked request body: ${this.reqChunks.error!.reason}`;
        if (!this.resStarted) return this.refuse(400, reason);
        this.destroy();
        return false;
      }
    } else end = this.pos + Math.min(this.reqLeft, avail);
    const n = end - this.pos;
    if (n > 0) this.sendUp(end === buf.length && this.pos === 0 ? buf : buf.subarray(this.pos, end));
    this.pos = end;
    if (this.reqChunks ? this.reqChunks.done : (this.reqLeft -= n) === 0) {
      this.reqChunks = undefined;
      this.requestSent();
    }
    return true;
  }

  /** The whole request went upstream (or is queued to): now its response is awaited. */
  private requestSent(): void {
    this.reqDone = true;
    this.phase = Phase.Wait;
    if (this.res === undefined && !this.upConnecting) this.setTimer(Timer.Response);
  }

  /** Answer the client ourselves and close: refused requests, upstream failures before any response byte. */
  private refuse(status: number, reason: string, log = true): false {
    const minor = this.req?.minor ?? 1;
    this.sendClient(plainResponse(status, `nsproxy: ${reason}`, minor));
    if (log) this.logExchange(status, undefined, true);
    this.closeUp();
    this.closeClient();
    return false;
  }

  // ---------------------------------------------------------------- upstream side

  private ensureUpstream(): void {
    if (this.up || this.upConnecting) {
      this.upReused = this.up !== undefined;
      return;
    }
    // An idle connection of this tenant from an earlier client connection, if one is fresh.
    const pooled = this.route.pool?.take(this.env.now());
    if (pooled) {
      pooled.owner = this;
      this.leg = pooled;
      this.attachUp(pooled.sock);
      this.upReused = true;
      return;
    }
    this.upConnecting = true;
    this.upReused = false;
    this.setTimer(Timer.Connect);
    this.leg = new Leg(this);
    this.env.dial(this.route.upstream, this.leg);
  }

  /** The upstream connection is open (called by its Leg). */
  upOpen(_leg: Leg, sock: Duplex): void {
    if (this.phase === Phase.Closed || !this.upConnecting) {
      sock.terminate();
      return;
    }
    this.upConnecting = false;
    this.attachUp(sock);
    if (this.proxyHeader) this.c2u.unshift(this.proxyHeader());
    this.c2u.flush();
    if (this.reqDone && this.res === undefined) this.setTimer(Timer.Response);
    else if (this.phase === Phase.Body) this.setTimer(Timer.Body);
  }

  /** Bytes from the upstream (called by its Leg). */
  upData(_leg: Leg, data: Uint8Array): void {
    this.cork();
    this.upstreamData(data);
    this.uncork();
  }

  private upstreamData(data: Uint8Array): void {
    if (this.phase === Phase.Closed) return;
    if (this.phase === Phase.Tunnel) {
      this.since = this.env.now();
      this.sendClient(data);
      return;
    }
    if (this.req === undefined || (this.res !== undefined && this.resDone())) {
      // Bytes with no request to answer: the upstream is out of step. Never forward them.
      this.closeUp();
      return;
    }
    this.reqHead = undefined;
    // Offsets into the read, not views of it: chunk[0, at) is handled, and chunk[from, at) of that still
    // goes to the client as it came (a head forwarded as received goes with the body after it).
    let chunk = data;
    let at = 0;
    let from = 0;
    for (;;) {
      if (this.res === undefined) {
        if (at > 0) {
          // A final head after an interim one in the same read (rare): heads are read from offset 0.
          chunk = chunk.subarray(at);
          at = 0;
        }
        at = this.readResponseHead(chunk);
        if (at < 0) return; // head incomplete, or refused
        if ((this.phase as Phase) === Phase.Tunnel) {
          this.sendClientBytes(chunk, at, chunk.length);
          return;
        }
        if (this.res === undefined) {
          // An interim response (1xx) went to the client; the final one follows.
          if (at === chunk.length) return;
          continue;
        }
        from = this.headAsReceived ? 0 : at;
      } else from = at;
      at = this.forwardResponseBody(chunk, from, at);
      if ((this.phase as Phase) === Phase.Closed) return;
      if (!this.resDone()) return;
      // More than the framing announced: the response is delivered, the extra bytes never are, and
      // that upstream connection is not used again.
      if (at < chunk.length) this.closeUp();
      this.finishExchange();
      return;
    }
  }

  /**
   * Accumulate and parse a response head that starts at chunk[0] (or earlier, in rbuf); returns where in
   * chunk the bytes after it begin, or -1 when waiting or failed. A final head that goes as received is
   * not sent here (headAsReceived): forwardResponseBody sends it with the body bytes after it.
   */
  private readResponseHead(chunk: Uint8Array): number {
    const held = this.rbuf;
    const buf = held === undefined ? chunk : concat(held, chunk);
    const end = scanHead(buf, this.rscanned, buf.length);
    if (end === HEAD_BARE_LF) return this.badGateway("upstream sent an invalid response (bare LF)");
    if (end === HEAD_MORE) {
      if (buf.length > MAX_RESPONSE_HEAD) return this.badGateway("upstream response head too large");
      this.rbuf = buf;
      this.rscanned = scanResume(this.rscanned, buf.length);
      return -1;
    }
    this.rbuf = undefined;
    this.rscanned = 0;
    const req = this.req!;
    const s = bytesToLatin1(buf, 0, end);
    const head = parseResponseHead(s, end, req.method, 1000, (this.resHeadIn ??= newResponseHead()));
    if (isParseError(head)) return this.badGateway(`upstream sent an invalid response (${head.reason})`);
    // The head ends in chunk's bytes: what was held before was scanned and had no end.
    const rest = held === undefined ? end : end - held.length;
    // True only for a final head to an HTTP/1.1 client (below): an interim, a 101 or an HTTP/1.0 client's head is sent here.
    this.headAsReceived = false;
    if (head.status < 200 && head.status !== 101) {
      // Interim (100 Continue, 103 Early Hints): forwarded to HTTP/1.1 clients, then the real one follows.
      if (req.minor === 1) this.sendClient(clientResponseHead(buf, s, head, ""));
      this.since = this.env.now();
      return rest;
    }
    if (head.status === 101) {
      if (!req.upgrade) return this.badGateway("upstream switched protocols without an Upgrade request");
      this.res = head;
      this.resStarted = true;
      this.sendClient(clientResponseHead(buf, s, head, "upgrade"));
      this.logExchange(101, undefined);
      this.phase = Phase.Tunnel;
      this.setTimer(Timer.Tunnel);
      this.c2u.resume(PAUSE_PIPELINE);
      this.pump(); // bytes the client sent after its upgrade request
      return rest;
    }
    if (req.minor === 0) return this.http10Response(buf, s, head, chunk, rest);
    this.res = head;
    this.resStarted = true;
    this.keepClient = head.framing.body !== "close" && this.clientMayStay();
    const connection = this.keepClient ? "" : "close";
    this.headAsReceived = buf === chunk && unchangedResponseHead(head, connection);
    if (!this.headAsReceived) this.sendClient(clientResponseHead(buf, s, head, connection));
    this.logExchange(head.status, head.framing.body === "length" ? head.framing.contentLength : head.framing.body === "none" ? 0 : undefined);
    if (head.framing.body === "length") this.resLeft = head.framing.contentLength;
    else if (head.framing.body === "chunked") this.resChunks = new ChunkedScanner();
    this.setTimer(Timer.Body);
    return rest;
  }

  /** The client connection may stay open after this exchange: it asked for that, its request was read whole, and more may come. */
  private clientMayStay(): boolean {
    const more = this.buf !== undefined && this.pos < this.buf.length; // pipelined requests wait their turn
    return this.req!.keepAlive && this.reqDone && !this.draining && (!this.clientEnded || more);
  }

  /**
   * The final response to an HTTP/1.0 client, which knows no transfer coding (RFC 9112 §6.1): no
   * Transfer-Encoding field reaches it, and a chunked body is de-chunked: with a Content-Length when all
   * of it came with the head, else the chunks' data to the close of the client connection (trailers are
   * dropped). A coding besides chunked cannot be undone here: 502. The body starts at chunk[at]; returns
   * where what it used ends, or -1 when refused.
   */
  private http10Response(received: Uint8Array, s: string, head: ResponseHead, chunk: Uint8Array, at: number): number {
    const f = head.framing;
    if (f.body !== "none") {
      const te = transferCodings(s, head.fields);
      if (te & TE_OTHER) return this.badGateway(`upstream ${this.route.upstreamText} sent a transfer coding an HTTP/1.0 client cannot read`);
    }
    this.res = head;
    this.resStarted = true;
    let keep = f.body !== "close" && this.clientMayStay();
    /** The de-chunked body's length, when all of it is here. */
    let length = -1;
    let spans: number[] | undefined;
    let used = 0;
    if (f.body === "chunked") {
      const chunks = (this.resChunks = new ChunkedScanner());
      spans = [];
      used = chunks.feed(chunk, at, chunk.length, spans);
      if (used < 0) {
        this.upstreamBroken();
        return -1;
      }
      if (chunks.done) {
        length = 0;
        for (let i = 0; i < spans.length; i += 2) length += spans[i + 1]! - spans[i]!;
      } else {
        keep = false;
        this.dechunk = spans;
      }
    }
    this.keepClient = keep;
    this.sendClient(clientResponseHead(received, s, head, keep ? "keep-alive" : "close", true, length));
    this.logExchange(head.status, f.body === "length" ? f.contentLength : f.body === "none" ? 0 : length >= 0 ? length : undefined);
    if (f.body === "length") this.resLeft = f.contentLength;
    this.setTimer(Timer.Body);
    if (spans === undefined) return at;
    this.sendSpans(chunk, spans);
    return used;
  }

  /** The data of the chunks found in `buf` goes to the client; their framing does not. */
  private sendSpans(buf: Uint8Array, spans: number[]): void {
    for (let i = 0; i < spans.length; i += 2) this.sendClient(buf.subarray(spans[i]!, spans[i + 1]!));
    spans.length = 0;
  }

  /**
   * Forward the response body bytes from chunk[at]; chunk[from, at) goes before them as it came (the
   * head, when it goes as received). Returns where in chunk the body ended (chunk.length: all used).
   */
  private forwardResponseBody(chunk: Uint8Array, from: number, at: number): number {
    const f = this.res!.framing;
    this.since = this.env.now();
    let end: number;
    if (f.body === "none") end = at;
    else if (f.body === "close") end = chunk.length;
    else if (f.body === "length") {
      end = at + Math.min(this.resLeft, chunk.length - at);
      this.resLeft -= end - at;
    } else {
      end = this.resChunks!.feed(chunk, at, chunk.length, this.dechunk);
      if (end < 0) {
        this.upstreamBroken();
        return chunk.length;
      }
      if (this.dechunk !== undefined) {
        this.sendSpans(chunk, this.dechunk); // an HTTP/1.0 client's: its head was rebuilt and went already
        return end;
      }
    }
    this.sendClientBytes(chunk, from, end);
    return end;
  }

  private resDone(): boolean {
    const f = this.res!.framing;
    if (f.body === "none") return true;
    if (f.body === "length") return this.resLeft === 0;
    if (f.body === "chunked") return this.resChunks!.done;
    return false;
  }

  /** Request and response are both complete: reuse or close, then the next request. */
  private finishExchange(): void {
    if (!this.reqDone) {
      // The upstream answered before the request body was complete: this connection cannot be reused.
      this.closeUp();
      this.closeClient();
      return;
    }
    if (!this.res!.keepAlive) this.closeUp();
    this.req = undefined;
    this.res = undefined;
    this.resChunks = undefined;
    this.dechunk = undefined;
    this.reqHead = undefined;
    if (!this.keepClient) {
      this.closeClient();
      return;
    }
    this.nextRequest();
  }

  /** The exchange is over and the client connection stays: idle until its next request, or on to a pipelined one. */
  private nextRequest(): void {
    this.phase = Phase.Head;
    this.setTimer(this.draining ? Timer.Drain : Timer.Idle);
    this.c2u.resume(PAUSE_PIPELINE);
    if ((this.draining || this.clientEnded) && (this.buf === undefined || this.pos === this.buf.length)) {
      this.closeClient();
      return;
    }
    this.pump();
    if (this.clientEnded && this.phase === Phase.Head) this.closeClient();
  }

  upDrain(): void {
    this.c2u.flush();
  }

  /**
   * Done with the upstream connection: back to the tenant's pool when it is idle and healthy (the
   * exchange complete, keep-alive allowed, nothing queued), else closed.
   */
  private releaseUp(): void {
    const leg = this.leg;
    const pool = this.route.pool;
    const idle =
      leg !== undefined && this.up !== undefined && !this.upConnecting && this.req === undefined && this.phase !== Phase.Tunnel && this.c2u.empty;
    if (!idle || !pool) {
      this.closeUp();
      return;
    }
    this.leg = undefined;
    this.c2u.sink = undefined;
    this.u2c.releaseSource();
    pool.give(leg, this.env.now());
  }

  /** An upstream connection is open for this client connection (dialed, or taken from the pool). */
  private attachUp(sock: Duplex | undefined): void {
    this.c2u.sink = sock;
    this.u2c.setSource(sock);
  }

  /** The upstream connection closed or could not be made (called by its Leg, once). */
  upClosed(_leg: Leg, error?: string): void {
    const wasConnecting = this.upConnecting;
    this.upConnecting = false;
    this.c2u.sink = undefined;
    this.u2c.source = undefined; // its pause reasons stay: they apply to the next one
    this.leg = undefined;
    this.c2u.dropQueued();
    if (this.phase === Phase.Closed) return;
    if (this.phase === Phase.Tunnel) {
      this.closeClient();
      return;
    }
    if (this.req === undefined) return; // an idle upstream connection went away: the next request dials again
    if (this.res !== undefined) {
      if (this.res.framing.body === "close") {
        this.keepClient = false;
        if (this.reqDone) this.finishExchange();
        else this.closeClient();
      } else if (!this.resDone()) this.destroy(); // truncated: the client must see it was cut
      return;
    }
    // No response head yet: a reused connection the upstream closed as our request went (its keep-alive
    // timer) is retried once on a fresh one, when the request can be sent again as it was (no body) and
    // may be: RFC 9112 §9.3.1, a request the upstream may have received is replayed only when idempotent.
    if (!wasConnecting && this.upReused && this.reqHead && this.req.framing.body === "none" && this.rbuf === undefined && (IDEMPOTENT.has(this.req.method) || this.c2u.sent === this.reqSentBefore)) {
      const head = this.reqHead;
      this.upReused = false;
      this.ensureUpstream();
      this.upReused = false;
      this.sendUp(head);
      return;
    }
    if (wasConnecting) this.count(Stat.UpstreamConnectFailures);
    const reason = error ?? (wasConnecting ? "cannot connect" : "connection closed before a response");
    this.badGateway(`upstream ${this.route.upstreamText}: ${reason}`);
  }

  /** Returns -1, what the readers of a response head return when it was refused. */
  private badGateway(reason: string): -1 {
    if (this.resStarted) this.upstreamBroken(reason);
    else this.upstreamFailed(502, reason);
    return -1;
  }

  /**
   * The upstream failed before its response began (it closed, refused, timed out or sent an invalid
   * head): the client gets a 502 or 504. Its connection is still well framed when its request was read
   * whole — nothing of a response went out, and the next bytes it sends (or already pipelined) start its
   * next request — so it stays open when the client asked for that, as after any response. It closes
   * when the request body was not read to its end (where the next request starts is unknown), the client
   * asked to close or half-closed with nothing more pipelined, or the tenant is draining. Never a retry.
   * Also when the client has not taken what it was sent: an answer written here has no upstream to pause,
   * so a client pipelining requests it never reads the answers to must not make them pile up.
   */
  private upstreamFailed(status: number, reason: string): void {
    const req = this.req;
    if (req === undefined || !this.clientMayStay() || this.u2c.queue.length > 0) {
      this.refuse(status, reason);
      return;
    }
    this.closeUp(); // whatever it sends after this is never read
    this.sendClient(plainResponse(status, `nsproxy: ${reason}`, req.minor, true));
    this.logExchange(status, undefined, true);
    this.req = undefined;
    this.reqHead = undefined;
    this.rbuf = undefined;
    this.keepClient = true;
    this.nextRequest();
  }

  /**
   * The upstream broke the framing mid-response. If no byte of the response has left yet (it is still
   * gathered for this event's single write), the client gets a clean 502 instead; otherwise what it
   * has is sent, then it sees the cut.
   */
  private upstreamBroken(message = `upstream ${this.route.upstreamText} broke the response framing`): void {
    this.closeUp();
    if (!this.resFlushed) {
      this.u2c.held.length = 0;
      this.refuse(502, message);
      return;
    }
    this.keepClient = false;
    // A body delimited by the close (de-chunked for HTTP/1.0) would look complete after a FIN: reset.
    if (this.dechunk !== undefined) this.destroy();
    else this.closeClient();
  }

  // ---------------------------------------------------------------- writing with backpressure

  /**
   * While an event is handled, what goes to each side is gathered and written once at the end: a
   * response head and the body bytes that came with it leave in one send (measured: 3 sends per
   * request before, 2 after, as HAProxy).
   */
  private corked = 0;

  private cork(): void {
    this.corked++;
  }

  private uncork(): void {
    if (--this.corked > 0) return;
    this.flushPending();
  }

  private flushPending(): void {
    if (this.c2u.held.length > 0) this.c2u.release();
    if (this.u2c.held.length > 0) {
      if (this.res !== undefined) this.resFlushed = true;
      this.u2c.release();
    }
  }

  private sendUp(data: Uint8Array): void {
    if (this.corked > 0 && this.c2u.sink !== undefined && this.c2u.queue.length === 0) this.c2u.hold(data);
    else this.c2u.push(data);
  }

  /** buf[a, b) to the client: buf itself when that is all of it (no view), nothing when empty. */
  private sendClientBytes(buf: Uint8Array, a: number, b: number): void {
    if (a < b) this.sendClient(a === 0 && b === buf.length ? buf : buf.subarray(a, b));
  }

  private sendClient(data: Uint8Array): void {
    const st = this.route.stats;
    st[Stat.BytesOut] = st[Stat.BytesOut]! + data.length;
    if (this.corked > 0 && this.u2c.queue.length === 0) this.u2c.hold(data);
    else {
      if (this.res !== undefined) this.resFlushed = true;
      this.u2c.push(data);
    }
  }

  // ---------------------------------------------------------------- closing, timers, logging

  private closeUp(): void {
    const leg = this.leg;
    this.leg = undefined;
    this.c2u.sink = undefined;
    this.c2u.drop();
    this.upConnecting = false;
    this.u2c.source = undefined;
    this.u2c.paused = 0;
    leg?.kill(); // its close, reported from inside terminate(), is not news
  }

  /** Close the client once what is queued for it has gone. */
  private closeClient(): void {
    if (this.phase === Phase.Closed) return;
    if (this.u2c.held.length > 0) this.flushPending();
    this.releaseUp();
    if (this.u2c.queue.length > 0) {
      this.closing = true;
      this.timer = Timer.Body;
      this.since = this.env.now();
      this.client.pause();
      return;
    }
    this.client.end();
    this.finish();
  }

  private finish(): void {
    if (this.phase === Phase.Closed) return;
    this.phase = Phase.Closed;
    this.timer = Timer.None;
    this.releaseUp();
    this.u2c.drop();
    this.c2u.source = undefined; // a closed client is never resumed
    this.buf = undefined;
    this.env.closed?.(this);
  }

  private setTimer(t: Timer): void {
    this.timer = t;
    this.since = this.env.now();
  }

  /** Called by the worker's sweep: act on an expired timer. */
  sweep(now: number): void {
    const l = this.env.limits;
    const age = now - this.since;
    switch (this.timer) {
      case Timer.Head:
        if (age < l.requestTimeoutMs) return;
        if (this.buf !== undefined && this.buf.length > this.pos) this.refuse(408, "request head not received in time");
        else this.closeClient();
        return;
      case Timer.Idle:
        if (age >= l.idleTimeoutMs) this.closeClient();
        return;
      case Timer.Connect:
        if (age >= l.connectTimeoutMs) {
          this.count(Stat.UpstreamConnectFailures);
          this.badGateway(`upstream ${this.route.upstreamText}: connect timed out after ${l.connectTimeoutMs / 1000} s`);
        }
        return;
      case Timer.Response:
        if (age >= this.route.upstreamTimeoutMs) {
          this.count(Stat.UpstreamTimeouts);
          if (this.resStarted) this.destroy();
          else this.refuseTimeout();
        }
        return;
      case Timer.Body:
        if (age < l.bodyTimeoutMs) return;
        if (this.closing) this.destroy();
        else if (!this.resStarted && this.phase === Phase.Body) this.refuse(408, "request body stalled");
        else this.destroy();
        return;
      case Timer.Tunnel:
        if (age >= l.tunnelTimeoutMs) this.destroy();
        return;
      case Timer.Drain:
        if (age >= DRAIN_IDLE_MS) this.closeClient();
        return;
    }
  }

  private refuseTimeout(): void {
    this.upstreamFailed(504, `upstream ${this.route.upstreamText} did not answer within ${this.route.upstreamTimeoutMs / 1000} s`);
  }

  /** One request answered (by the upstream, or by nsproxy when `local`): counters, histogram, access log. */
  private logExchange(status: number, bytes: number | undefined, local = false): void {
    const st = this.route.stats;
    const k = local ? localStat(status) : Stat.Resp1xx + Math.min(4, Math.max(0, Math.floor(status / 100) - 1));
    st[k] = st[k]! + 1;
    const req = this.req;
    const ms = req ? performance.now() - this.reqStarted : 0;
    if (this.env.workerStats) observeDuration(this.env.workerStats, ms / 1000);
    const access = this.env.access;
    if (!access) return;
    // One object of one shape (absent fields undefined): no spread objects per exchange.
    access({
      direction: this.route.direction,
      tenant: this.route.tenant,
      host: this.router ? (this.reqHost ?? "") : undefined,
      method: req?.method ?? "-",
      path: req?.path ?? "-",
      status,
      bytes,
      ms,
    });
  }

  private count(k: Stat): void {
    const st = this.route.stats;
    st[k] = st[k]! + 1;
  }

  /** For tests and diagnostics. */
  get state(): string {
    return ["head", "body", "wait", "tunnel", "closed"][this.phase]!;
  }

  /** Waiting for a request head with nothing of it received: closing now loses no exchange. */
  get idle(): boolean {
    return this.phase === Phase.Head && (this.buf === undefined || this.pos === this.buf.length);
  }
}
