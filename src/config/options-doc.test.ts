// The README's generated blocks must match the settings table: run `bun scripts/options-doc.ts --write` after a change.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { renderExample, renderOptions, updateReadme } from "./options-doc.ts";
import { SETTINGS } from "./settings.ts";

const README = readFileSync(new URL("../../README.md", import.meta.url), "utf8");

describe("README option list", () => {
  test("is what the settings table generates (else: bun scripts/options-doc.ts --write)", () => {
    expect(updateReadme(README)).toBe(README);
  });

  test("names every setting's flag and key", () => {
    const options = renderOptions();
    const example = renderExample();
    for (const s of SETTINGS) {
      expect(options).toContain(`--${s.flag}`);
      expect(example).toContain(`\n${s.key} = `);
    }
  });

  test("a README without the markers is an error, not a silent no-op", () => {
    expect(() => updateReadme("# nothing here\n")).toThrow(/no options block/);
  });
});
