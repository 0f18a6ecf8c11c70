// Unit test of finding a socket's process by inode, on a listener of this very process (no root needed).
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { listenersOn } from "./tcp-table.ts";
import { socketOwner } from "./socket-owner.ts";

test("a listening socket's inode leads to the process holding it; an unknown inode to nothing", () => {
  const server = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  try {
    const inodes = listenersOn(readFileSync("/proc/self/net/tcp", "utf8"), "127.0.0.1", server.port);
    expect(inodes.length).toBe(1);
    expect(socketOwner(inodes)?.pid).toBe(process.pid);
    expect(socketOwner([1])).toBeUndefined();
    expect(socketOwner([])).toBeUndefined();
  } finally {
    server.stop(true);
  }
});
