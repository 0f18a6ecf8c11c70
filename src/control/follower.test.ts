// Following the host: a burst of file-system events shares passes, and the last file of a burst is still seen.
import { afterEach, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import type { DesiredTenants } from "./desired.ts";
import { Follower } from "./follower.ts";
import type { Reconciler } from "./reconciler.ts";

const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanup.splice(0)) c();
});

/** A follower whose discovery pass only counts itself and the files it finds in `dir`. */
function counting(dir: string) {
  const seen = { passes: 0, files: 0 };
  const desired = {
    config: { discover: [{ dir, glob: "*" }] },
    scanDiscovery() {
      seen.passes++;
      seen.files = readdirSync(dir).length;
      return false;
    },
    scanContainers: () => false,
    dropOrphans: () => [],
    all: () => [],
  } as unknown as DesiredTenants;
  const reconciler = { tenants: new Map(), followNamespaces: async () => {}, apply: async () => ({ added: [], removed: [] }) } as unknown as Reconciler;
  const follower = new Follower(desired, reconciler);
  cleanup.push(() => follower.stop());
  return { follower, seen };
}

test.skipIf("Deno" in globalThis)("2,000 files made at once in a watched directory take a few passes, not one each, and the last is seen", async () => {
  const dir = mkdtempSync(`${tmpdir()}/nsproxy-follow-`);
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const { follower, seen } = counting(dir);
  follower.start();
  const before = seen.passes;
  for (let i = 0; i < 2000; i++) writeFileSync(`${dir}/ns-${i}`, "");
  const deadline = Date.now() + 5000;
  while (seen.files < 2000 && Date.now() < deadline) await Bun.sleep(10);
  const passes = seen.passes - before;
  console.log(`  2,000 files: ${passes} passes`);
  expect(seen.files).toBe(2000);
  // One pass per event would be 2,000 or more (each file is a create and a close event); other tests' namespaces
  // in /run/netns (watched too) and the 1 s poll add a few.
  expect(passes).toBeLessThan(200);
});
