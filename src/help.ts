// Renders --help from citty's command definitions: wrapped to the terminal (at most 100 columns), coloured only on a terminal.
import type { ArgsDef, CommandDef, CommandMeta, SubCommandsDef } from "citty";

export interface HelpStyle {
  /** Columns a line may take. */
  width: number;
  color: boolean;
}

const MAX_WIDTH = 100;
// Narrower than this and the two columns stop being readable: wrap as if the terminal were this wide.
const MIN_WIDTH = 40;
// A label wider than this (a long flag with its value hint) puts its description on the next line.
const MAX_LABEL = 32;

/** How stdout wants it: colour only on a terminal and without NO_COLOR (no-color.org) or TERM=dumb; the terminal's width up to 100. */
export function stdoutStyle(env: Record<string, string | undefined> = process.env, out: { isTTY?: boolean; columns?: number } = process.stdout): HelpStyle {
  const tty = out.isTTY === true;
  const color = tty && !env.NO_COLOR && env.TERM !== "dumb";
  const width = tty && out.columns ? Math.max(MIN_WIDTH, Math.min(MAX_WIDTH, out.columns)) : MAX_WIDTH;
  return { width, color };
}

type Lazy<T> = T | Promise<T> | (() => T | Promise<T>);
const value = async <T>(v: Lazy<T>): Promise<T> => (typeof v === "function" ? (v as () => T | Promise<T>)() : v);

/** Words of `text` in lines of at most `width` columns; a word longer than a line is cut. */
export function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (let word of text.split(/\s+/).filter(Boolean)) {
    while (word.length > width) {
      if (line) lines.push(line);
      lines.push(word.slice(0, width));
      word = word.slice(width);
      line = "";
    }
    if (!line) line = word;
    else if (line.length + 1 + word.length <= width) line += ` ${word}`;
    else {
      lines.push(line);
      line = word;
    }
  }
  if (line || lines.length === 0) lines.push(line);
  return lines;
}

/** Two columns: labels (padded, coloured) and descriptions wrapped beside them. */
function table(rows: [string, string][], style: HelpStyle, paint: (s: string) => string): string[] {
  const labelWidth = Math.min(MAX_LABEL, Math.max(...rows.map(([l]) => l.length)));
  const indent = 2;
  const descCol = indent + labelWidth + 2;
  const descWidth = Math.max(20, style.width - descCol);
  const out: string[] = [];
  for (const [label, desc] of rows) {
    const text = wrap(desc, descWidth);
    const pad = " ".repeat(descCol);
    if (label.length > labelWidth) {
      out.push(" ".repeat(indent) + paint(label));
      for (const t of text) out.push(pad + t);
      continue;
    }
    out.push(`${" ".repeat(indent)}${paint(label)}${" ".repeat(labelWidth - label.length + 2)}${text[0]}`);
    for (const t of text.slice(1)) out.push(pad + t);
  }
  return out.map((l) => l.trimEnd());
}

/** The --help text of `cmd` (a subcommand of `parent` when given). */
export async function renderHelp(cmd: CommandDef, parent: CommandDef | undefined, style: HelpStyle): Promise<string> {
  const c = (code: number, reset: number) => (s: string) => (style.color ? `\x1b[${code}m${s}\x1b[${reset}m` : s);
  const cyan = c(36, 39);
  const gray = c(90, 39);
  const bold = c(1, 22);
  const meta = (await value(cmd.meta ?? {})) as CommandMeta;
  const parentMeta = (await value(parent?.meta ?? {})) as CommandMeta;
  const name = [parentMeta.name, meta.name].filter(Boolean).join(" ");
  const version = meta.version ?? parentMeta.version;
  const args = (await value(cmd.args ?? {})) as ArgsDef;

  const positional: [string, string][] = [];
  const options: [string, string][] = [];
  const usage: string[] = [name];
  for (const [key, def] of Object.entries(args)) {
    const hint = "valueHint" in def && def.valueHint ? `=<${def.valueHint}>` : def.type === "string" ? `=<${key.toUpperCase()}>` : "";
    if (def.type === "positional") {
      const required = def.required !== false && def.default === undefined;
      positional.push([key.toUpperCase(), def.description ?? ""]);
      usage.push(required ? `<${key.toUpperCase()}>` : `[${key.toUpperCase()}]`);
      continue;
    }
    const aliases = "alias" in def && def.alias ? (Array.isArray(def.alias) ? def.alias : [def.alias]) : [];
    options.push([[...aliases.map((a) => `-${a}`), `--${key}`].join(", ") + hint, def.description ?? ""]);
  }
  if (options.length) usage.splice(1, 0, "[OPTIONS]");
  const commands: [string, string][] = [];
  if (cmd.subCommands) {
    const subs = (await value(cmd.subCommands)) as SubCommandsDef;
    for (const [sub, def] of Object.entries(subs)) {
      const m = (await value((await value(def as Lazy<CommandDef>)).meta ?? {})) as CommandMeta;
      if (!m.hidden) commands.push([sub, m.description ?? ""]);
    }
    usage.push(commands.map(([n]) => n).join("|"));
  }

  const lines: string[] = [...wrap(`${meta.description ?? ""} (${name}${version ? ` v${version}` : ""})`, style.width).map(gray), ""];
  lines.push(`${bold("USAGE")} ${cyan(usage.join(" "))}`, "");
  for (const [title, rows] of [["ARGUMENTS", positional], ["OPTIONS", options], ["COMMANDS", commands]] as const) {
    if (rows.length === 0) continue;
    lines.push(bold(title), "", ...table(rows, style, cyan), "");
  }
  if (commands.length) lines.push(`Use ${cyan(`${name} <command> --help`)} for more information about a command.`);
  return lines.join("\n").trimEnd();
}

/** Shell words of a command line: spaces inside quotes do not split. */
function shellWords(line: string): string[] {
  const words: string[] = [];
  let word = "";
  let quote: string | undefined;
  for (const ch of line) {
    if (quote) {
      if (ch === quote) quote = undefined;
    } else if (ch === "'" || ch === '"') quote = ch;
    else if (ch === " ") {
      if (word) words.push(word);
      word = "";
      continue;
    }
    word += ch;
  }
  if (word) words.push(word);
  return words;
}

/**
 * One example as lines that still paste into a shell: a trailing `# comment` goes above the command, and a long
 * command continues with ` \` between words, never inside quotes.
 */
export function renderExample(example: string, width: number): string[] {
  const hash = example.search(/\s+# /);
  const command = hash < 0 ? example : example.slice(0, hash);
  const out = hash < 0 ? [] : wrap(example.slice(hash).trim(), width - 4).map((l, i) => (i === 0 ? `  ${l}` : `  # ${l}`));
  let line = "  $";
  const cont = "      ";
  // A flag and its value stay on one line.
  const words: string[] = [];
  for (const w of shellWords(command)) {
    const last = words.at(-1);
    if (last?.startsWith("-") && !last.includes("=") && !w.startsWith("-") && words.length > 2) words[words.length - 1] = `${last} ${w}`;
    else words.push(w);
  }
  for (const word of words) {
    if (line.length + 1 + word.length + 2 > width && line.trim() !== "$" && line !== cont) {
      out.push(`${line} \\`);
      line = cont + word;
    } else line += line === cont ? word : ` ${word}`;
  }
  out.push(line);
  return out;
}
