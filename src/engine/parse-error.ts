// The one shape every parser of the engine refuses with: a value tests compare, not a thrown error.

/**
 * Why bytes were refused. `status` is the HTTP status that answers it (400, 414, 431, 501, 505 for a
 * request; 502 for an upstream's response; 400 for a ClientHello, whose connection is closed with no
 * answer); `reason` is the text users see after "nsproxy: "; `offset` is the byte that was refused,
 * counted from the start of what the parser was given.
 */
export interface ParseError {
  status: number;
  reason: string;
  offset: number;
}

export function parseError(status: number, reason: string, offset: number): ParseError {
  return { status, reason, offset };
}

/** Parsers return their result or a ParseError; no result of theirs has a `reason`. */
export function isParseError<T extends object>(x: T | ParseError): x is ParseError {
  return (x as ParseError).reason !== undefined;
}
