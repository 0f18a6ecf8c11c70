// `nsproxy version`: the version, then the commit, runtime and target it was built for.
import { defineCommand } from "citty";
import { COMMIT, RUNTIME, TARGET, VERSION } from "../version.ts";
import { rejectUnknownFlags } from "./args.ts";

export default defineCommand({
  meta: { name: "version", description: "Print the version, commit, runtime and target" },
  run({ rawArgs }) {
    rejectUnknownFlags(rawArgs, {});
    process.stdout.write(`nsproxy ${VERSION}\ncommit:  ${COMMIT}\nruntime: ${RUNTIME}\ntarget:  ${TARGET}\n`);
  },
});
