// EXPLORE
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import type { Subprocess } from "bun";
import { daemonDir, startNsproxy, type Running } from "./helpers/daemon.ts";
import { addNetns, cleanupNetns, nsExec, skipReason, uniquePrefix } from "./helpers/netns.ts";
import { type RawUpstream, startRawUpstream } from "./helpers/raw-upstream.ts";

const prefix = uniquePrefix("hap");
const NS = `${prefix}t`;
const CLIENT = [process.execPath, `${import.meta.dir}/helpers/ns-client.ts`];
const HAP_PORT = 8080;
const NSP_PORT = 8081;

async function raw(port: number, bytes: string, idleMs = 400): Promise<{ reply: string; closed: boolean }> {
  const r = await nsExec(NS, [...CLIENT, "send", "127.0.0.1", String(port), Buffer.from(bytes, "latin1").toString("base64"), String(idleMs), "0"]);
  if (r.code !== 0) throw new Error(`ns-client failed: ${r.stderr}`);
  const o = JSON.parse(r.stdout) as { reply: string; closed: boolean };
  return { reply: Buffer.from(o.reply, "base64").toString("latin1"), closed: o.closed };
}

const RESP: Record<string, string> = {
  "/r-clcl": "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
  "/r-clte": "HTTP/1.1 200 OK\r\nContent-Length: 10\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
  "/r-lf": "HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
  "/r-fold": "HTTP/1.1 200 OK\r\nX-F: a\r\n b\r\nContent-Length: 2\r\n\r\nok",
  "/r-wsc": "HTTP/1.1 200 OK\r\nX-S : v\r\nContent-Length: 2\r\n\r\nok",
  "/r-nul": "HTTP/1.1 200 OK\r\nX-N: a\x00b\r\nContent-Length: 2\r\n\r\nok",
  "/r-status": "HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok",
  "/r-h2": "HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
  "/r-100": "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
  "/r-clbad": "HTTP/1.1 200 OK\r\nContent-Length: 2x\r\n\r\nok",
  "/r-clplus": "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok",
  "/r-hop": "HTTP/1.1 200 OK\r\nConnection: X-Secret\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\nProxy-Foo: 1\r\nContent-Length: 2\r\n\r\nok",
  "/r-badname": "HTTP/1.1 200 OK\r\nX@Y: 1\r\nContent-Length: 2\r\n\r\nok",
  "/r-te-chunked2": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
  "/r-chunk-ovf": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000003\r\nabc\r\n0\r\n\r\n",
  "/r-204body": "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
  "/r-setcl0": "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
  "/r-reasonctl": "HTTP/1.1 200 O\x01K\r\nContent-Length: 2\r\n\r\nok",
};
const answer = (req: string) => {
  const p0 = req.slice(0, req.indexOf("\n")).split(" ")[1] ?? "";
  if (RESP[p0]) return RESP[p0]!;
  if (req.includes(" /chunked ")) return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Up: 1\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
  const path = req.slice(0, req.indexOf("\r\n")).split(" ")[1] ?? "";
  return `HTTP/1.1 200 OK\r\nContent-Length: ${path.length}\r\n\r\n${path}`;
};

