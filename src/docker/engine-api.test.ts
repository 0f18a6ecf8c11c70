// Unit tests of the Engine API client against a hand-made server on a unix socket: framing split anywhere, errors named.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { EngineApiError, getJson, streamJson } from "./engine-api.ts";

const dir = mkdtempSync(`${tmpdir()}/nsproxy-engine-api-`);
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

/** A server answering every connection with `answer` (raw bytes, written in the given pieces). */
async function serve(pieces: string[], keepOpen = false): Promise<{ path: string; server: Server; sockets: Socket[] }> {
  const path = `${dir}/s${n++}.sock`;
  const sockets: Socket[] = [];
  const server = createServer((s) => {
    sockets.push(s);
    s.once("data", async () => {
      for (const p of pieces) {
        s.write(p);
        await Bun.sleep(5);
      }
      if (!keepOpen) s.end();
    });
  });
  await new Promise<void>((ok) => server.listen(path, ok));
  return { path, server, sockets };
}

describe("getJson", () => {
  test("a chunked answer split inside the size line and the CRLFs is put together", async () => {
    const { path, server } = await serve(["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "1", "2\r\n{\"Id\":\"abc\"", ",\"N\":1}\r", "\n0\r\n\r\n"], true);
    expect(await getJson(path, "/x")).toEqual({ Id: "abc", N: 1 });
    server.close();
  });

  test("a Content-Length answer ends at its length; a 404 rejects with its status and the daemon's message", async () => {
    const ok = await serve(['HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n{"a":1}'], true);
    expect(await getJson(ok.path, "/x")).toEqual({ a: 1 });
    ok.server.close();
    const nf = await serve(['HTTP/1.1 404 Not Found\r\nContent-Length: 30\r\n\r\n{"message":"No such container"}']);
    const err = await getJson(nf.path, "/containers/x/json").catch((e) => e);
    expect(err).toBeInstanceOf(EngineApiError);
    expect((err as EngineApiError).status).toBe(404);
    expect((err as Error).message).toContain("No such container");
    nf.server.close();
  });

  test("no daemon: rejects with the socket's error code", async () => {
    const err = (await getJson(`${dir}/absent.sock`, "/x").catch((e) => e)) as EngineApiError;
    expect(err.code).toBe("ENOENT");
  });
});

describe("streamJson", () => {
  test("events split across chunks arrive whole, one per line; the end of the stream resolves end", async () => {
    const lines = ['{"Action":"start","Actor":{"ID":"a"}}\n{"Act', 'ion":"die","Actor":{"ID":"a"}}\n'];
    const body = lines.map((l) => `${Buffer.byteLength(l).toString(16)}\r\n${l}\r\n`);
    const { path, server } = await serve(["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", ...body, "0\r\n\r\n"]);
    const seen: unknown[] = [];
    const x = streamJson(path, "/events", (e) => seen.push(e));
    expect(await x.head).toBe(200);
    await x.end;
    expect(seen).toEqual([{ Action: "start", Actor: { ID: "a" } }, { Action: "die", Actor: { ID: "a" } }]);
    server.close();
  });

  test("a connection cut mid-stream rejects end (the provider reconnects)", async () => {
    const { path, server, sockets } = await serve(["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "5\r\n{}\n"], true);
    const x = streamJson(path, "/events", () => {});
    await x.head;
    await Bun.sleep(30);
    for (const s of sockets) s.destroy();
    expect(await x.end.then(() => "ended", (e: Error) => e.message)).toContain("closed mid-answer");
    server.close();
  });
});
