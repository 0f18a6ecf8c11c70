// Why a client's TLS handshake on an https:// listener failed, in words, from what each runtime's TLS library reports.

/** The words for a client that did not speak TLS at all (the usual newcomer's mistake: http:// to an https:// port). */
const NOT_TLS = [
  "the client sent plain HTTP",
  "the client sent a plain-text proxy request, CONNECT",
  "the client's first bytes are not TLS: plain HTTP or another protocol",
] as const;

/** True when `why` (from handshakeFailure) says the client did not speak TLS, rather than failing inside TLS. */
export function notTls(why: string | undefined): boolean {
  return why !== undefined && NOT_TLS.some((w) => why.startsWith(w));
}

/**
 * Bun (BoringSSL) names plain HTTP itself: it looks at the first bytes for an HTTP method
 * ("error:…:OPENSSL_internal:HTTP_REQUEST"). Deno (rustls) says only that the first record is not TLS
 * ("received corrupt message of type InvalidContentType"), which is what plain HTTP looks like there:
 * the words say as much as the library knew. The library's own code is kept in parentheses.
 */
export function handshakeFailure(err: unknown): string | undefined {
  const message = (err as { message?: unknown } | undefined)?.message;
  if (typeof message !== "string" || message === "") return undefined;
  const boring = message.match(/:([A-Z0-9_]+)$/)?.[1];
  const code = boring ?? message.replace(/\s+/g, " ").slice(0, 120);
  if (boring === "HTTP_REQUEST") return `${NOT_TLS[0]} (${code})`;
  if (boring === "HTTPS_PROXY_REQUEST") return `${NOT_TLS[1]} (${code})`;
  if (boring === "WRONG_VERSION_NUMBER" || /InvalidContentType/.test(message)) return `${NOT_TLS[2]} (${code})`;
  const alert = boring?.match(/ALERT_(\w+)$/)?.[1] ?? message.match(/received fatal alert: (\w+)/)?.[1];
  if (alert) return `the client ended the handshake with an alert, ${alert}: it may not trust the certificate (${code})`;
  return code;
}
