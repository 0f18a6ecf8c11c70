// A client run inside a tenant namespace (`ip netns exec NS bun ns-client.ts MODE …`): raw bytes, held connections, WebSocket.
// Prints one JSON line with what it saw. Every mode is bounded in time.
const [mode, host, portText, ...rest] = process.argv.slice(2);
const port = Number(portText);
const out = (x: unknown) => console.log(JSON.stringify(x));

/** Send bytes (base64), read until the server closes or `idleMs` passes with nothing new; print the reply (base64). */
async function send(b64: string, idleMs: number, pauseAfterMs: number, halfClose: boolean): Promise<void> {
  const chunks: Buffer[] = [];
  /** Closed by the server; our own end() below reports a close synchronously, which must not count. */
  let closed = false;
  let ending = false;
  let last = Date.now();
  const sock = await Bun.connect({
    hostname: host!,
    port,
    socket: {
      data(_s, d) {
        chunks.push(Buffer.from(d));
        last = Date.now();
      },
      close() {
        if (!ending) closed = true;
      },
      error() {
        if (!ending) closed = true;
      },
    },
  });
  const bytes = Buffer.from(b64, "base64");
  if (pauseAfterMs > 0) {
    // Send all but the last byte, wait, then the last one (slow client).
    sock.write(bytes.subarray(0, bytes.length - 1));
    await Bun.sleep(pauseAfterMs);
    if (!closed) sock.write(bytes.subarray(bytes.length - 1));
  } else sock.write(bytes);
  if (halfClose) sock.shutdown(); // FIN after the request; keep reading (shutdown(true) closes the reading side too)
  const started = Date.now();
  while (!closed && Date.now() - last < idleMs && Date.now() - started < 30_000) await Bun.sleep(20);
  const closedByServer = closed;
  ending = true;
  sock.end();
  out({ reply: Buffer.concat(chunks).toString("base64"), closed: closedByServer });
}

/** Open n connections, each sending `head` (a request head announcing a long body) and a few body bytes, and hold them. */
async function hold(n: number, holdMs: number, head: string): Promise<void> {
  let open = 0;
  let closedEarly = 0;
  let failed = 0;
  let refused503 = 0;
  const replies: string[] = [];
  const socks = await Promise.all(
    Array.from({ length: n }, () =>
      Bun.connect({
        hostname: host!,
        port,
        socket: {
          open() {
            open++;
          },
          data(_s, d) {
            const line = Buffer.from(d).toString("latin1").split("\r\n")[0]!;
            if (line.startsWith("HTTP/1.1 503")) refused503++;
            if (replies.length < 3) replies.push(line);
          },
          close() {
            closedEarly++;
          },
        },
      }).catch(() => {
        failed++;
        return undefined;
      }),
    ),
  );
  for (const s of socks) s?.write(head ? `${head}abc` : "");
  // Signal readiness on stderr so the test can act while the connections are held.
  console.error("HOLDING");
  await Bun.sleep(holdMs);
  for (const s of socks) s?.end();
  out({ open, closedEarly, failed, refused503, replies });
}

/** One keep-alive connection: a GET every `everyMs`, `n` times; the status of each (0: no answer). */
async function keepalive(n: number, everyMs: number): Promise<void> {
  let buf = "";
  let closed = false;
  const sock = await Bun.connect({
    hostname: host!,
    port,
    socket: {
      data(_s, d) {
        buf += Buffer.from(d).toString("latin1");
      },
      close() {
        closed = true;
      },
    },
  });
  const statuses: number[] = [];
  for (let i = 0; i < n; i++) {
    buf = "";
    if (!closed) sock.write(`GET /ka${i} HTTP/1.1\r\nHost: h\r\n\r\n`);
    const t0 = Date.now();
    while (!closed && !/\r\n\r\n/.test(buf) && Date.now() - t0 < 5000) await Bun.sleep(10);
    statuses.push(Number(/^HTTP\/1\.1 (\d{3})/.exec(buf)?.[1] ?? 0));
    if (i === 0) console.error("FIRST");
    await Bun.sleep(everyMs);
  }
  sock.end();
  out({ statuses });
}

/**
 * One connection, one request at a time (base64 each): the next is sent once the previous response is
 * complete (read by Content-Length). Prints each reply (latin1) and whether the server closed at the end.
 */
async function each(requests: string[]): Promise<void> {
  let buf = "";
  let closed = false;
  const sock = await Bun.connect({
    hostname: host!,
    port,
    socket: {
      data(_s, d) {
        buf += Buffer.from(d).toString("latin1");
      },
      close() {
        closed = true;
      },
    },
  });
  const complete = () => {
    const end = buf.indexOf("\r\n\r\n");
    const cl = /\r\ncontent-length: *(\d+)/i.exec(buf.slice(0, end + 2));
    return end >= 0 && cl !== null && buf.length >= end + 4 + Number(cl[1]);
  };
  const replies: string[] = [];
  for (const r of requests) {
    buf = "";
    if (!closed) sock.write(Buffer.from(r, "base64"));
    const t0 = Date.now();
    while (!closed && !complete() && Date.now() - t0 < 5000) await Bun.sleep(10);
    replies.push(buf);
  }
  // A close that follows the last response is seen within this wait.
  const t1 = Date.now();
  while (!closed && Date.now() - t1 < 300) await Bun.sleep(10);
  const closedByServer = closed;
  sock.end();
  out({ replies, closed: closedByServer });
}

/** WebSocket: send three messages, expect each echoed. */
async function ws(url: string): Promise<void> {
  const sock = new WebSocket(url);
  const got: string[] = [];
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("websocket timed out")), 10_000);
    sock.onopen = () => {
      for (const m of ["one", "two", "x".repeat(70_000)]) sock.send(m);
    };
    sock.onmessage = (ev) => {
      got.push(String(ev.data));
      if (got.length === 3) {
        clearTimeout(timer);
        sock.close();
        resolve();
      }
    };
    sock.onerror = () => reject(new Error("websocket error"));
  });
  out({ got: got.map((g) => (g.length > 20 ? `${g[0]}x${g.length}` : g)) });
}

if (mode === "send") await send(rest[0]!, Number(rest[1] ?? 500), Number(rest[2] ?? 0), rest[3] === "halfclose");
else if (mode === "hold") await hold(Number(rest[0]), Number(rest[1]), rest[2] ?? "");
else if (mode === "ws") await ws(host!);
else if (mode === "keepalive") await keepalive(Number(rest[0]), Number(rest[1]));
else if (mode === "each") await each(rest);
else {
  console.error(`unknown mode ${mode}`);
  process.exit(2);
}
process.exit(0);
export {};
