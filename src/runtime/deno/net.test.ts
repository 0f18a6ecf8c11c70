// The shared runtime cases (../net.case.ts) against Deno's adapter. Under `deno test` this file registers them;
// under `bun test` (how the suite runs) it runs `deno test` on itself and passes when every case passed there.
import { existsSync } from "node:fs";
import { netCases } from "../net.case.ts";

if (typeof Deno !== "undefined") {
  // Loaded only here: the adapter touches Deno's globals as it loads.
  const { runtime } = await import("./runtime.ts");
  netCases((name, fn, skip) => Deno.test({ name, fn, ignore: Boolean(skip) }), runtime);
} else {
  const { expect, test } = await import("bun:test");
  const root = `${import.meta.dir}/../../..`;
  const deno = [`${root}/node_modules/@deno/linux-${process.arch}-glibc/deno`, `${root}/node_modules/deno/deno`].find((p) => existsSync(p));
  const skip = deno ? undefined : "deno is not installed (npm ci brings it as a devDependency)";
  if (skip) console.warn(`skip: the runtime cases under Deno: ${skip}`);
  (skip ? test.skip : test)(
    "the runtime cases pass under Deno (deno test)",
    async () => {
      // --no-check: Deno's type checker would read the Bun-typed sources beside this file; tsc checks them.
      const proc = Bun.spawn([deno!, "test", "-A", "--unstable-net", "--no-check", import.meta.path], {
        cwd: root,
        stdout: "pipe",
        stderr: "pipe",
        env: { ...process.env, NO_COLOR: "1" },
        // Killed before this test's own timeout, so a hung case never outlives the run.
        timeout: 110_000,
      });
      const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
      if (code !== 0) console.error(out, err);
      expect(code).toBe(0);
      // A run that registered nothing would pass too: the summary must count the cases.
      expect(out).toMatch(/ok \| [1-9]\d* passed \| 0 failed/);
    },
    120_000,
  );
}