const SENDS: [string, string][] = [
  ["pipelined", "GET /p1 HTTP/1.1\r\nHost: h\r\n\r\nGET /p2 HTTP/1.1\r\nHost: h\r\n\r\nGET /p3 HTTP/1.1\r\nHost: h\r\n\r\n"],
  ["get body", "GET /with-body HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"],
  ["connect", "CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n"],
  ["cl+te", "POST /clte HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"],
  ["two host", "GET /twohost HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"],
  ["two host same", "GET /twohost2 HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"],
  ["no host 1.1", "GET /nohost HTTP/1.1\r\nX-A: 1\r\n\r\n"],
  ["obs-fold", "GET /fold HTTP/1.1\r\nHost: h\r\nX-Folded: a\r\n b\r\n\r\n"],
  ["ws before colon", "GET /wsc HTTP/1.1\r\nHost: h\r\nX-Sp : v\r\n\r\n"],
  ["bare lf", "GET /lf HTTP/1.1\nHost: h\n\n"],
  ["lookalike", "GET /la HTTP/1.1\r\nHost: h\r\nX_Nsproxy_Tenant: evil\r\nx-nsproxy_tenant: root\r\nX_Forwarded_For: 6.6.6.6\r\nX-Other_Name: kept\r\n\r\n"],
  ["spoof", "GET /spoof HTTP/1.1\r\nHost: h\r\nX-Nsproxy-Tenant: evil\r\nx-nsproxy-tenant: evil2\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n"],
  ["absolute", "GET http://elsewhere.example/abs?q=1 HTTP/1.1\r\nHost: x\r\n\r\n"],
  ["absolute2", "GET http://elsewhere.example:81/abs?q=1 HTTP/1.1\r\nHost: elsewhere.example:81\r\n\r\n"],
  ["h2.0", "GET /h2 HTTP/2.0\r\nHost: h\r\n\r\n"],
  ["chunked body", "POST /chunked-up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n"],
  ["no ct", "GET /chunked HTTP/1.1\r\nHost: h\r\n\r\n"],
  ["frag", "GET /p#frag HTTP/1.1\r\nHost: h\r\n\r\n"],
  ["badchars", "GET /a\"b<c>{d}|e\\f^g`h HTTP/1.1\r\nHost: h\r\n\r\n"],
  ["highbyte target", "GET /caf\xe9 HTTP/1.1\r\nHost: h\r\n\r\n"],
  ["options *", "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"],
  ["abs no host", "GET http://e.example/p HTTP/1.1\r\n\r\n"],
  ["abs host case", "GET http://E.example/p HTTP/1.1\r\nHost: e.example\r\n\r\n"],
  ["abs https", "GET https://h/p HTTP/1.1\r\nHost: h\r\n\r\n"],
  ["abs userinfo", "GET http://u@h/p HTTP/1.1\r\nHost: h\r\n\r\n"],
  ["abs 1.0 nohost", "GET http://e.example/p HTTP/1.0\r\n\r\n"],
  ["abs 1.0 host mismatch", "GET http://e.example/p HTTP/1.0\r\nHost: x\r\n\r\n"],
  ["host space", "GET /hs HTTP/1.1\r\nHost: a b\r\n\r\n"],
  ["host userinfo", "GET /hu HTTP/1.1\r\nHost: u@h\r\n\r\n"],
  ["host badport", "GET /hp HTTP/1.1\r\nHost: h:abc\r\n\r\n"],
  ["host empty", "GET /he HTTP/1.1\r\nHost:\r\n\r\n"],
  ["cl dup equal", "POST /cldup HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"],
  ["cl list", "POST /cllist HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\nhello"],
  ["cl plus", "POST /clplus HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\nhello"],
  ["cl diff", "POST /cldiff HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"],
  ["te chunked chunked", "POST /tecc HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"],
  ["te gzip chunked", "POST /tegc HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"],
  ["te chunked gzip", "POST /tecg HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n3\r\nabc\r\n0\r\n\r\n"],
  ["te 1.0", "POST /te10 HTTP/1.0\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"],
  ["chunk ovf", "POST /ovf HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000003\r\nabc\r\n0\r\n\r\n"],
  ["chunk ws", "POST /cws HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\n"],
  ["conn names stamp", "GET /cns HTTP/1.1\r\nHost: h\r\nConnection: X-Nsproxy-Tenant, X-Forwarded-For, X-Drop\r\nX-Drop: 1\r\n\r\n"],
  ["lower method", "get /lm HTTP/1.1\r\nHost: h\r\n\r\n"],
  ["bad method", "G(T /bm HTTP/1.1\r\nHost: h\r\n\r\n"],
  ["double space", "GET  /ds HTTP/1.1\r\nHost: h\r\n\r\n"],
  ["bad name", "GET /bn HTTP/1.1\r\nHost: h\r\nX@Y: 1\r\n\r\n"],
  ["highbyte name", "GET /hn HTTP/1.1\r\nHost: h\r\nX\xe9: 1\r\n\r\n"],
  ["nul value", "GET /nv HTTP/1.1\r\nHost: h\r\nX-V: a\x00b\r\n\r\n"],
  ["del value", "GET /dv HTTP/1.1\r\nHost: h\r\nX-V: a\x7fb\r\n\r\n"],
  ["highbyte value", "GET /hv HTTP/1.1\r\nHost: h\r\nX-V: caf\xe9\r\n\r\n"],
  ["empty name", "GET /en HTTP/1.1\r\nHost: h\r\n: v\r\n\r\n"],
  ["http 1.0 nohost", "GET /10 HTTP/1.0\r\n\r\n"],
  ["http 0.9", "GET /\r\n\r\n"],
  ["http 1.2", "GET /12 HTTP/1.2\r\nHost: h\r\n\r\n"],
  ["http 3.0", "GET /30 HTTP/3.0\r\nHost: h\r\n\r\n"],
  ["lower version", "GET /lv http/1.1\r\nHost: h\r\n\r\n"],
  ["hop fields", "GET /hop HTTP/1.1\r\nHost: h\r\nTE: trailers\r\nKeep-Alive: 5\r\nProxy-Authorization: Basic x\r\nProxy-Connection: keep-alive\r\nUpgrade: foo\r\n\r\n"],
  ["forwarded", "GET /fw HTTP/1.1\r\nHost: h\r\nForwarded: for=6.6.6.6\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil\r\nX-Real-IP: 6.6.6.6\r\n\r\n"],
  ["cr only", "GET /cr HTTP/1.1\rHost: h\r\n\r\n"],
  ["leading crlf", "\r\n\r\nGET /lc HTTP/1.1\r\nHost: h\r\n\r\n"],
  ["trailing ws value", "GET /tw HTTP/1.1\r\nHost: h\r\nX-T:   v  \t\r\n\r\n"],
  ["expect", "POST /exp HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok"],
  ...Object.keys(RESP).map((p): [string, string] => [`resp ${p}`, `GET ${p} HTTP/1.1\r\nHost: h\r\n\r\n`]),
];

