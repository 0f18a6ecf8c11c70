// A worker thread that enters a network namespace and stays there: what the daemon's thread check exists to catch.
import { enterNetnsRaw, openNetns } from "../../src/netns/native.ts";
import { ownThreadId } from "../../src/netns/threads.ts";

declare const self: Worker;

self.onmessage = (ev: MessageEvent<string>) => {
  const rc = enterNetnsRaw(openNetns(ev.data));
  self.postMessage({ rc, tid: ownThreadId() });
};
