// The version string: injected by build.ts into the compiled binary, else read from package.json in development.
import pkg from "../package.json" with { type: "json" };

declare const NSPROXY_BUILD_VERSION: string | undefined;

export const VERSION: string = typeof NSPROXY_BUILD_VERSION === "string" ? NSPROXY_BUILD_VERSION : `${pkg.version}-dev`;
