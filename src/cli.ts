// The nsproxy command line: the root command and main(); each subcommand lives in src/commands/ and loads lazily.
import { type CommandDef, defineCommand, runCommand } from "citty";
import { suggest } from "./config/suggest.ts";
import { EXIT, NsproxyError } from "./errors.ts";
import { renderExample, renderHelp, type HelpStyle, stdoutStyle, wrap } from "./help.ts";
import { logger } from "./log.ts";
import { VERSION } from "./version.ts";

const EXAMPLES: Record<string, string[]> = {
  nsproxy: [
    "sudo nsproxy run --listen 127.0.0.1:8080 --upstream http://127.0.0.1:9000 --netns acme --netns globex",
    "sudo nsproxy run --config /etc/nsproxy/nsproxy.toml",
    "nsproxy check --config /etc/nsproxy/nsproxy.toml",
  ],
  run: [
    "sudo nsproxy run -l 127.0.0.1:8080 -u http://127.0.0.1:9000 -n acme -n /var/run/docker/netns/1a2b3c",
    "sudo nsproxy run -l 169.254.169.254:80 -u unix:/run/metadata.sock -n web=/proc/4242/ns/net",
    "sudo nsproxy run --config /etc/nsproxy/nsproxy.toml --workers 4 --log-format json",
    "sudo nsproxy run -l https://169.254.169.254 -u http://127.0.0.1:9000 --tls-cert '/etc/nsproxy/certs/{tenant}.crt' --tls-key '/etc/nsproxy/certs/{tenant}.key' --discover /run/netns",
    "sudo nsproxy run --mode tcp -l 127.0.0.1:5432 -u tcp://10.0.0.7:5432 --upstream-proxy-protocol v2 -n acme",
    "sudo nsproxy run --ingress-listen 0.0.0.0:80 --ingress-host '{tenant}.example.com' --ingress-backend 127.0.0.1:3000 --discover /run/netns",
  ],
  check: ["nsproxy check --config /etc/nsproxy/nsproxy.toml", "nsproxy check -l 127.0.0.1:8080 -u http://127.0.0.1:9000 -n acme"],
  version: ["nsproxy version", "nsproxy --version"],
  tenant: [
    "nsproxy tenant add acme --netns acme --listen 127.0.0.1:8080 --upstream http://127.0.0.1:9000",
    "nsproxy tenant rm acme",
    "nsproxy tenant ls --json",
  ],
  "tenant add": [
    "nsproxy tenant add acme --netns acme",
    "nsproxy tenant add web --netns /proc/4242/ns/net -l 169.254.169.254:80 -u unix:/run/metadata.sock --header X-Plan=gold --header X-Env=prod",
    "nsproxy tenant add acme --netns acme --tenants-dir /srv/nsproxy/tenants.d   # writes the file if the daemon is not running",
    "nsproxy tenant add acme --netns acme -l https://169.254.169.254 --tls-cert /etc/nsproxy/certs/acme.crt --tls-key /etc/nsproxy/certs/acme.key",
    "nsproxy tenant add acme --netns acme --ingress-host acme.example.com --ingress-host '*.acme.example.com' --ingress-backend 127.0.0.1:3000",
  ],
  "tenant rm": ["nsproxy tenant rm acme", "nsproxy tenant rm acme --admin-socket /run/nsproxy-2/admin.sock"],
  "tenant ls": ["nsproxy tenant ls", "nsproxy tenant ls --json | jq -r '.[] | select(.state != \"serving\") | .name'"],
  status: ["nsproxy status", "nsproxy status --json"],
  top: [
    "nsproxy top",
    "nsproxy top --sort errors --limit 20",
    "nsproxy top --once --sort bytes",
    "nsproxy top --once --json | jq -r '.tenants[] | select(.errors_per_second > 1) | .name'",
  ],
  reload: ["nsproxy reload", "kill -HUP $(pidof nsproxy)   # the same, without the admin socket"],
  cni: ["nsproxy cni install --plugin-conf /etc/nsproxy/cni-plugin.json --watch", "nsproxy cni uninstall"],
  "cni install": [
    "nsproxy cni install --bin-dir /host/opt/cni/bin --conf-dir /host/etc/cni/net.d --plugin-conf /etc/nsproxy/cni-plugin.json --watch",
  ],
  "cni uninstall": ["nsproxy cni uninstall --bin-dir /host/opt/cni/bin --conf-dir /host/etc/cni/net.d"],
  upgrade: ["nsproxy upgrade", "nsproxy upgrade --binary /opt/nsproxy/nsproxy-1.4", "kill -USR2 $(pidof nsproxy)   # the same, without waiting or output"],
};

const EXIT_CODES = `Exit codes: ${EXIT.ok} success, ${EXIT.runtime} runtime failure, ${EXIT.usage} usage or configuration error.`;

const main = defineCommand({
  meta: {
    name: "nsproxy",
    version: VERSION,
    description: "One process per host that serves an HTTP reverse proxy inside many network namespaces, stamping each request with its tenant",
  },
  subCommands: {
    run: () => import("./commands/run.ts").then((m) => m.default),
    check: () => import("./commands/check.ts").then((m) => m.default),
    tenant: () => import("./commands/tenant.ts").then((m) => m.default),
    status: () => import("./commands/status.ts").then((m) => m.default),
    reload: () => import("./commands/reload.ts").then((m) => m.default),
    upgrade: () => import("./commands/upgrade.ts").then((m) => m.default),
    version: () => import("./commands/version.ts").then((m) => m.default),
    top: () => import("./commands/top.ts").then((m) => m.default),
    cni: () => import("./commands/cni.ts").then((m) => m.default),
  },
});

