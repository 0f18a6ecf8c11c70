// What this build is: version, commit and target injected by build.ts into the compiled binary, else read in development.
import pkg from "../package.json" with { type: "json" };

declare const NSPROXY_BUILD_VERSION: string | undefined;
declare const NSPROXY_BUILD_COMMIT: string | undefined;
declare const NSPROXY_BUILD_TARGET: string | undefined;

export const VERSION: string = typeof NSPROXY_BUILD_VERSION === "string" ? NSPROXY_BUILD_VERSION : `${pkg.version}-dev`;

/** The git commit the binary was built from: "unknown" when built outside a checkout, "source" when not built. */
export const COMMIT: string = typeof NSPROXY_BUILD_COMMIT === "string" ? NSPROXY_BUILD_COMMIT || "unknown" : "source";

/** The runtime running this process, as it reports itself (in a compiled binary: the one embedded in it). */
export const RUNTIME: string = runtime();

/** The release target (linux-x64, linux-arm64-musl, …); from source, the platform and architecture. */
export const TARGET: string = typeof NSPROXY_BUILD_TARGET === "string" ? NSPROXY_BUILD_TARGET : `${process.platform}-${process.arch} (source)`;

function runtime(): string {
  const v = process.versions as Record<string, string | undefined>;
  if (v.bun) return `bun ${v.bun}`;
  if (v.deno) return `deno ${v.deno}`;
  return `node ${v.node}`;
}
