// The shared runtime cases (../net.case.ts) against Bun's adapter.
import { test } from "bun:test";
import { netCases } from "../net.case.ts";
import { runtime } from "./runtime.ts";

netCases((name, fn, skip) => {
  if (skip) console.warn(`skip: ${name}: ${skip}`);
  (skip ? test.skip : test)(name, fn, 60_000);
}, runtime);
