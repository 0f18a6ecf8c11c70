// The syscall filter, installed once at start on every thread; libnetns.c holds the list of refused calls and why.
import { NsproxyError } from "../errors.ts";
import { seccompProbeFault } from "../faults.ts";
import { logger } from "../log.ts";
import { errnoName, errorText, installSyscallFilterRaw, syscallFilterProbeRaw } from "./native.ts";

/** What the filter refuses, in words, for the start-up line and the README. */
export const REFUSED_SUMMARY =
  "mounts, kexec, kernel modules, bpf, ptrace and process_vm_*, swap, reboot, hostname, keyrings, perf_event_open, open_by_handle_at, fanotify, acct, clock setting, quotas, userfaultfd, syslog, vhangup, ioperm/iopl, new namespaces (unshare, clone), setns other than network, personality changes";

/**
 * Install the filter (when `enabled`) on every thread of the process, now and later. A filter that was asked for
 * and cannot be installed stops the start: running unprotected without saying so is what the filter is against.
 */
export function installSyscallFilter(enabled: boolean): void {
  if (!enabled) {
    logger.warn("syscall filter off ([daemon] seccomp = false or --no-seccomp): a compromised nsproxy may mount, load BPF, trace processes and create namespaces");
    return;
  }
  const rc = installSyscallFilterRaw();
  if (rc < 0) {
    const errno = -rc;
    throw new NsproxyError(
      `syscall filter: seccomp(SECCOMP_SET_MODE_FILTER, TSYNC): ${errorText(errno)} (${errnoName(errno)}); ` +
        "the kernel needs CONFIG_SECCOMP_FILTER; to run without the filter, set [daemon] seccomp = false or pass --no-seccomp",
    );
  }
  logger.info(`syscall filter on every thread (seccomp; --no-seccomp turns it off): refused ${REFUSED_SUMMARY}`);
  if (seccompProbeFault()) probe();
}

/** Test only: the calls the filter must refuse, made for real, each result logged. */
function probe(): void {
  const calls = ["unshare(CLONE_NEWNET)", "mount(tmpfs)", "clone(CLONE_NEWNET)", "clone3"];
  calls.forEach((call, which) => {
    const rc = syscallFilterProbeRaw(which);
    logger.warn(`seccomp probe: ${call} = ${rc < 0 ? `${errnoName(-rc)} (${errorText(-rc)})` : rc}`);
  });
}
