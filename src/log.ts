// The one logger of the process, made once: one line per event on stderr, text for people or JSON for machines.
import { createConsola, type LogObject, LogLevels } from "consola";

// Names, paths, hosts and reasons in messages come from outside (a file name in a discover directory may hold a
// newline): no control character reaches the text log raw, so no message can start a line that looks like another.
// C0 (but tab), DEL, C1 and the Unicode line and paragraph separators become \n, \r, \xHH or \uHHHH.
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]/g;
const NAMED: Record<string, string> = { "\n": "\\n", "\r": "\\r" };

export function escapeControl(text: string): string {
  return text.replace(CONTROL, (c) => NAMED[c] ?? (c.charCodeAt(0) > 0xff ? `\\u${c.charCodeAt(0).toString(16)}` : `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`));
}

/**
 * The message as lines: the first holds every argument; the others are what nsproxy breaks into lines on purpose —
 * an error's `detail` (a TOML excerpt) and, with --verbose, a stack's frames — indented so none reads as a record of
 * its own. `escape` is escapeControl for the text log; JSON.stringify escapes for the JSON one.
 */
function message(obj: LogObject, escape: (s: string) => string): string[] {
  const more: string[] = [];
  const text = obj.args
    .map((a) => {
      if (!(a instanceof Error)) return typeof a === "string" ? a : JSON.stringify(a);
      const detail = (a as { detail?: unknown }).detail;
      if (Array.isArray(detail)) more.push(...detail.map(String));
      if (logger.level >= LogLevels.debug && a.stack) {
        const head = `${a.name}: ${a.message}`;
        const rest = a.stack.startsWith(head) ? a.stack.slice(head.length) : a.stack;
        more.push(...rest.split("\n").filter((l) => l.trim() !== "").map((l) => l.trim()));
        return a.stack.startsWith(head) ? head : a.message;
      }
      return a.message;
    })
    .join(" ");
  return [escape(text), ...more.map((l) => `    ${escape(l)}`)];
}

const LEVEL_NAMES: Record<string, string> = { success: "info", fatal: "error", log: "info", ready: "info", start: "info", box: "info", trace: "debug", verbose: "debug" };
const level = (obj: LogObject) => LEVEL_NAMES[obj.type] ?? obj.type;

// Logs go to stderr; stdout is for the access log and for command output a script may parse.
// The level is set, not left to consola, which drops to warnings when NODE_ENV=test or CI is set.
export const logger = createConsola({
  level: LogLevels.info,
  reporters: [{ log: (obj) => process.stderr.write(`${obj.date.toISOString()} ${level(obj).padEnd(5)} ${message(obj, escapeControl).join("\n")}\n`) }],
});

export function configureLogger(opts: { format?: "text" | "json"; verbose?: boolean }): void {
  logger.level = opts.verbose ? LogLevels.debug : LogLevels.info;
  if (opts.format === "json") {
    logger.setReporters([
      { log: (obj) => process.stderr.write(`${JSON.stringify({ time: obj.date.toISOString(), level: level(obj), msg: message(obj, (t) => t).join("\n") })}\n`) },
    ]);
  }
}
