// The README's option list and config-file example, generated from the settings table (scripts/options-doc.ts).
import { DAEMON_SETTINGS, type Setting, TENANT_SETTINGS } from "./settings.ts";

/** Each block: the README text between its start marker line and its end marker line. */
const BLOCKS = {
  options: { start: "<!-- options: generated from src/config/settings.ts by `bun scripts/options-doc.ts --write` -->", end: "<!-- /options -->", render: renderOptions },
  example: { start: "<!-- config example: generated from src/config/settings.ts by `bun scripts/options-doc.ts --write` -->", end: "<!-- /config example -->", render: renderExample },
} as const;

/** A markdown table: every setting's flag, its key in the config file, and its --help text. */
export function renderOptions(): string {
  const row = (s: Setting, where: string) => {
    const flag = `${s.alias ? `-${s.alias}, ` : ""}--${s.flag}${s.hint ? ` ${s.hint}` : ""}`;
    return `| \`${flag}\` | ${where} | ${s.help.replaceAll("|", "\\|")} |`;
  };
  return [
    "| option | config key | what it sets |",
    "|---|---|---|",
    ...TENANT_SETTINGS.map((s) => row(s, `\`${s.key}\``)),
    ...DAEMON_SETTINGS.map((s) => row(s, `\`[daemon] ${s.key}\``)),
  ].join("\n");
}

/** `key = value` with its comment aligned at column 39, as a hand-written example would be. */
function line(text: string, comment?: string): string {
  if (comment === undefined) return text;
  return text.length < 38 ? `${text.padEnd(38)}# ${comment}` : `${text}  # ${comment}`;
}

function entries(settings: readonly Setting[]): string[] {
  return settings.map((s) => line(`${s.key} = ${s.doc.example}`, s.doc.comment));
}

/** The config-file example: every [daemon] and [defaults] key from the table, around a fixed discover and tenants part. */
export function renderExample(): string {
  return [
    "```toml",
    line("[daemon]", "optional; read at start (a reload keeps the running values)"),
    ...entries(DAEMON_SETTINGS),
    "",
    line("[[discover]]", "optional, repeatable"),
    'dir = "/run/netns"',
    'glob = "web-*"',
    "",
    line("[[discover]]", "containers labelled nsproxy.enable=true (Docker, or Podman's service)"),
    'docker = "/var/run/docker.sock"',
    "",
    line("[defaults]", "optional; every key may be overridden per tenant"),
    ...entries(TENANT_SETTINGS),
    line('headers = { "X-Env" = "prod" }', "static headers added upstream"),
    "",
    line("[tenants.acme]", "the table's name is the tenant's name"),
    line('netns = "acme"', "required: a name, a path, or /proc/PID/ns/net"),
    "",
    "[tenants.globex]",
    'netns = "/var/run/docker/netns/1a2b3c4d"',
    'listen = ["127.0.0.1:8080", "[::1]:8080"]',
    'upstream = "unix:/run/globex.sock:/v1"',
    line('headers = { "X-Plan" = "gold" }', "merged over [defaults].headers, name by name"),
    "```",
  ].join("\n");
}

/** The README with every generated block replaced by what the table says now; throws when a marker is missing. */
export function updateReadme(readme: string): string {
  let out = readme;
  for (const [name, b] of Object.entries(BLOCKS)) {
    const start = out.indexOf(`${b.start}\n`);
    const end = out.indexOf(`\n${b.end}`, start);
    if (start < 0 || end < 0) throw new Error(`README.md has no ${name} block (${b.start} … ${b.end})`);
    out = `${out.slice(0, start + b.start.length + 1)}${b.render()}${out.slice(end)}`;
  }
  return out;
}
