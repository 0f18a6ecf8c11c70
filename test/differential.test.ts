// Differential test: our request parser (src/engine) against Node's llhttp in strict mode, over test/corpus/requests.ts.
// Each case must do what its `expect` says with our parser, and llhttp must accept/refuse alike unless the case
// declares `llhttp` (then llhttp must really do that, so every documented difference stays true).
import { describe, expect, test } from "bun:test";
import { Buffer } from "node:buffer";
import { bytesToLatin1, HEAD_BARE_LF, HEAD_MORE, scanHead, scanResume } from "../src/engine/chars.ts";
import { ChunkedScanner } from "../src/engine/chunked.ts";
import { isParseError } from "../src/engine/parse-error.ts";
import { parseRequestHead } from "../src/engine/request-head.ts";
import { type Case, cases, type Expect } from "./corpus/requests.ts";

const HARNESS = `${import.meta.dir}/corpus/llhttp-harness.cjs`;
const LIMITS = { maxHeaders: 100, maxTargetBytes: 8192 };
const MAX_HEAD_BYTES = 16384;
const NO_PROTECTED: ReadonlySet<string> = new Set();

interface Message {
  method: string;
  target: string;
  headers: number;
  body: number;
}

interface Outcome {
  /** Messages read to their end. */
  messages: Message[];
  status: Expect;
  reason?: string;
  /** Bytes left unread after the last message: a tunnel after an upgrade, or what follows a closing message. */
  rest: number;
}

// ------------------------------------------------------------------ our parser, driven the way src/engine/conn.ts drives it

/**
 * Feed `raw` to our parser in pieces of `step` bytes, as the engine gets them from a socket: the unread bytes of
 * the buffer are kept (from offset 0, as conn.ts keepRest does), a head is looked for with scanHead, parsed
 * with parseRequestHead, its body consumed by its framing, then the next pipelined head.
 */
function runOurs(raw: Uint8Array, step = raw.length): Outcome {
  const messages: Message[] = [];
  let buf: Uint8Array = Buffer.alloc(0);
  let scanned = 0;
  let consumed = 0; // bytes of `raw` handled before buf[0]
  let head: { keepAlive: boolean; upgrade: boolean } | undefined;
  let current: Message | undefined;
  // The body being read: bytes left (Content-Length), or the chunked scanner and the bytes it accepted so far.
  let left = 0;
  let chunks: ChunkedScanner | undefined;
  let chunkedBytes: number[] = [];
  let stopped = false; // the connection is not read as HTTP any more (it closes, or becomes a tunnel)

  const done = (status: Expect, reason?: string): Outcome => ({ messages, status, reason, rest: 0 });
  const advance = (n: number) => {
    buf = buf.subarray(n);
    consumed += n;
  };
  const finishMessage = () => {
    messages.push(current!);
    current = undefined;
    if (!head!.keepAlive || head!.upgrade) stopped = true;
  };

  for (let off = 0; off < raw.length; off += step) {
    const piece = raw.subarray(off, Math.min(raw.length, off + step));
    const merged = Buffer.alloc(buf.length + piece.length);
    merged.set(buf, 0);
    merged.set(piece, buf.length);
    buf = merged;
    while (!stopped && buf.length > 0) {
      if (current === undefined) {
        const headEnd = scanHead(buf, scanned, buf.length);
        if (headEnd === HEAD_BARE_LF) return done(400, "bare LF");
        if (headEnd === HEAD_MORE) {
          if (buf.length > MAX_HEAD_BYTES) return done(431, "head too large");
          scanned = scanResume(scanned, buf.length);
          break;
        }
        scanned = 0;
        if (headEnd > MAX_HEAD_BYTES) return done(431, "head too large");
        const h = parseRequestHead(bytesToLatin1(buf, 0, headEnd), headEnd, LIMITS, NO_PROTECTED);
        if (isParseError(h)) return done(h.status as Expect, h.reason);
        head = h;
        current = { method: h.method, target: h.target, headers: h.fields.count, body: 0 };
        advance(headEnd);
        if (h.framing.body === "length") left = h.framing.contentLength;
        else if (h.framing.body === "chunked") {
          chunks = new ChunkedScanner();
          chunkedBytes = [];
        } else finishMessage();
      } else if (chunks) {
        const end = chunks.feed(buf, 0, buf.length);
        if (end < 0) return done(400, `invalid chunked body: ${chunks.error!.reason}`);
        for (let i = 0; i < end; i++) chunkedBytes.push(buf[i]!);
        advance(end);
        if (!chunks.done) break;
        chunks = undefined;
        current.body = chunkedDataBytes(chunkedBytes);
        finishMessage();
      } else {
        const n = Math.min(left, buf.length);
        left -= n;
        current.body += n;
        advance(n);
        if (left > 0) break;
        finishMessage();
      }
    }
    if (stopped) break;
  }
  if (stopped) return { messages, status: "ok", rest: raw.length - consumed };
  if (current !== undefined) return done("incomplete");
  // Nothing but empty lines left: the engine waits for a next request, as after any complete exchange.
  for (let i = 0; i < buf.length; i++) if (buf[i] !== (i % 2 === 0 ? 13 : 10)) return done("incomplete");
  return done(buf.length % 2 === 0 ? "ok" : "incomplete");
}

