// `nsproxy cni install|uninstall`: put the plugin on a node (the DaemonSet's installer container) and take it off again.
import { defineCommand } from "citty";
import { readFileSync } from "node:fs";
import { isTable } from "../config/schema.ts";
import { NsproxyError } from "../errors.ts";
import { logger } from "../log.ts";
import { checkEntry, installOnce, uninstall } from "../cni/install.ts";
import { rejectUnknownFlags } from "./args.ts";

const dirArgs = {
  "bin-dir": { type: "string", description: "The node's CNI plugin directory, as mounted here (default /host/opt/cni/bin)", valueHint: "DIR", default: "/host/opt/cni/bin" },
  "conf-dir": { type: "string", description: "The node's CNI config directory, as mounted here (default /host/etc/cni/net.d)", valueHint: "DIR", default: "/host/etc/cni/net.d" },
} as const;

const installArgs = {
  ...dirArgs,
  "plugin-conf": { type: "string", description: 'JSON file: the plugin\'s conflist entry ({"adminSocket": …, "failOpen": …, "tenant": {…}})', valueHint: "FILE" },
  binary: { type: "string", description: "The binary to copy (default: this one)", valueHint: "FILE" },
  watch: { type: "boolean", description: "Keep running: chain the entry again whenever the conflist loses it (the network plugin rewrote it)" },
  "uninstall-on-exit": { type: "boolean", description: "With --watch: on SIGTERM, remove the entry and the binary (default: keep them, so new pods wait for nsproxy)" },
} as const;

/** How often --watch looks at the conflist: a network plugin that rewrites it is noticed within this. */
const WATCH_MS = 5000;

const install = defineCommand({
  meta: { name: "install", description: "Copy this binary into the CNI bin directory and chain it into the first *.conflist" },
  args: installArgs,
  async run({ args, rawArgs }) {
    rejectUnknownFlags(rawArgs, installArgs);
    const entry = readEntry(args["plugin-conf"]);
    checkEntry(entry);
    const opts = { binary: args.binary ?? process.execPath, binDir: args["bin-dir"], confDir: args["conf-dir"], entry };
    const once = () => {
      for (const line of installOnce(opts)) logger.info(`cni install: ${line}`);
    };
    once();
    if (!args.watch) return;
    await new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        try {
          once();
        } catch (e) {
          logger.error(`cni install: ${(e as Error).message}`);
        }
      }, WATCH_MS);
      const stop = () => {
        clearInterval(timer);
        if (args["uninstall-on-exit"]) for (const line of uninstall(opts.binDir, opts.confDir)) logger.info(`cni uninstall: ${line}`);
        resolve();
      };
      process.once("SIGTERM", stop);
      process.once("SIGINT", stop);
    });
  },
});

const uninstallCmd = defineCommand({
  meta: { name: "uninstall", description: "Remove the plugin's entry from every conflist and the binary from the CNI bin directory" },
  args: dirArgs,
  run({ args, rawArgs }) {
    rejectUnknownFlags(rawArgs, dirArgs);
    const done = uninstall(args["bin-dir"], args["conf-dir"]);
    for (const line of done) logger.info(`cni uninstall: ${line}`);
    if (done.length === 0) logger.info("cni uninstall: nothing to remove");
  },
});

function readEntry(file: string | undefined): Record<string, unknown> {
  if (!file) return {};
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new NsproxyError(`--plugin-conf ${file}: ${(e as Error).message}`, { exitCode: 2 });
  }
  if (!isTable(v)) throw new NsproxyError(`--plugin-conf ${file}: must be a JSON object`, { exitCode: 2 });
  return v;
}

export default defineCommand({
  meta: { name: "cni", description: "Install or uninstall the CNI plugin on this node (the plugin itself runs when CNI_COMMAND is set)" },
  subCommands: { install, uninstall: uninstallCmd },
});
