// Notices when certificate and key files change (rewritten, renamed over, swapped by a symlink flip, removed) by polling stat().
//
// Why polling and not fs.watch: inotify watches an inode, not a path. A Kubernetes secret volume rotates by writing a
// new `..2026_11_29_xx` directory and renaming a new `..data` symlink over the old one; the watched file's inode never
// changes, so an inotify watch on it (or on its directory) stays silent. fs.watch also differs between Bun, Deno and
// Node. One stat() per file per interval follows every symlink on the path and sees what the path names now: a poll of
// 2000 files took 5-8 ms on Bun 1.4.4 (plain files / Kubernetes-style symlinks), under 1% of a core at 1 s.
//
// What changes a file's signature, and why that is enough:
//  - dev:ino is the file the path resolves to after every symlink, its own or a parent's (`..data`): a rename over it
//    or a flip to another file changes it. A flip to the very same inode is no change of content at all, so the
//    realpath would add nothing to the signature but cost (realpath of those 2000 files: another ~12 ms).
//  - size, mtime and ctime catch a rewrite in place (same inode). ctime also moves on chmod/chown: a spurious report
//    makes the consumer re-read an unchanged pair, which is harmless; a missed change is not.
//  - A path that stat() cannot follow (removed, a dangling link) gets the error code as its signature: it is reported
//    once when it goes, and again when it comes back.
//
// A change is reported at the first poll that sees it, with no wait for the file to settle: rotation must take effect
// within 2 s, and one interval of detection plus one of settling plus the re-attach would not fit. A reader that
// catches a writer midway (half a file, a new certificate with the old key) fails to load, keeps the old pair, and
// the writer's next write moves size or mtime again, so the next poll reports the file again and the final content is
// loaded. The signature is taken before the consumer reads, so a write after the read is never lost. (Kernels without
// fine-grained "multigrain" timestamps stamp mtime with a clock tick of a few ms: a same-size overwrite without
// truncation, split in two writes inside one tick with a poll between them, is the one change this can miss. Rotation
// tools write a new file and rename it.)
import { statSync } from "node:fs";
import { clearInterval, setInterval } from "node:timers";
import { logger } from "../log.ts";

interface Watched {
  signature: string;
  /** owner → how many times it watches this file (a combined file is a tenant's certificate and key). */
  owners: Map<string, number>;
}

export class FileWatch {
  readonly #onChange: (files: string[]) => void | Promise<void>;
  readonly #intervalMs: number;
  readonly #files = new Map<string, Watched>();
  #timer: ReturnType<typeof setInterval> | undefined;

  /** `onChange` gets every file that changed in one poll together, so a certificate and its key rotate as one. */
  constructor(onChange: (files: string[]) => void | Promise<void>, intervalMs = 1000) {
    this.#onChange = onChange;
    this.#intervalMs = intervalMs;
  }

  /** Start watching `file` for `owner`. Call it before reading the file, so a change in between is reported. */
  watch(file: string, owner: string): void {
    const w = this.#files.get(file);
    if (w) w.owners.set(owner, (w.owners.get(owner) ?? 0) + 1);
    else this.#files.set(file, { signature: signature(file), owners: new Map([[owner, 1]]) });
  }

  /** Undo one `watch(file, owner)`; the file is dropped when no owner is left. */
  unwatch(file: string, owner: string): void {
    const w = this.#files.get(file);
    const n = w?.owners.get(owner);
    if (!w || n === undefined) return;
    if (n > 1) w.owners.set(owner, n - 1);
    else w.owners.delete(owner);
    if (w.owners.size === 0) this.#files.delete(file);
  }

  /** Who watches `file`: the tenants to re-attach when it changes. */
  owners(file: string): string[] {
    return [...(this.#files.get(file)?.owners.keys() ?? [])];
  }

  get size(): number {
    return this.#files.size;
  }

  /** Stat every watched file once; return those whose signature moved since the last poll (or the watch). */
  poll(): string[] {
    const changed: string[] = [];
    for (const [file, w] of this.#files) {
      const s = signature(file);
      if (s === w.signature) continue;
      w.signature = s;
      changed.push(file);
    }
    return changed;
  }

  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => this.#tick(), this.#intervalMs);
    // The watch alone must not keep a process alive that has nothing else to do.
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #tick(): void {
    const changed = this.poll();
    if (changed.length === 0) return;
    // A throwing consumer must not stop the timer: the next rotation still has to be seen.
    const failed = (e: unknown) => logger.error(`certificate watch: handling a change of ${changed.join(", ")} failed:`, e);
    try {
      Promise.resolve(this.#onChange(changed)).catch(failed);
    } catch (e) {
      failed(e);
    }
  }
}

function signature(file: string): string {
  try {
    const s = statSync(file, { bigint: true });
    return `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
  } catch (e) {
    return `error:${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
  }
}
