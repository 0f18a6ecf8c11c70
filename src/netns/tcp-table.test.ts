// Unit tests of reading /proc/net/tcp{,6}: which listeners hold a port, by inode.
import { describe, expect, test } from "bun:test";
import { listenersOn, tableHost } from "./tcp-table.ts";

const HEAD = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";
const row = (local: string, st: string, inode: number) => `   0: ${local} 00000000:0000 ${st} 00000000:00000000 00:00000000 00000000     0        0 ${inode} 1 0000000000000000 100 0 0 10 0\n`;

describe("tcp table", () => {
  test("addresses are 32-bit words in the kernel's (little-endian) order", () => {
    expect(tableHost("0100007F")).toBe("127.0.0.1");
    expect(tableHost("00000000")).toBe("0.0.0.0");
    expect(tableHost("00000000000000000000000001000000")).toBe("0:0:0:0:0:0:0:1");
    expect(tableHost("0000000000000000FFFF00000100007F")).toBe("0:0:0:0:0:ffff:7f00:1");
    expect(tableHost("xyz")).toBeUndefined();
  });

  test("listening sockets on the port whose address overlaps: the same, a wildcard, [::] for IPv4 too", () => {
    const tcp = HEAD + row("0100007F:1F90", "0A", 11) + row("00000000:1F90", "0A", 12) + row("0200007F:1F90", "0A", 13) + row("0100007F:1F91", "0A", 14) + row("0100007F:1F90", "01", 15);
    expect(listenersOn(tcp, "127.0.0.1", 8080)).toEqual([11, 12]);
    expect(listenersOn(tcp, "0.0.0.0", 8080)).toEqual([11, 12, 13]);
    const tcp6 = HEAD + row("00000000000000000000000000000000:1F90", "0A", 21) + row("00000000000000000000000001000000:1F90", "0A", 22);
    expect(listenersOn(tcp6, "127.0.0.1", 8080)).toEqual([21]);
    expect(listenersOn(tcp6, "::1", 8080)).toEqual([21, 22]);
    expect(listenersOn("", "::1", 8080)).toEqual([]);
  });
});
