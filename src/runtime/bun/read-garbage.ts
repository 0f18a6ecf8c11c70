// Bun's fresh buffer per read, collected in step with the bytes read: what keeps a bulk transfer's memory bounded.

/**
 * Bun hands every read over in a new buffer (up to 512 kB), garbage once the engine has forwarded it.
 * At JSC's own pace the buffers of a 1 GB upload piled up between collections and the allocator kept
 * their pages: +19 to +39 MB of RSS. Asking for a collection after every MiB read keeps it to about half
 * (README, Performance). Bun.gc(false) is cheap to ask: mimalloc gathers this thread's freed pages and
 * JSC collects concurrently. It is asked once the read events of this loop turn are over (setImmediate),
 * not inside one: asked per MiB from inside the events it cost +50% CPU per GB.
 */
const COLLECT_EVERY = 1024 * 1024;

/** Bytes read since the last collection was asked for. */
let read = 0;
let asked = false;

/** Count the bytes of one read; past COLLECT_EVERY a collection is asked for after this loop turn. */
export function countRead(n: number): void {
  read += n;
  if (read < COLLECT_EVERY || asked) return;
  read = 0;
  asked = true;
  setImmediate(collect);
}

function collect(): void {
  asked = false;
  Bun.gc(false);
}
