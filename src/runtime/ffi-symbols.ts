// libnetns.so's symbols, written once in a runtime-neutral form; bun/ffi.ts and deno/ffi.ts translate it to their dlopen.
// Only integers and NUL-terminated byte strings ("buffer": a Uint8Array) cross the boundary.

export const NETNS_SYMBOLS = {
  nsx_open: { args: ["buffer"], returns: "i32" },
  nsx_open_self: { args: [], returns: "i32" },
  nsx_enter: { args: ["i32"], returns: "i32" },
  nsx_fault_fail_enter: { args: ["i32"], returns: "i32" },
  nsx_close: { args: ["i32"], returns: "i32" },
  nsx_dev: { args: ["i32"], returns: "i64" },
  nsx_ino: { args: ["i32"], returns: "i64" },
  nsx_probe_bind: { args: ["buffer", "i32"], returns: "i32" },
  nsx_probe_alone: { args: ["buffer", "i32"], returns: "i32" },
  nsx_open_net_table: { args: ["i32"], returns: "i32" },
  nsx_read: { args: ["i32", "buffer", "i32"], returns: "i32" },
  nsx_migrate_req_on: { args: [], returns: "i32" },
  nsx_seccomp_install: { args: [], returns: "i32" },
  nsx_seccomp_probe: { args: ["i32"], returns: "i32" },
  nsx_connect_in: { args: ["i32", "i32", "buffer", "i32"], returns: "i32" },
  nsx_so_error: { args: ["i32"], returns: "i32" },
  nsx_route_in: { args: ["i32", "i32", "buffer", "i32"], returns: "i32" },
  nsx_exec: { args: ["buffer", "buffer", "i32", "buffer", "i32"], returns: "i32" },
  nsx_notify: { args: ["buffer", "buffer", "i32"], returns: "i32" },
  nsx_drop_exec: { args: ["i32", "i32", "buffer", "i32", "buffer", "i32", "buffer", "buffer", "i32", "buffer", "i32"], returns: "i32" },
} as const;

export type FfiArg = "buffer" | "i32";
export type FfiReturn = "i32" | "i64";
export type SymbolTable = Record<string, { readonly args: readonly FfiArg[]; readonly returns: FfiReturn }>;

type ArgOf<T extends FfiArg> = T extends "buffer" ? Uint8Array : number;
type Args<A extends readonly FfiArg[]> = { -readonly [I in keyof A]: ArgOf<A[I]> };
type Fn<S extends SymbolTable[string]> = (...args: Args<S["args"]>) => S["returns"] extends "i64" ? number | bigint : number;

/** The library's functions as JavaScript calls them. */
export type NetnsSymbols = { [K in keyof typeof NETNS_SYMBOLS]: Fn<(typeof NETNS_SYMBOLS)[K]> };
