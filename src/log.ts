// The one logger of the process, made once: one line per event on stderr, text for people or JSON for machines.
import { createConsola, type LogObject, LogLevels } from "consola";

function message(obj: LogObject): string {
  return obj.args.map((a) => (a instanceof Error ? (logger.level >= LogLevels.debug ? (a.stack ?? a.message) : a.message) : typeof a === "string" ? a : JSON.stringify(a))).join(" ");
}

const LEVEL_NAMES: Record<string, string> = { success: "info", fatal: "error", log: "info", ready: "info", start: "info", box: "info", trace: "debug", verbose: "debug" };
const level = (obj: LogObject) => LEVEL_NAMES[obj.type] ?? obj.type;

// Logs go to stderr; stdout is for the access log and for command output a script may parse.
// The level is set, not left to consola, which drops to warnings when NODE_ENV=test or CI is set.
export const logger = createConsola({
  level: LogLevels.info,
  reporters: [{ log: (obj) => process.stderr.write(`${obj.date.toISOString()} ${level(obj).padEnd(5)} ${message(obj)}\n`) }],
});

export function configureLogger(opts: { format?: "text" | "json"; verbose?: boolean }): void {
  logger.level = opts.verbose ? LogLevels.debug : LogLevels.info;
  if (opts.format === "json") {
    logger.setReporters([
      { log: (obj) => process.stderr.write(`${JSON.stringify({ time: obj.date.toISOString(), level: level(obj), msg: message(obj) })}\n`) },
    ]);
  }
}
