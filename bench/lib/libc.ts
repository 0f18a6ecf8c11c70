// The few libc calls the bench's helper processes make (bun:ffi in this one file): namespaces, sockets, ioctls.
import { dlopen, FFIType } from "bun:ffi";

export const O_RDONLY_CLOEXEC = 0o2000000;
export const CLONE_NEWNET = 0x40000000;
export const AF_UNIX = 1;
export const AF_INET = 2;
export const SOCK_DGRAM_CLOEXEC = 2 | 0o2000000;
export const SOL_SOCKET = 1;

/** Raw symbols: pointers are Uint8Array/TypedArray views, results are returned as the C call returns them. */
export const libc = dlopen("libc.so.6", {
  open: { args: [FFIType.ptr, FFIType.i32], returns: FFIType.i32 },
  setns: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  ioctl: { args: [FFIType.i32, FFIType.u64, FFIType.ptr], returns: FFIType.i32 },
  close: { args: [FFIType.i32], returns: FFIType.i32 },
  bind: { args: [FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
  setsockopt: { args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
  recv: { args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i64 },
}).symbols;
