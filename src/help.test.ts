// Unit tests for the --help renderer: when colour is used, how wide lines are, and examples that still paste.
import { describe, expect, test } from "bun:test";
import { renderExample, stdoutStyle, wrap } from "./help.ts";

describe("stdoutStyle", () => {
  test("colour only on a terminal, and not with NO_COLOR or TERM=dumb", () => {
    expect(stdoutStyle({}, { isTTY: true, columns: 80 })).toEqual({ width: 80, color: true });
    expect(stdoutStyle({}, { isTTY: false })).toEqual({ width: 100, color: false });
    expect(stdoutStyle({}, {})).toEqual({ width: 100, color: false });
    expect(stdoutStyle({ NO_COLOR: "1" }, { isTTY: true, columns: 80 }).color).toBe(false);
    expect(stdoutStyle({ TERM: "dumb" }, { isTTY: true, columns: 80 }).color).toBe(false);
  });

  test("the terminal's width, at most 100 and at least 40", () => {
    expect(stdoutStyle({}, { isTTY: true, columns: 250 }).width).toBe(100);
    expect(stdoutStyle({}, { isTTY: true, columns: 20 }).width).toBe(40);
    expect(stdoutStyle({}, { isTTY: true }).width).toBe(100);
  });
});

describe("wrap", () => {
  test("words fill lines up to the width; a longer word is cut", () => {
    expect(wrap("aa bb cc dd", 5)).toEqual(["aa bb", "cc dd"]);
    expect(wrap("abcdefghij k", 4)).toEqual(["abcd", "efgh", "ij k"]);
    expect(wrap("", 10)).toEqual([""]);
  });
});

describe("renderExample", () => {
  test("a long command continues with ' \\' between words, never inside quotes, a flag kept with its value", () => {
    const ex = "nsproxy tenant ls --json | jq -r '.[] | select(.state != \"serving\") | .name' --other value";
    const lines = renderExample(ex, 40);
    for (const l of lines) expect(l.length).toBeLessThanOrEqual(40 + 40); // a quoted word may not fit, but is never cut
    expect(lines.join("\n").replace(/ \\\n +/g, " ")).toBe(`  $ ${ex}`);
    expect(lines.some((l) => l.endsWith("--other \\"))).toBe(false);
  });

  test("a trailing comment goes on its own line above the command", () => {
    expect(renderExample("nsproxy reload   # as SIGHUP does", 100)).toEqual(["  # as SIGHUP does", "  $ nsproxy reload"]);
  });
});
