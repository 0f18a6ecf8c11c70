// Build: compile libnetns.c, then bundle the CLI, its worker and the library into one executable, dist/nsproxy.
import { $ } from "bun";
import { mkdirSync, statSync } from "node:fs";
import pkg from "./package.json" with { type: "json" };

const root = import.meta.dir;
const LIB = `${root}/dist/libnetns.so`;
const OUT = `${root}/dist/nsproxy`;

function newer(src: string, out: string): boolean {
  try {
    return statSync(src).mtimeMs > statSync(out).mtimeMs;
  } catch {
    return true;
  }
}

/** Step 1: the C library, with every warning an error. Skipped when already up to date. */
export async function buildNative(): Promise<string> {
  mkdirSync(`${root}/dist`, { recursive: true });
  if (newer(`${root}/libnetns.c`, LIB)) {
    const cc = process.env.CC || "cc";
    await $`${cc} -O2 -Wall -Wextra -Werror -fPIC -shared -o ${LIB} ${root}/libnetns.c`;
  }
  return LIB;
}

/** The version the binary reports: package version plus the commit, when built from a git checkout. */
async function version(): Promise<string> {
  // Not being in a git checkout (a source tarball) is normal, not a failure: the version is then bare.
  const git = await $`git -C ${root} rev-parse --short HEAD`.nothrow().quiet();
  const sha = git.exitCode === 0 ? git.stdout.toString().trim() : "";
  return sha ? `${pkg.version}+${sha}` : pkg.version;
}

/** Step 2: one executable with the worker as a second entrypoint and the library embedded. */
async function buildBinary(): Promise<void> {
  const v = await version();
  const result = await Bun.build({
    entrypoints: [`${root}/src/cli.ts`, `${root}/src/worker/worker.ts`],
    compile: { outfile: OUT },
    // Unminified: stack traces under --verbose stay readable, and the size is the runtime's anyway.
    define: { NSPROXY_BUILD_VERSION: JSON.stringify(v), "process.env.NSPROXY_COMPILED": JSON.stringify("1") },
  });
  if (!result.success) {
    for (const log of result.logs) console.error(log);
    throw new Error("bun build failed");
  }
  console.log(`built ${OUT} (${v}, ${(statSync(OUT).size / 1e6).toFixed(0)} MB)`);
}

if (import.meta.main) {
  await buildNative();
  await buildBinary();
}
