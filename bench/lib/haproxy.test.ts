// HAProxy's layout under a descriptor limit: one process while its 2 fds per tenant fit half the limit, else one-thread shares.
import { expect, test } from "bun:test";
import { haproxyLayout, proxyConfig } from "./haproxy.ts";

const names = (n: number) => Array.from({ length: n }, (_, i) => `ns${i}`);

test("one process of two threads while 2 fds per tenant fit half the limit (nsproxy's rule for listening in every worker)", () => {
  expect(haproxyLayout(names(1000), 20_000)).toEqual({ groups: [names(1000)], nbthread: 2 });
  expect(haproxyLayout(names(5000), 20_000).groups).toHaveLength(1);
  expect(haproxyLayout(names(10_000), Infinity).groups).toHaveLength(1);
});

test("past it, processes of one thread with an equal share each, every tenant once and in order", () => {
  const ten = haproxyLayout(names(10_000), 20_000);
  expect(ten.nbthread).toBe(1);
  expect(ten.groups.map((g) => g.length)).toEqual([5000, 5000]);
  expect(ten.groups.flat()).toEqual(names(10_000));
  expect(haproxyLayout(names(5001), 20_000).groups.map((g) => g.length)).toEqual([2501, 2500]);
});

test("the config keeps idle upstream connections however many frontends hold descriptors (else one connect per request)", () => {
  const cfg = proxyConfig(names(3), 80, 81);
  expect(cfg).toContain("\n  tune.pool-low-fd-ratio 80\n");
  expect(cfg).toContain("\n  tune.pool-high-fd-ratio 90\n");
});

test("the config carries the layout's thread count", () => {
  expect(proxyConfig(["a"], 80, 81, undefined, 1)).toContain("\n  nbthread 1\n");
  expect(proxyConfig(["a"], 80, 81)).toContain("\n  nbthread 2\n");
});
