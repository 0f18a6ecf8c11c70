// Differential-test harness: runs Node's llhttp (process.binding('http_parser')) in strict request mode over raw requests.
// stdin: JSON array of base64 strings. stdout: JSON array of { messages, error, rest } (see test/differential.test.ts).
// Each message: { method, url, version, headers: [name, value][], body (bytes), trailers (count), upgrade, keepAlive, complete }.
// error: null, an llhttp code (HPE_…), or "incomplete" (the input ended inside a message); rest: bytes left after an upgrade.
// Mirrors how lib/_http_server.js drives the parser: initialize(REQUEST, resource, maxHeaderSize, kLenientNone),
// callbacks at the kOn* indices, execute(buffer) returning bytes parsed or an Error with .code.
"use strict";

// process.binding is deprecated (DEP0111): silence only that warning so stdout/stderr stay clean.
const emitWarning = process.emitWarning;
process.emitWarning = function (warning, ...args) {
  const code = typeof args[0] === "object" && args[0] !== null ? args[0].code : args[1];
  if (code === "DEP0111") return;
  return emitWarning.call(process, warning, ...args);
};
const { HTTPParser, methods, allMethods } = process.binding("http_parser");
// llhttp method codes index allMethods (QUERY is 46); `methods` is only the list of names http.request accepts.
const METHOD_NAMES = allMethods || methods;
process.emitWarning = emitWarning;

const MAX_HEADER_SIZE = 16384;

function run(raw) {
  const parser = new HTTPParser();
  const messages = [];
  let headers = [];
  let url = "";
  let current; // the message whose head is parsed and whose body is being read
  let begun = false;

  parser[HTTPParser.kOnMessageBegin] = () => {
    begun = true;
  };
  // More than 32 header pairs (or a url in pieces) arrive here before headers-complete.
  parser[HTTPParser.kOnHeaders] = (h, u) => {
    headers.push(...h);
    url += u;
  };
  parser[HTTPParser.kOnHeadersComplete] = (major, minor, h, method, u, _status, _statusMessage, upgrade, keepAlive) => {
    if (h === undefined) h = headers;
    else h = headers.concat(h);
    if (u === undefined) u = url;
    else u = url + u;
    headers = [];
    url = "";
    const pairs = [];
    for (let i = 0; i + 1 < h.length; i += 2) pairs.push([h[i], h[i + 1]]);
    current = {
      method: METHOD_NAMES[method],
      url: u,
      version: `${major}.${minor}`,
      headers: pairs,
      body: 0,
      trailers: 0,
      upgrade: Boolean(upgrade),
      keepAlive: Boolean(keepAlive),
      complete: false,
    };
    messages.push(current);
    return 0; // read the body (a server never skips a request body)
  };
  parser[HTTPParser.kOnBody] = (b, start, len) => {
    // Node 20 passes one Buffer; older versions passed (buffer, start, len).
    current.body += typeof len === "number" ? len : b.length;
  };
  parser[HTTPParser.kOnMessageComplete] = () => {
    // Trailer fields arrive through kOnHeaders (with the url again), as in _http_common.js parserOnMessageComplete.
    current.trailers = headers.length / 2;
    headers = [];
    url = "";
    current.complete = true;
    begun = false;
  };
  parser[HTTPParser.kOnExecute] = () => {};
  parser[HTTPParser.kOnTimeout] = () => {};

  parser.initialize(HTTPParser.REQUEST, {}, MAX_HEADER_SIZE, HTTPParser.kLenientNone);
  const data = Buffer.from(raw, "base64");
  let error = null;
  let rest = 0;
  const ret = parser.execute(data);
  if (ret instanceof Error) {
    error = ret.code || String(ret.message);
  } else {
    const last = messages[messages.length - 1];
    if (last && last.complete && last.upgrade) {
      // Upgrade or CONNECT: llhttp stops at the end of that message; the rest is the tunnel.
      rest = data.length - ret;
    } else if (begun || (last && !last.complete)) {
      error = "incomplete";
    } else {
      const fin = parser.finish();
      if (fin instanceof Error) error = fin.code === "HPE_INVALID_EOF_STATE" ? "incomplete" : fin.code;
    }
  }
  parser.free?.();
  return { messages, error, rest };
}

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (d) => (input += d));
process.stdin.on("end", () => {
  const cases = JSON.parse(input);
  const out = cases.map((raw) => {
    try {
      return run(raw);
    } catch (e) {
      return { messages: [], error: `harness: ${e && e.message}`, rest: 0 };
    }
  });
  process.stdout.write(JSON.stringify(out));
});