describe.skipIf(Boolean(skipReason))("explore", () => {
  let upN: RawUpstream;
  let upH: RawUpstream;
  let daemon: Running;
  let haproxy: Subprocess | undefined;

  beforeAll(async () => {
    addNetns(NS);
    upN = startRawUpstream(answer);
    upH = startRawUpstream(answer);
    const dir = daemonDir();
    const cfg = `${dir}/haproxy.cfg`;
    writeFileSync(
      cfg,
      `global
  nbthread 1
defaults
  mode http
  timeout connect 1s
  timeout client 2s
  timeout server 2s
  timeout http-request 1s
  timeout http-keep-alive 1s
  no option http-buffer-request
frontend t
  bind 127.0.0.1:${HAP_PORT} namespace ${NS}
  http-request del-header X-Nsproxy-Tenant
  http-request set-header X-Nsproxy-Tenant ${NS}
  http-request del-header forwarded
  http-request del-header x-forwarded-for
  http-request set-header x-forwarded-proto http
  http-request set-header x-forwarded-host %[req.hdr(host)]
  option forwardfor
  default_backend up
backend up
  server up 127.0.0.1:${upH.port}
`,
    );
    haproxy = Bun.spawn(["/usr/sbin/haproxy", "-db", "-f", cfg], { stdout: "pipe", stderr: "pipe" });
    daemon = startNsproxy(["run", "-l", `127.0.0.1:${NSP_PORT}`, "-u", `http://127.0.0.1:${upN.port}`, "-n", NS, "-w", "1"]);
    await daemon.waitFor("attached 1/1");
    await Bun.sleep(500);
  });

  afterAll(async () => {
    haproxy?.kill("SIGKILL");
    await daemon?.stop("SIGKILL");
    upN?.stop();
    upH?.stop();
    cleanupNetns(prefix);
  });

  test("dump", async () => {
    for (const [name, send] of SENDS) {
      for (const [who, port, up] of [["nsproxy", NSP_PORT, upN], ["haproxy", HAP_PORT, upH]] as const) {
        const before = up.requests.length;
        const r = await raw(port, send);
        console.log(`===== ${name} / ${who} closed=${r.closed}\n--- reply:\n${JSON.stringify(r.reply)}\n--- upstream:\n${up.requests.slice(before).map((x) => JSON.stringify(x)).join("\n")}`);
      }
    }
  }, 120_000);
});
