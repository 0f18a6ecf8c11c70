// The one logger of the process, made once.
import { consola, LogLevels } from "consola";

export const logger = consola.withTag("nsproxy");

/** JSON lines for machines (--log-format json), consola's text for people. */
export function configureLogger(opts: { format?: "text" | "json"; verbose?: boolean }): void {
  if (opts.verbose) logger.level = LogLevels.debug;
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
