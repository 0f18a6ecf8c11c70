// Regenerates the README's option list and config example from src/config/settings.ts: prints the result,
// or with --write rewrites README.md (src/config/options-doc.test.ts fails while README.md is stale).
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { updateReadme } from "../src/config/options-doc.ts";

const file = fileURLToPath(new URL("../README.md", import.meta.url));
const next = updateReadme(readFileSync(file, "utf8"));
if (process.argv.includes("--write")) {
  writeFileSync(file, next);
  process.stdout.write(`wrote ${file}\n`);
} else {
  process.stdout.write(next);
}
