// The start-up refusal without CAP_SYS_ADMIN, read from /proc/PID/status as the daemon reads it.
import { describe, expect, test } from "bun:test";
import { ownCapsIfReadable, parseStatus, privilegeProblem } from "./caps.ts";

const status = (eff: string, uid = 65534) => `Name:\tnsproxy\nUid:\t${uid}\t${uid}\t${uid}\t${uid}\nGid:\t${uid}\t${uid}\t${uid}\t${uid}\nCapInh:\t0000000000000000\nCapPrm:\t${eff}\nCapEff:\t${eff}\nCapBnd:\t000001ffffffffff\n`;

describe("privilegeProblem", () => {
  test("without CAP_SYS_ADMIN: the refusal names the capability, what needs it, who runs, and the ways out", () => {
    expect(privilegeProblem(parseStatus(status("0000000000000000")))).toBe(
      "this process lacks CAP_SYS_ADMIN (running as uid 65534 with no effective capabilities): setns into a tenant's network namespace needs it, " +
        "so no tenant could ever attach; run as root (with --user NAME to run as a user after start), or grant it (systemd: AmbientCapabilities=CAP_SYS_ADMIN; a container: --cap-add SYS_ADMIN)",
    );
    // Root with the capability dropped (a container without it, `setpriv --bounding-set -sys_admin`): "run as root" would be no advice.
    const root = privilegeProblem(parseStatus(status("000001fffedfffff", 0)));
    expect(root).toContain("(running as uid 0 with CAP_NET_BIND_SERVICE, CAP_DAC_READ_SEARCH, CAP_SYS_PTRACE)");
    expect(root).toContain("so no tenant could ever attach; grant it (systemd:");
  });

  test("with CAP_SYS_ADMIN (bit 21), alone or among all, or when /proc cannot tell: nothing is refused", () => {
    expect(privilegeProblem(parseStatus(status("0000000000200000")))).toBeUndefined();
    expect(privilegeProblem(parseStatus(status("000001ffffffffff", 0)))).toBeUndefined();
    expect(privilegeProblem(undefined)).toBeUndefined();
    // This process (the tests run as root) holds it.
    if (process.getuid?.() === 0) expect(privilegeProblem(ownCapsIfReadable())).toBeUndefined();
  });
});