/** The (sub)command the words of rawArgs name, its parent, and its path ("tenant add") for EXAMPLES. */
async function resolve(rawArgs: string[]): Promise<[CommandDef, CommandDef | undefined, string]> {
  let cmd: CommandDef = main;
  let parent: CommandDef | undefined;
  const path: string[] = [];
  for (const word of rawArgs.filter((a) => !a.startsWith("-"))) {
    const subs = cmd.subCommands as Record<string, CommandDef | (() => Promise<CommandDef>)> | undefined;
    const sub = subs?.[word];
    if (!sub) break;
    parent = cmd;
    cmd = typeof sub === "function" ? await sub() : sub;
    path.push(word);
  }
  return [cmd, parent, path.join(" ") || "nsproxy"];
}

async function usage(rawArgs: string[], style: HelpStyle = stdoutStyle()): Promise<string> {
  const [cmd, parent, name] = await resolve(rawArgs);
  const examples = (EXAMPLES[name] ?? []).flatMap((e) => renderExample(e, style.width)).join("\n");
  return `${await renderHelp(cmd, parent, style)}\n\nExamples:\n${examples}\n\n${wrap(EXIT_CODES, style.width).join("\n")}\n`;
}

const subCommandsOf = (cmd: CommandDef) => cmd.subCommands as Record<string, CommandDef | (() => Promise<CommandDef>)> | undefined;

/**
 * A word where a command is expected that names none ("nsproxy chek", "nsproxy tenant ad"), or a command that
 * needs one and has none: the usage error to print, with the nearest command. Words are read as citty reads
 * them: the first word that is not a flag picks the subcommand.
 */
async function commandError(rawArgs: string[]): Promise<string | undefined> {
  let cmd: CommandDef = main;
  const path: string[] = [];
  let rest = rawArgs;
  for (;;) {
    const subs = subCommandsOf(cmd);
    if (!subs) return undefined;
    const names = Object.keys(subs);
    const at = rest.findIndex((a) => !a.startsWith("-"));
    const here = ["nsproxy", ...path].join(" ");
    if (at < 0) return `${here} needs a command: ${names.join(", ")} (see ${here} --help)`;
    const word = rest[at]!;
    const sub = subs[word];
    if (!sub) {
      const near = suggest(word, names);
      const guess = near ? `; did you mean '${[...path, near].join(" ")}'?` : "";
      return `unknown command '${[...path, word].join(" ")}'${guess} (${here} commands: ${names.join(", ")}; see ${here} --help)`;
    }
    cmd = typeof sub === "function" ? await sub() : sub;
    path.push(word);
    rest = rest.slice(at + 1);
  }
}

export async function run(rawArgs: string[]): Promise<number> {
  if (rawArgs.includes("--help") || rawArgs.includes("-h")) {
    process.stdout.write(await usage(rawArgs));
    return EXIT.ok;
  }
  if (rawArgs.length === 1 && rawArgs[0] === "--version") {
    process.stdout.write(`nsproxy ${VERSION}\n`);
    return EXIT.ok;
  }
  if (rawArgs.length === 0) {
    process.stderr.write(await usage(rawArgs, stdoutStyle(process.env, process.stderr)));
    return EXIT.usage;
  }
  if (rawArgs[0]!.startsWith("-")) {
    const near = rawArgs[0]!.startsWith("--") ? suggest(rawArgs[0]!.slice(2), ["help", "version"]) : undefined;
    const hint = near ? `did you mean --${near}?` : `a command comes first (${Object.keys(subCommandsOf(main)!).join(", ")}; see --help)`;
    logger.error(`${rawArgs[0]}: unknown option; ${hint}`);
    return EXIT.usage;
  }
  const wrong = await commandError(rawArgs);
  if (wrong) {
    logger.error(wrong);
    return EXIT.usage;
  }
  try {
    await runCommand(main, { rawArgs });
    return EXIT.ok;
  } catch (err) {
    const verbose = rawArgs.includes("--verbose") || rawArgs.includes("-v");
    if (err instanceof NsproxyError) {
      // The error itself carries its detail lines (a TOML excerpt); its stack is shown with --verbose only.
      logger.error(err);
      return err.exitCode;
    }
    // citty's own errors (unknown command, …) are usage errors.
    if ((err as { name?: string })?.name === "CLIError") {
      process.stderr.write(await usage(rawArgs, stdoutStyle(process.env, process.stderr)));
      logger.error((err as Error).message);
      return EXIT.usage;
    }
    logger.error(verbose ? err : (err as Error)?.message ?? String(err));
    return EXIT.runtime;
  }
}

if (import.meta.main) {
  // A container runtime runs the installed copy (/opt/cni/bin/nsproxy) as a CNI plugin: CNI_COMMAND says so,
  // and argv means nothing then. Only the plugin's modules load; no workers, no seccomp filter.
  const main = process.env.CNI_COMMAND ? import("./cni/main.ts").then((m) => m.cniMain()) : run(process.argv.slice(2));
  main.then((code) => process.exit(code));
}
