// Access log: one line per request, text or JSON, written in batches so logging never blocks the request path.

export interface AccessEntry {
  tenant: string;
  method: string;
  path: string;
  status: number;
  /** Response body bytes when the upstream declared them (Content-Length), else undefined. */
  bytes: number | undefined;
  /** Milliseconds until the response headers were ready. */
  ms: number;
}

export type AccessSink = (entry: AccessEntry) => void;

/** A sink writing to stdout, flushed every 50 ms or 64 kB, whichever comes first. */
export function stdoutAccessLog(format: "text" | "json"): AccessSink {
  let buf = "";
  let timer: ReturnType<typeof setTimeout> | undefined;
  const flush = () => {
    timer = undefined;
    if (buf) {
      process.stdout.write(buf);
      buf = "";
    }
  };
  return (e) => {
    buf += format === "json" ? `${jsonLine(e)}\n` : `${textLine(e)}\n`;
    if (buf.length > 65536) flush();
    else timer ??= setTimeout(flush, 50);
  };
}

function textLine(e: AccessEntry): string {
  const time = new Date().toISOString();
  return `${time} access tenant=${e.tenant} ${e.method} ${JSON.stringify(e.path)} ${e.status} ${e.bytes ?? "-"} ${e.ms.toFixed(1)}ms`;
}

function jsonLine(e: AccessEntry): string {
  return JSON.stringify({ time: new Date().toISOString(), type: "access", ...e, bytes: e.bytes ?? null, ms: Math.round(e.ms * 10) / 10 });
}
