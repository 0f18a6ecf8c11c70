// The only file that imports bun:ffi: libnetns.so opened with Bun's dlopen, the copy embedded in the binary by default.
import { dlopen, FFIType } from "bun:ffi";
// The library is built by build.ts (or test/preload.ts) and embedded into the compiled binary. For a release
// target build.ts resolves this import to that target's architecture's copy (dist/libnetns-arm64.so, …).
import embeddedLib from "../../../dist/libnetns.so" with { type: "file" };
import { NETNS_SYMBOLS, type NetnsSymbols } from "../ffi-symbols.ts";

/** The embedded copy ("/$bunfs/root/libnetns-….so" when compiled): Bun's dlopen writes it to $TMPDIR, then opens that. */
export const NETNS_LIB_FILE: string = embeddedLib;

const TYPES = { buffer: FFIType.ptr, i32: FFIType.i32, i64: FFIType.i64_fast } as const;

export function loadNetns(path?: string): NetnsSymbols {
  const table = Object.fromEntries(
    Object.entries(NETNS_SYMBOLS).map(([name, s]) => [name, { args: s.args.map((a) => TYPES[a]), returns: TYPES[s.returns] }]),
  );
  return dlopen(path || embeddedLib, table).symbols as unknown as NetnsSymbols;
}
