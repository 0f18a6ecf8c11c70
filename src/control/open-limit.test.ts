// Unit test of the limit on namespace descriptors held at once: over it, takers wait, first come first served.
import { expect, test } from "bun:test";
import { OpenLimit } from "./open-limit.ts";

test("past the limit a taker waits for a place given back, in the order they came", async () => {
  const limit = new OpenLimit(1);
  const order: string[] = [];
  await limit.take();
  const b = limit.take().then(() => order.push("b"));
  const c = limit.take().then(() => order.push("c"));
  await Promise.resolve();
  expect(order).toEqual([]);
  limit.give();
  await b;
  expect(order).toEqual(["b"]);
  limit.give();
  await c;
  expect(order).toEqual(["b", "c"]);
  limit.give();
  // All places back: the next taker does not wait.
  let took = false;
  await limit.take().then(() => (took = true));
  expect(took).toBe(true);
});
