// Unit tests for the successor's rules: which held addresses it may share, which lost tenants fail the upgrade.
import { describe, expect, test } from "bun:test";
import { lostTenants, sharedWith, socketInodes } from "./successor.ts";

describe("sharedWith", () => {
  const share = sharedWith(new Set([11, 12, 13]));
  test("an address held only by the predecessor's sockets is shared", () => {
    expect(share([11])).toBe(true);
    expect(share([12, 13])).toBe(true);
  });
  test("a stranger's socket, alone or beside the predecessor's, is refused as at any start", () => {
    expect(share([99])).toBe(false);
    expect(share([11, 99])).toBe(false);
    expect(share([])).toBe(false);
  });
  test("this process's own sockets are found by inode", () => {
    expect(socketInodes(process.pid).size).toBeGreaterThanOrEqual(0);
    expect(socketInodes(2 ** 22 + 7).size).toBe(0);
  });
});

describe("lostTenants", () => {
  test("every tenant serving before and still wanted must serve now; each loss names the tenant and its error here", () => {
    const now = new Map([
      ["a", { state: "serving" }],
      ["b", { state: "failed", error: "listen 127.0.0.1:80: EACCES" }],
    ]);
    expect(lostTenants(new Set(["a"]), now)).toEqual([]);
    expect(lostTenants(new Set(["a", "b", "c"]), now)).toEqual([
      "tenant b: serving in the running daemon, failed here: listen 127.0.0.1:80: EACCES",
    ]);
  });
});
