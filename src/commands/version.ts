// `nsproxy version`: print the version.
import { defineCommand } from "citty";
import { VERSION } from "../version.ts";
import { rejectUnknownFlags } from "./args.ts";

export default defineCommand({
  meta: { name: "version", description: "Print the version" },
  run({ rawArgs }) {
    rejectUnknownFlags(rawArgs, {});
    process.stdout.write(`nsproxy ${VERSION}\n`);
  },
});
