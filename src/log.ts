// The one logger of the process, made once.
import { createConsola, LogLevels } from "consola";

// Logs go to stderr; stdout is for the access log and for command output a script may parse.
// The level is set, not left to consola, which drops to warnings when NODE_ENV=test or CI is set.
export const logger = createConsola({ stdout: process.stderr, stderr: process.stderr, level: LogLevels.info }).withTag("nsproxy");

/** JSON lines for machines (--log-format json), consola's text for people. */
export function configureLogger(opts: { format?: "text" | "json"; verbose?: boolean }): void {
  logger.level = opts.verbose ? LogLevels.debug : LogLevels.info;
  if (opts.format === "json") {
    logger.setReporters([
      {
        log(obj) {
          const msg = obj.args.map((a) => (a instanceof Error ? a.message : typeof a === "string" ? a : JSON.stringify(a))).join(" ");
          process.stderr.write(`${JSON.stringify({ time: obj.date.toISOString(), level: obj.type, msg })}\n`);
        },
      },
    ]);
  }
}
