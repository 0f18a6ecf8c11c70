// The words for a failed client handshake, from the reasons Bun (BoringSSL) and Deno (rustls) were seen to give.
import { expect, test } from "bun:test";
import { handshakeFailure, notTls } from "./handshake-failure.ts";

const boring = (code: string) => new Error(`error:10000000:SSL routines:OPENSSL_internal:${code}`);

test.each([
  [boring("HTTP_REQUEST"), "the client sent plain HTTP (HTTP_REQUEST)"],
  [boring("HTTPS_PROXY_REQUEST"), "the client sent a plain-text proxy request, CONNECT (HTTPS_PROXY_REQUEST)"],
  [boring("WRONG_VERSION_NUMBER"), "the client's first bytes are not TLS: plain HTTP or another protocol (WRONG_VERSION_NUMBER)"],
  [new Error("received corrupt message of type InvalidContentType"), "the client's first bytes are not TLS: plain HTTP or another protocol (received corrupt message of type InvalidContentType)"],
  [boring("TLSV1_ALERT_UNKNOWN_CA"), "the client ended the handshake with an alert, UNKNOWN_CA: it may not trust the certificate (TLSV1_ALERT_UNKNOWN_CA)"],
  [new Error("received fatal alert: UnknownCA"), "the client ended the handshake with an alert, UnknownCA: it may not trust the certificate (received fatal alert: UnknownCA)"],
  [boring("BAD_PACKET_LENGTH"), "BAD_PACKET_LENGTH"],
  [null, undefined],
  [new Error(""), undefined],
] as [unknown, string | undefined][])("%p", (err, words) => {
  expect(handshakeFailure(err)).toBe(words);
});

test("plain HTTP and other non-TLS first bytes are one kind; failures inside TLS another", () => {
  expect(notTls(handshakeFailure(boring("HTTP_REQUEST")))).toBe(true);
  expect(notTls(handshakeFailure(new Error("received corrupt message of type InvalidContentType")))).toBe(true);
  expect(notTls(handshakeFailure(boring("TLSV1_ALERT_UNKNOWN_CA")))).toBe(false);
  expect(notTls(handshakeFailure(boring("BAD_PACKET_LENGTH")))).toBe(false);
  expect(notTls(undefined)).toBe(false);
});
