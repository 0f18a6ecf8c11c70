// The kinds of setting value: how a TOML value, a `run` flag and a `tenant add` flag each become one; errors are plain.
//
// Each function throws a plain Error; the caller pins it on the key path or the flag (layer.ts `at`).
import { parseDuration, parseInteger } from "./values.ts";

/**
 * T: the parsed value. Stored: what a tenant table keeps (a tenants-dir file, an admin PUT body). FlagValue: what
 * the command line hands over (citty's string, a switch, or every value of a repeatable flag).
 */
export interface Kind<T, Stored = unknown, FlagValue = unknown> {
  /** string: one value; boolean: --x / --no-x; list: repeatable. */
  readonly flagType: "string" | "boolean" | "list";
  /** A value from the config file or a tenant table, of any TOML type. */
  file(v: unknown, key: string): T;
  /** A flag's value. */
  flag(v: FlagValue, key: string): T;
  /** `tenant add`: the flag's value as the tenant table will store it (numbers as numbers, as in a file). */
  stored(v: FlagValue, key: string): Stored;
}

/** "must be an integer, not string \"x\"": the type named as TOML would. */
function wrongType(key: string, v: unknown, expected: string): Error {
  return new Error(`${key} must be ${expected}, not ${typeName(v)}`);
}

export function typeName(v: unknown): string {
  if (typeof v === "number") return Number.isInteger(v) ? `integer ${v}` : `float ${v}`;
  if (typeof v === "string") return `string ${JSON.stringify(v)}`;
  if (typeof v === "boolean") return `boolean ${v}`;
  if (Array.isArray(v)) return "an array";
  if (v instanceof Date) return "a date";
  return "a table";
}

/** A string value, type-checked in the file (`expected`: 'a string, like "…"'), then parsed. */
export function text<T>(parse: (s: string, key: string) => T, expected: string): Kind<T, string, string> {
  return {
    flagType: "string",
    file: (v, key) => {
      if (typeof v !== "string") throw wrongType(key, v, expected);
      return parse(v, key);
    },
    flag: (v, key) => parse(v, key),
    stored: (v) => v,
  };
}

/** A value whose parser checks the type itself (mode, log_format, certificate paths). */
export function checked<T>(parse: (v: unknown, key: string) => T): Kind<T, string, string> {
  return { flagType: "string", file: parse, flag: parse, stored: (v) => v };
}

/** An absolute path (tenants_dir, admin_socket). */
export function absolutePath(): Kind<string, string, string> {
  return {
    flagType: "string",
    file: (v, key) => {
      if (typeof v !== "string" || !v.startsWith("/")) throw wrongType(key, v, "an absolute path");
      return v;
    },
    flag: (v) => {
      if (!v.startsWith("/")) throw new Error(`${JSON.stringify(v)} must be an absolute path`);
      return v;
    },
    stored: (v) => v,
  };
}

/** An integer min..max; `example` is shown in the message (usually the default). */
export function integer(min: number, max: number, example: number): Kind<number, number, string | number> {
  return {
    flagType: "string",
    file: (v, key) => {
      if (typeof v !== "number") throw wrongType(key, v, "an integer");
      return parseInteger(v, key, min, max, example);
    },
    flag: (v, key) => parseInteger(v, key, min, max, example),
    stored: (v, key) => parseInteger(v, key, min, max, example),
  };
}

/** A duration in milliseconds: "500ms", "30s", "2m", or a number of seconds. `positive`: zero is refused, like `example`. */
export function duration(opts: { positive?: { example: string } } = {}): Kind<number, string | number, string> {
  const check = (ms: number, what: string): number => {
    if (ms === 0 && opts.positive) throw new Error(`${what} must be longer than 0, like "${opts.positive.example}"`);
    return ms;
  };
  return {
    flagType: "string",
    file: (v, key) => check(parseDuration(v), key),
    // On the command line every value is a string, so a bare number means seconds as it does in the file.
    flag: (v, key) => check(parseDuration(bareSeconds(v)), `the ${key.replace("_", " ")}`),
    stored: (v) => bareSeconds(v),
  };
}

function bareSeconds(s: string): string | number {
  return /^\d+(\.\d+)?$/.test(s.trim()) ? Number(s) : s;
}

/** true or false; on the command line --x / --no-x. */
export function boolean(): Kind<boolean, boolean, boolean> {
  return {
    flagType: "boolean",
    file: (v, key) => {
      if (typeof v !== "boolean") throw wrongType(key, v, "true or false");
      return v;
    },
    flag: (v) => v,
    stored: (v) => v,
  };
}

/**
 * A string or an array of strings in the file (`expected` describes both), a repeatable flag on the command line;
 * `parse` takes the whole list. `nonEmpty`: an empty array in the file is refused too.
 */
export function list<T, Stored extends string | string[] = string[]>(
  parse: (items: string[], key: string) => T,
  expected: string,
  nonEmpty = false,
): Kind<T, Stored, string[]> {
  return {
    flagType: "list",
    file: (v, key) => {
      const items = typeof v === "string" ? [v] : v;
      if (!Array.isArray(items) || (nonEmpty && items.length === 0) || !items.every((x) => typeof x === "string")) throw wrongType(key, v, expected);
      return parse(items as string[], key);
    },
    flag: (v, key) => parse(v, key),
    stored: (v) => v as Stored,
  };
}
