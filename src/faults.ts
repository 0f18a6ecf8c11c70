// Fault injection for tests: each switch is an environment variable read here, and the compiled release binary reads none.
//
//   NSPROXY_FAULT_STRAND_TENANT=NAME[@W]  returning home after listening for tenant NAME fails in the kernel (libnetns's
//                                          switch makes that setns fail with EINVAL): the worker is stranded
//   NSPROXY_FAULT_STRAND_INGRESS=NAME[@W] the first ingress connect into tenant NAME's namespace cannot return home
//                                          (the same libnetns switch, in nsx_connect_in): the worker is stranded
//   NSPROXY_FAULT_WORKER_THROW=NAME[@W]   after listening for NAME, the worker throws an error that nothing catches
//   NSPROXY_FAULT_WORKER_EXIT=NAME[@W]    after listening for NAME, before answering, the worker thread exits at once
//   NSPROXY_FAULT_TENANT_WRITE=POINT       the process is killed (SIGKILL) while storing a tenants-directory file:
//                                          torn (half the bytes written), before-rename (temp file complete and synced),
//                                          after-rename (before the directory's fsync)
//   NSPROXY_FAULT_SECCOMP_PROBE=1          once the syscall filter is installed, the main thread makes calls it refuses
//                                          (unshare, mount, clone of a namespace, clone3) and logs each result
//
// @W arms worker W only (0-based), else every worker. Only the workers started first are armed, so their
// replacements succeed and the recovery itself can be watched.

/** build.ts defines this as "1" in the compiled binary, where every switch below reads as unset. */
const enabled = !process.env.NSPROXY_COMPILED;

export interface WorkerFaults {
  /** Tenant whose attach leaves the worker unable to return to its own namespace. */
  strand?: string;
  /** Tenant whose first ingress connect leaves the worker unable to return to its own namespace. */
  strandIngress?: string;
  /** Tenant after whose attach the worker throws an uncaught error. */
  throwAfter?: string;
  /** Tenant whose attach ends the worker thread (process.exit inside it) before it answers. */
  exitAfter?: string;
}

function read(name: string): string | undefined {
  return enabled ? process.env[name] || undefined : undefined;
}

/** NAME or NAME@W: the tenant, when worker `index` is armed. */
function forWorker(name: string, index: number): string | undefined {
  const v = read(name);
  if (!v) return undefined;
  const at = v.lastIndexOf("@");
  if (at < 0) return v;
  return Number(v.slice(at + 1)) === index ? v.slice(0, at) : undefined;
}

/** The faults of first-generation worker `index` (undefined: none, always so in the release binary). */
export function workerFaults(index: number): WorkerFaults | undefined {
  const f: WorkerFaults = {
    strand: forWorker("NSPROXY_FAULT_STRAND_TENANT", index),
    strandIngress: forWorker("NSPROXY_FAULT_STRAND_INGRESS", index),
    throwAfter: forWorker("NSPROXY_FAULT_WORKER_THROW", index),
    exitAfter: forWorker("NSPROXY_FAULT_WORKER_EXIT", index),
  };
  return f.strand || f.strandIngress || f.throwAfter || f.exitAfter ? f : undefined;
}

export type WritePoint = "torn" | "before-rename" | "after-rename";

/** Where a tenants-directory write is to be killed, if anywhere. */
export function tenantWriteFault(): WritePoint | undefined {
  const v = read("NSPROXY_FAULT_TENANT_WRITE");
  return v === "torn" || v === "before-rename" || v === "after-rename" ? v : undefined;
}

/** Make the calls the syscall filter refuses once it is installed, and log what the kernel said. */
export function seccompProbeFault(): boolean {
  return read("NSPROXY_FAULT_SECCOMP_PROBE") === "1";
}

/** Every switch that is set, for one warning at start: a fault armed by mistake must not go unnoticed. */
export function armedFaults(): string[] {
  return ["NSPROXY_FAULT_STRAND_TENANT", "NSPROXY_FAULT_STRAND_INGRESS", "NSPROXY_FAULT_WORKER_THROW", "NSPROXY_FAULT_WORKER_EXIT", "NSPROXY_FAULT_TENANT_WRITE", "NSPROXY_FAULT_SECCOMP_PROBE"].flatMap((k) => {
    const v = read(k);
    return v ? [`${k}=${v}`] : [];
  });
}

/** Kill this process where it stands (a crash, as far as files on disk can tell). */
export function crashHere(): never {
  process.kill(process.pid, "SIGKILL");
  // SIGKILL to oneself is delivered before the kill syscall returns to user space; never reached.
  throw new Error("SIGKILL did not stop the process");
}
