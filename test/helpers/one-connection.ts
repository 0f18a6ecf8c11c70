// A raw HTTP/1.1 client for tests that need one TCP connection to carry several requests: one after another's response (keep-alive), or all written at once (pipelined).

export interface RawResponse {
  status: number;
  head: string;
  body: string;
}

/**
 * Sends `requests` (whole request texts) on one connection to 127.0.0.1:`port` and returns the responses in order.
 * Responses are split by Content-Length (every server these tests talk to sets it). Bounded by `timeoutMs`.
 */
export async function onOneConnection(port: number, requests: string[], opts: { pipelined?: boolean; timeoutMs?: number } = {}): Promise<RawResponse[]> {
  let text = "";
  let closed = false;
  let wake = () => {};
  const sock = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: {
      data(_s, d) {
        text += Buffer.from(d).toString("latin1");
        wake();
      },
      close() {
        closed = true;
        wake();
      },
      error() {
        closed = true;
        wake();
      },
    },
  });
  const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
  const out: RawResponse[] = [];
  /** The next complete response in `text`, removed from it. */
  const take = (): RawResponse | undefined => {
    const end = text.indexOf("\r\n\r\n");
    if (end < 0) return undefined;
    const head = text.slice(0, end);
    const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    if (!length) throw new Error(`response without Content-Length: ${head}`);
    const bodyEnd = end + 4 + Number(length[1]);
    if (text.length < bodyEnd) return undefined;
    const r = { status: Number(head.slice(9, 12)), head, body: text.slice(end + 4, bodyEnd) };
    text = text.slice(bodyEnd);
    return r;
  };
  const next = async (): Promise<RawResponse> => {
    for (;;) {
      const r = take();
      if (r) return r;
      if (closed) throw new Error(`connection closed after ${out.length} responses`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${out.length} responses`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  };
  try {
    if (opts.pipelined) {
      sock.write(requests.join(""));
      for (let i = 0; i < requests.length; i++) out.push(await next());
    } else {
      for (const req of requests) {
        sock.write(req);
        out.push(await next());
      }
    }
    return out;
  } finally {
    sock.end();
  }
}
