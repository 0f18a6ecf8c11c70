// What the reconciler needs from the workers and from the kernel's namespaces: small enough to fake in unit tests.
import type { IngressListen, TenantSpec } from "../config/types.ts";
import type { Material } from "../tls/pairs.ts";
import type { AttachFailure } from "../worker/protocol.ts";

export type { AttachFailure };

/** The pinned workers, one whole step per call (the real one is worker/pool.ts's WorkerPool). */
export interface Workers {
  /** How the next tenants are placed, knowing how many listen addresses are wanted in all. */
  plan(listenAddrs: number, fdLimit: number): void;
  /** Listen for `spec` inside the namespace open at `nsFd`, all or nothing; no listeners: leave the workers it was in. */
  attach(spec: TenantSpec, nsFd: number, material?: Material): Promise<AttachFailure | undefined>;
  /** Worker `index` was replaced: listen for `spec` there again if it is placed there. */
  reattach(index: number, spec: TenantSpec, nsFd: number, material?: Material): Promise<AttachFailure | undefined>;
  /** Whether tenant `name` listens in worker `index`. */
  placedOn(name: string, index: number): boolean;
  /** Stop accepting for `name` everywhere; its connections close after `graceMs`. */
  detach(name: string, graceMs: number): Promise<void>;
  /** The ingress host listeners, in every worker or in worker `only`. */
  ingressListen(listen: IngressListen[], only?: number): Promise<AttachFailure | undefined>;
  /** A tenant's ingress hosts now route through namespace fd `nsFd` (-1 with `down`: they answer 503). */
  ingressSet(spec: TenantSpec, nsFd: number, down?: string, only?: number): Promise<void>;
  /** The tenant's ingress hosts are gone from every worker (its fd may be closed once this resolves). */
  ingressDrop(name: string): Promise<void>;
  /** Stranded workers not ended yet: while any is, a thread is known to be inside a tenant namespace. */
  readonly stranded: number;
  /** Set by the reconciler: a worker was replaced and has no listeners. */
  onReplaced: (index: number) => void;
  /** Set by the reconciler: the last stranded worker has ended. */
  onLingerEnd: () => void;
}

/** Network namespaces as the main thread opens and identifies them (the real one is namespaces.ts). */
export interface Namespaces {
  /**
   * Open the namespace `ref` names, here on the main thread: its fd and dev:ino identity. Throws an
   * error whose `code` says why (ENOENT, ENOTNETNS: not there yet; anything else: failed).
   */
  open(ref: string): { fd: number; identity: string };
  /** dev:ino of the namespace now at `path`; undefined when the path is gone; null when it cannot be told now. */
  identityAt(path: string): string | undefined | null;
  close(fd: number): void;
  /** The process holding one of the sockets `inodes` (a tenant's address taken by a stranger), if it can be found now. */
  socketOwner(inodes: number[]): { pid: number; comm: string } | undefined;
  /** Threads of this process whose namespace is not the process's own. */
  strayThreads(): { tid: string; netns: string }[];
}
