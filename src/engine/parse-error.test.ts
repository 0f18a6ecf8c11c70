// Every HTTP parser of the engine refuses with one shape, { status, reason, offset }: these rows compare the values.
import { describe, expect, test } from "bun:test";
import { ChunkedScanner } from "./chunked.ts";
import { parseFields } from "./fields.ts";
import { isParseError, type ParseError } from "./parse-error.ts";
import { parseRequestHead } from "./request-head.ts";
import { parseResponseHead } from "./response-head.ts";

const LIMITS = { maxHeaders: 3, maxTargetBytes: 20 };
const NONE: ReadonlySet<string> = new Set();
const request = (head: string) => parseRequestHead(head, head.length, LIMITS, NONE);
const response = (head: string) => parseResponseHead(head, head.length, "GET", 3);

describe("request heads", () => {
  const rows: [string, ParseError][] = [
    ["GET / HTTP/1.1\r\n\r\n", { status: 400, reason: "no Host field in an HTTP/1.1 request", offset: 16 }],
    [" GET / HTTP/1.1\r\nHost: a\r\n\r\n", { status: 400, reason: "invalid method", offset: 0 }],
    ["GET /#x HTTP/1.1\r\nHost: a\r\n\r\n", { status: 400, reason: "fragment (#) in the request target", offset: 5 }],
    ["GET /aaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\nHost: a\r\n\r\n", { status: 414, reason: "request target longer than 20 bytes", offset: 4 }],
    ["GET / HTTP/2.0\r\nHost: a\r\n\r\n", { status: 505, reason: "HTTP/2.0 is not supported", offset: 6 }],
    ["GET / HTTP/1.1\r\nHost : a\r\n\r\n", { status: 400, reason: "whitespace between a field name and its colon", offset: 20 }],
    ["GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", { status: 431, reason: "more than 3 fields", offset: 37 }],
    ["POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", { status: 400, reason: "both Content-Length and Transfer-Encoding", offset: 17 }],
    ["POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", { status: 501, reason: "transfer coding other than chunked", offset: 17 }],
    ["CONNECT a:1 HTTP/1.1\r\nHost: a:1\r\n\r\n", { status: 405, reason: "CONNECT is not supported", offset: 0 }],
  ];
  for (const [head, want] of rows) test(JSON.stringify(head), () => expect(request(head)).toEqual(want));

  test("a request that is accepted is not a ParseError", () => {
    expect(isParseError(request("GET / HTTP/1.1\r\nHost: a\r\n\r\n"))).toBe(false);
  });
});

describe("response heads: 502, with the refused byte", () => {
  const rows: [string, ParseError][] = [
    ["HTTP/2 200 OK\r\n\r\n", { status: 502, reason: "invalid status line", offset: 0 }],
    ["HTTP/1.1 2x0 OK\r\n\r\n", { status: 502, reason: "invalid status code", offset: 10 }],
    ["HTTP/1.1 200 O\x01K\r\n\r\n", { status: 502, reason: "control character in the reason phrase", offset: 14 }],
    ["HTTP/1.1 200 OK\r\nA\x01: 1\r\n\r\n", { status: 502, reason: "invalid character in a field name", offset: 18 }],
    ["HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n", { status: 502, reason: "invalid or several Content-Length values", offset: 17 }],
  ];
  for (const [head, want] of rows) test(JSON.stringify(head), () => expect(response(head)).toEqual(want));
});

describe("fields and chunked bodies", () => {
  test("fields: 400 for a malformed line, 431 past the limit", () => {
    const s = "A: 1\r\n B: 2\r\n\r\n";
    expect(parseFields(s, 0, s.length, 10, NONE)).toEqual({ status: 400, reason: "obs-fold or whitespace at the start of a field line", offset: 6 });
    const t = "A: 1\r\nB: 2\r\n\r\n";
    expect(parseFields(t, 0, t.length, 1, NONE)).toEqual({ status: 431, reason: "more than 1 fields", offset: 6 });
  });

  test("chunked: -1, and the error names the byte in the buffer fed", () => {
    const c = new ChunkedScanner();
    const body = new TextEncoder().encode("xx3\r\nabcX");
    expect(c.feed(body, 2, body.length)).toBe(-1);
    expect(c.error).toEqual({ status: 400, reason: "chunk data longer than its size", offset: 8 });
  });
});
