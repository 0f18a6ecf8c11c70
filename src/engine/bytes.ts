// Joining byte buffers: the one place the engine and the worker copy bytes into a new buffer.

/** `a` then `b` in one new buffer (a head that arrived in two pieces). */
export function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/** The buffers of `list` one after the other; `total` is their summed length when the caller has it. */
export function join(list: readonly Uint8Array[], total = -1): Uint8Array {
  if (total < 0) {
    total = 0;
    for (const b of list) total += b.length;
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const b of list) {
    out.set(b, at);
    at += b.length;
  }
  return out;
}