/** Data bytes of a chunked body the scanner accepted (the scanner finds the end; the comparison wants the length). */
function chunkedDataBytes(b: number[]): number {
  let p = 0;
  let total = 0;
  for (;;) {
    let size = 0;
    for (let d = HEX_DIGIT(b[p]!); d >= 0; d = HEX_DIGIT(b[++p]!)) size = size * 16 + d;
    while (b[p] !== 0x0a) p++; // extensions, CRLF
    p++;
    if (size === 0) return total;
    total += size;
    p += size + 2;
  }
}

function HEX_DIGIT(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

// ------------------------------------------------------------------ llhttp, through Node

interface LlhttpMessage {
  method: string;
  url: string;
  headers: [string, string][];
  body: number;
  trailers: number;
  upgrade: boolean;
  keepAlive: boolean;
  complete: boolean;
}
interface LlhttpResult {
  messages: LlhttpMessage[];
  error: string | null;
  rest: number;
}

const node = Bun.which("node");

function runLlhttp(all: Case[]): LlhttpResult[] {
  const input = JSON.stringify(all.map((c) => Buffer.from(c.raw, "latin1").toString("base64")));
  const p = Bun.spawnSync([node!, HARNESS], { stdin: Buffer.from(input), stdout: "pipe", stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`llhttp harness failed (${p.exitCode}): ${p.stderr.toString()}`);
  return JSON.parse(p.stdout.toString()) as LlhttpResult[];
}

/** llhttp's accept/refuse. Bytes after a message that closes the connection are HPE_CLOSED_CONNECTION to llhttp;
 * we do not read them either (the connection closes after the response), so that counts as "ok". */
function llhttpOutcome(r: LlhttpResult): "ok" | "error" | "incomplete" {
  if (r.error === null) return "ok";
  if (r.error === "incomplete") return "incomplete";
  const last = r.messages[r.messages.length - 1];
  if (r.error === "HPE_CLOSED_CONNECTION" && last?.complete && !last.keepAlive) return "ok";
  return "error";
}

function oursAsLlhttp(status: Expect): "ok" | "error" | "incomplete" {
  return status === "ok" || status === "incomplete" ? status : "error";
}

const raw = (c: Case) => Buffer.from(c.raw, "latin1");

// ------------------------------------------------------------------ the tests

describe("corpus", () => {
  test("names are unique; why is given exactly where llhttp differs; enough cases", () => {
    const names = new Set<string>();
    for (const c of cases) {
      expect(names.has(c.name), `duplicate name: ${c.name}`).toBe(false);
      names.add(c.name);
      expect(c.llhttp === undefined, `${c.name}: llhttp and why go together`).toBe(c.why === undefined);
      // Strings are bytes: no char above 0xFF.
      expect(/[^\x00-\xff]/.test(c.raw), `${c.name}: raw must be latin1`).toBe(false);
    }
    expect(cases.length).toBeGreaterThanOrEqual(120);
  });
});

describe("our parser", () => {
  for (const c of cases) {
    test(c.name, () => {
      const bytes = raw(c);
      const whole = runOurs(bytes);
      expect({ status: whole.status, reason: whole.reason }).toMatchObject({ status: c.expect });
      // The engine gets bytes as the socket gives them: any split must give the same outcome.
      for (const step of bytes.length > 4096 ? [1024, 4093] : [1, 2, 7]) {
        const split = runOurs(bytes, step);
        expect({ step, status: split.status, messages: split.messages, rest: split.rest }).toEqual({ step, status: whole.status, messages: whole.messages, rest: whole.rest });
      }
    });
  }
});

if (!node) {
  test.skip("llhttp differential: skipped because `node` is not on PATH", () => {});
} else {
  const results = runLlhttp(cases);

  describe("against llhttp", () => {
    cases.forEach((c, i) => {
      test(c.name, () => {
        const r = results[i]!;
        const theirs = llhttpOutcome(r);
        const ours = runOurs(raw(c));
        const mine = oursAsLlhttp(ours.status);
        const detail = `ours=${ours.status}${ours.reason ? ` (${ours.reason})` : ""} llhttp=${r.error ?? "ok"}`;
        if (c.llhttp !== undefined) {
          // A declared difference: llhttp must still do what the case says, and that must still differ from us.
          expect(theirs, `${c.name}: ${detail}`).toBe(c.llhttp);
          expect(theirs !== mine, `${c.name}: declared difference is gone (${detail}); drop llhttp/why`).toBe(true);
          return;
        }
        expect(theirs, `${c.name}: ${detail}`).toBe(mine);
        // Messages read to their end before the outcome: same count, and for each the same reading.
        const complete = r.messages.filter((m) => m.complete);
        expect(complete.map(summary), detail).toEqual(ours.messages.map((m) => ({ method: m.method, target: m.target, headers: m.headers, body: m.body })));
        // After an upgrade both leave the same bytes to the tunnel (after a close llhttp reports an error instead).
        if (mine === "ok" && r.error === null) expect(r.rest, `bytes after the last message: ${detail}`).toBe(ours.rest);
      });
    });

    test("summary", () => {
      // Recounted here (not tallied by the tests above) so that it holds under a -t filter too.
      let agree = 0;
      let declared = 0;
      cases.forEach((c, i) => {
        if (c.llhttp !== undefined) declared++;
        else if (llhttpOutcome(results[i]!) === oursAsLlhttp(runOurs(raw(c)).status)) agree++;
      });
      console.log(`differential: ${cases.length} cases, ${agree} agree with llhttp, ${declared} declared differences`);
      expect(agree + declared).toBe(cases.length);
    });
  });
}

function summary(m: LlhttpMessage) {
  return { method: m.method, target: m.url, headers: m.headers.length, body: m.body };
}
