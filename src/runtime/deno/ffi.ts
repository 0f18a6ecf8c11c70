// libnetns.so opened with Deno.dlopen. Deno cannot embed a file through an import, so from source the library is
// dist/libnetns.so, built by `npm run build` (bun build.ts) or by the test preload.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { NETNS_SYMBOLS, type NetnsSymbols } from "../ffi-symbols.ts";

export const DIST_LIB = fileURLToPath(new URL("../../../dist/libnetns.so", import.meta.url));

export function loadNetns(path?: string): NetnsSymbols {
  const lib = path || DIST_LIB;
  if (!path && !existsSync(lib)) throw new Error(`${lib} is missing: build it with \`npm run build\` (or set NSPROXY_LIBNETNS to a libnetns.so)`);
  const table = Object.fromEntries(Object.entries(NETNS_SYMBOLS).map(([name, s]) => [name, { parameters: [...s.args], result: s.returns }]));
  // Plain (not nonblocking) calls: each runs on the calling thread, which is what setns needs.
  return Deno.dlopen(lib, table as Deno.ForeignLibraryInterface).symbols as unknown as NetnsSymbols;
}
