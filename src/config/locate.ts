// Finds the line where a key or table is defined in TOML text, so semantic errors can say "file.toml:LINE".
//
// smol-toml parses the values but keeps no positions; toml-eslint-parser's AST has them. Definitions go into a trie
// of key parts, so each one costs its own length: a key of 30,000 dotted parts stays linear.
import { type AST, parseTOML } from "toml-eslint-parser";

interface Node {
  line?: number;
  explicit?: boolean;
  children?: Map<string, Node>;
}

class Lines {
  readonly root: Node = {};

  /**
   * Records the whole path explicitly and each proper prefix implicitly. Explicit definitions ([table], key = ...)
   * beat implicit ones (the "tenants" in [tenants.acme]); otherwise the first occurrence wins.
   */
  record(path: readonly string[], line: number): void {
    let node = this.root;
    for (let i = 0; i < path.length; i++) {
      node.children ??= new Map();
      let next = node.children.get(path[i]!);
      if (!next) node.children.set(path[i]!, (next = {}));
      node = next;
      const explicit = i === path.length - 1;
      if (node.line === undefined || (explicit && !node.explicit)) {
        node.line = line;
        node.explicit = explicit;
      }
    }
  }

  /** The line of the longest defined prefix of `path`. */
  find(path: readonly string[]): number | undefined {
    let node = this.root;
    let line: number | undefined;
    for (const part of path) {
      const next = node.children?.get(part);
      if (!next) break;
      node = next;
      line = node.line ?? line;
    }
    return line;
  }
}

function keyParts(key: AST.TOMLKey): string[] {
  return key.keys.map((k) => (k.type === "TOMLBare" ? k.name : k.value));
}

/** Key/value pairs, descending into inline tables and arrays (an element's path holds its index). */
function recordValue(lines: Lines, path: string[], node: AST.TOMLContentNode, line: number): void {
  lines.record(path, line);
  if (node.type === "TOMLInlineTable") {
    for (const kv of node.body) recordValue(lines, [...path, ...keyParts(kv.key)], kv.value, kv.loc.start.line);
  } else if (node.type === "TOMLArray") {
    node.elements.forEach((e, i) => {
      if (e.type === "TOMLInlineTable" || e.type === "TOMLArray") recordValue(lines, [...path, String(i)], e, e.loc.start.line);
    });
  }
}

function scan(source: string): Lines | undefined {
  let program: AST.TOMLProgram;
  try {
    program = parseTOML(source, { tomlVersion: "1.1" });
  } catch {
    // The real parse (smol-toml) accepted the file; a text this parser refuses just goes without a line.
    return undefined;
  }
  const lines = new Lines();
  for (const item of program.body[0].body) {
    if (item.type === "TOMLKeyValue") {
      recordValue(lines, keyParts(item.key), item.value, item.loc.start.line);
      continue;
    }
    const indexed = item.resolvedKey.map(String);
    // [[discover]] entries are checked both by index (["discover", "1", "dir"]) and as a whole (["discover", "dir"]).
    const paths = item.kind === "array" || item.resolvedKey.some((k) => typeof k === "number") ? [indexed, keyParts(item.key)] : [indexed];
    for (const table of paths) {
      lines.record(table, item.loc.start.line);
      for (const kv of item.body) recordValue(lines, [...table, ...keyParts(kv.key)], kv.value, kv.loc.start.line);
    }
  }
  return lines;
}

// loadConfig asks for many keys of one source; parsing once per source keeps that linear.
let cache: { src: string; lines: Lines | undefined } | undefined;

/** 1-based line where `path` is defined, else the line of its nearest enclosing table or key; undefined if none. */
export function locateKey(source: string, path: string[]): number | undefined {
  if (cache?.src !== source) cache = { src: source, lines: scan(source) };
  return cache.lines?.find(path);
}
