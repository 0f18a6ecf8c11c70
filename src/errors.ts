// The one error type that carries a user-facing message and an exit code to the CLI's edge.

/** Exit codes, documented in --help and README. */
export const EXIT = { ok: 0, runtime: 1, usage: 2 } as const;

export class NsproxyError extends Error {
  readonly exitCode: number;
  constructor(message: string, options: { exitCode?: number; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = "NsproxyError";
    this.exitCode = options.exitCode ?? EXIT.runtime;
  }
}

/** A usage or configuration error: exit code 2. `where` is "file:line" or "--flag". */
export class ConfigError extends NsproxyError {
  readonly where: string | undefined;
  readonly key: string | undefined;
  /** Lines shown under the message (the TOML parser's excerpt of the file, with a caret); the log escapes each. */
  readonly detail: string[] | undefined;
  constructor(message: string, where?: string, key?: string, detail?: string[]) {
    const prefix = [where, key].filter(Boolean).join(": ");
    super(prefix ? `${prefix}: ${message}` : message, { exitCode: EXIT.usage });
    this.name = "ConfigError";
    this.where = where;
    this.key = key;
    this.detail = detail;
  }
}
