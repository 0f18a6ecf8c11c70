// The read-buffer collections: one asked per MiB read, after the loop turn, never inside the read event.
import { afterEach, expect, test } from "bun:test";
import { countRead } from "./read-garbage.ts";

const gc = Bun.gc;
afterEach(() => {
  Bun.gc = gc;
});

test("asks for one collection per MiB read, after the loop turn", async () => {
  const calls: boolean[] = [];
  Bun.gc = ((force: boolean) => void calls.push(force)) as typeof Bun.gc;
  // Whatever an earlier test read is flushed first.
  countRead(1 << 20);
  await new Promise((r) => setImmediate(r));
  calls.length = 0;

  for (let i = 0; i < 8; i++) countRead(512 * 1024); // 4 MiB in one loop turn
  expect(calls).toEqual([]); // never from inside the read events
  await new Promise((r) => setImmediate(r));
  expect(calls).toEqual([false]); // one, asynchronous (no synchronous full collection)

  for (let turn = 0; turn < 4; turn++) {
    countRead(1 << 20);
    await new Promise((r) => setImmediate(r));
  }
  expect(calls).toEqual([false, false, false, false, false]);

  countRead(1000); // far below a MiB: nothing
  await new Promise((r) => setImmediate(r));
  expect(calls.length).toBe(5);
});
