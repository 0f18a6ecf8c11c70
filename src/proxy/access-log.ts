// Access log: one line per request, text or JSON, written in batches so logging never blocks the request path.
import type { Exchange } from "../engine/types.ts";

/** One line: the engine's record of an exchange (tenant, method, path, status, bytes, ms to response head). */
export type AccessEntry = Exchange;

export interface AccessSink {
  (entry: AccessEntry): void;
  /** Write what is buffered now: before the worker stops, so no line is lost. */
  flush(): void;
}

/** A sink writing to stdout, flushed every 50 ms or 64 kB, whichever comes first. */
export function stdoutAccessLog(format: "text" | "json"): AccessSink {
  return accessLog(format, (chunk) => process.stdout.write(chunk));
}

/** A sink handing its batches to `write` (stdout in the daemon; a counter in the engine micro-benchmark). */
export function accessLog(format: "text" | "json", write: (chunk: string | Uint8Array) => void): AccessSink {
  let buf = "";
  let timer: ReturnType<typeof setTimeout> | undefined;
  const flush = () => {
    timer = undefined;
    if (buf) {
      write(buf);
      buf = "";
    }
  };
  const sink = (e: AccessEntry) => {
    buf += format === "json" ? `${jsonLine(e)}\n` : `${textLine(e)}\n`;
    if (buf.length > 65536) flush();
    else timer ??= setTimeout(flush, 50);
  };
  return Object.assign(sink, {
    flush() {
      if (timer) clearTimeout(timer);
      flush();
    },
  });
}

function textLine(e: AccessEntry): string {
  const time = new Date().toISOString();
  return `${time} access ${e.direction ? `${e.direction} ` : ""}tenant=${e.tenant} ${e.method} ${JSON.stringify(e.path)} ${e.status} ${e.bytes ?? "-"} ${e.ms.toFixed(1)}ms${e.host === undefined ? "" : ` host=${e.host ? JSON.stringify(e.host) : "-"}`}`;
}

function jsonLine(e: AccessEntry): string {
  return JSON.stringify({ time: new Date().toISOString(), type: "access", ...e, bytes: e.bytes ?? null, ms: Math.round(e.ms * 10) / 10 });
}
