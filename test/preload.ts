// Before any test: build libnetns.so if it is missing or older than libnetns.c (the sources import it).
import { buildNative } from "../build.ts";

await buildNative();
