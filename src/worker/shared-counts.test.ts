// Unit tests for the counters workers share: the descriptor budget and per-tenant connection caps.
import { describe, expect, test } from "bun:test";
import { EGRESS_SHARE, FD_RESERVE, INGRESS_SHARE, SharedCounts, sharedCountsBuffer } from "./shared-counts.ts";

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

  test("budget split with ingress on: ingress stops at its share, egress at its own, and neither starves the other", () => {
    const c = new SharedCounts(sharedCountsBuffer(FD_RESERVE + 1000));
    c.splitBudget(true);
    expect([c.shareOf("ingress"), c.shareOf("egress")]).toEqual([1000 * INGRESS_SHARE, 1000 * EGRESS_SHARE]);
    let ingress = 0;
    while (c.reserveFds(2, "ingress")) ingress += 2;
    expect(ingress).toBe(500);
    // The flood holds all it may: egress still gets the rest of the budget.
    let egress = 0;
    while (c.reserveFds(2, "egress")) egress += 2;
    expect(egress).toBe(500);
    c.releaseFds(500, "ingress");
    c.releaseFds(500, "egress");
    // An egress flood leaves ingress its quarter.
    egress = 0;
    while (c.reserveFds(2, "egress")) egress += 2;
    expect(egress).toBe(750);
    expect(c.reserveFds(2, "ingress")).toBe(true);
    // Without ingress listeners egress may take the whole budget.
    c.splitBudget(false);
    expect(c.shareOf("egress")).toBe(1000);
  });

  test("the limit follows what the main thread reads: a lower one refuses at once and shows the excess to shed", () => {
    const c = new SharedCounts(sharedCountsBuffer(FD_RESERVE + 1000));
    for (let i = 0; i < 300; i++) expect(c.reserveFds(2)).toBe(true);
    expect(c.excess).toBeLessThanOrEqual(0);
    c.setFdLimit(FD_RESERVE + 400);
    expect(c.fdLimit).toBe(FD_RESERVE + 400);
    expect(c.reserveFds(2)).toBe(false);
    expect(c.excess).toBe(200);
    c.releaseFds(200);
    expect(c.excess).toBe(0);
    c.setFdLimit(FD_RESERVE + 1000);
    expect(c.reserveFds(2)).toBe(true);
  });

  test("ingress and egress connections of one slot are counted apart", () => {
    const c = new SharedCounts(sharedCountsBuffer(1 << 20));
    expect([c.enter(5, 1, "ingress"), c.enter(5, 1, "ingress"), c.enter(5, 1)]).toEqual([true, false, true]);
    expect([c.open(5), c.open(5, "ingress")]).toEqual([1, 1]);
    c.leave(5, "ingress");
    expect(c.open(5, "ingress")).toBe(0);
  });
});
