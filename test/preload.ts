// Before any test: build libnetns.so if it is missing or older than libnetns.c (the sources import it).
// After the last test file: remove what this run made, whatever a test file forgot or failed to clean.
import { afterAll } from "bun:test";
import { rmSync } from "node:fs";
import { buildNative } from "../build.ts";
import { RUN_DIR } from "./helpers/daemon.ts";
import { cleanupNetns } from "./helpers/netns.ts";

await buildNative();

afterAll(() => {
  rmSync(RUN_DIR, { recursive: true, force: true });
  cleanupNetns(`nspt-`, process.pid);
});
