// Unit tests for the counters workers share: the descriptor budget and per-tenant connection caps.
import { describe, expect, test } from "bun:test";
import { FD_RESERVE, SharedCounts, sharedCountsBuffer } from "./shared-counts.ts";

describe("shared counts", () => {
  test("descriptors: a reservation that would eat into the reserve is refused and takes nothing; releases give room back", () => {
    const c = new SharedCounts(sharedCountsBuffer(FD_RESERVE + 10));
    c.listeners(2);
    for (let i = 0; i < 4; i++) expect(c.reserveFds(2)).toBe(true);
    expect(c.fdsInUse).toBe(10);
    expect(c.reserveFds(2)).toBe(false);
    expect(c.fdsInUse).toBe(10);
    c.releaseFds(2);
    expect(c.reserveFds(1)).toBe(true);
    expect(c.reserveFds(2)).toBe(false);
    c.listeners(-2);
    expect(c.reserveFds(2)).toBe(true);
    expect(c.fdsInUse).toBe(9);
  });

  test("two views of one buffer (two workers) draw from one budget", () => {
    const sab = sharedCountsBuffer(FD_RESERVE + 4);
    const [a, b] = [new SharedCounts(sab), new SharedCounts(sab)];
    expect(a.reserveFds(2)).toBe(true);
    expect(b.reserveFds(2)).toBe(true);
    expect(a.reserveFds(2)).toBe(false);
    expect(b.fdLimit).toBe(FD_RESERVE + 4);
  });

  test("connections per tenant slot: enter up to the cap, then refused until one leaves", () => {
    const c = new SharedCounts(sharedCountsBuffer(1 << 20));
    expect([c.enter(3, 2), c.enter(3, 2), c.enter(3, 2)]).toEqual([true, true, false]);
    expect(c.open(3)).toBe(2);
    expect(c.enter(4, 2)).toBe(true);
    c.leave(3);
    expect(c.enter(3, 2)).toBe(true);
  });
});
