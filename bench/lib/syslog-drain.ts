// A syslog receiver for HAProxy's `log` lines: binds a unix datagram socket (as /dev/log is) at argv[2] and drains it.
// It counts datagrams and bytes and prints "lines BYTES" to stdout whenever the socket has been idle for 100 ms.
// Through libc because neither Bun nor node:dgram binds a unix datagram socket; recv blocks this process only.
import { AF_UNIX, libc as c, SOCK_DGRAM_CLOEXEC, SOL_SOCKET } from "./libc.ts";

const SO_RCVBUFFORCE = 33;
const SO_RCVTIMEO = 20;

const path = process.argv[2];
if (!path || path.length > 107) throw new Error("usage: bun syslog-drain.ts SOCKET_PATH (at most 107 bytes)");
const fd = c.socket(AF_UNIX, SOCK_DGRAM_CLOEXEC, 0);
if (fd < 0) throw new Error("socket(AF_UNIX, SOCK_DGRAM) failed");
// struct sockaddr_un: sa_family_t (2 bytes), then the NUL-terminated path.
const addr = new Uint8Array(110);
new DataView(addr.buffer).setUint16(0, AF_UNIX, true);
addr.set(Buffer.from(path), 2);
if (c.bind(fd, addr, 2 + path.length + 1) !== 0) throw new Error(`bind ${path} failed`);
// 8 MB: a burst while this process waits for a core is queued, not dropped (HAProxy drops a log line on EAGAIN).
const rcvbuf = new Int32Array([8 << 20]);
c.setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf, 4);
const timeout = new BigInt64Array([0n, 100_000n]); // struct timeval: 0 s, 100,000 µs
c.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, timeout, 16);

const buf = new Uint8Array(65536);
let lines = 0;
let bytes = 0;
let told = 0;
// A drain whose bench was killed outright would loop for ever: it leaves when its parent is gone, or after 2 h.
const parent = process.ppid;
const until = Date.now() + 2 * 3600_000;
console.log("ready");
console.log("lines 0 0");
for (;;) {
  const n = Number(c.recv(fd, buf, buf.length, 0));
  if (n >= 0) {
    lines++;
    bytes += n;
  } else {
    if (lines !== told) console.log(`lines ${lines} ${bytes}`);
    told = lines;
    if (process.ppid !== parent || Date.now() > until) process.exit(0);
  }
}
