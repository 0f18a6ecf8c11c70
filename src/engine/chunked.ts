// The chunked transfer coding (RFC 9112 §7.1) as an incremental scanner: it finds where a chunked body ends and refuses a malformed one, while the bytes pass on unchanged (or, for an HTTP/1.0 client, only the chunks' data).
import { FIELD_CHAR, HEX, TCHAR } from "./chars.ts";
import { type ParseError, parseError } from "./parse-error.ts";

const enum S {
  SizeStart,
  Size,
  Ext,
  SizeLf,
  Data,
  DataCr,
  DataLf,
  TrailerStart,
  TrailerName,
  Trailer,
  TrailerLf,
  LastLf,
  Done,
}

/** 13 hex digits (< 2^52) keep the size exact in a double; larger sizes are refused as overflow. */
const MAX_SIZE_DIGITS = 13;
/** Chunk extensions and trailer fields are metadata: bounded so a body cannot be an endless head. */
const MAX_META_BYTES = 16 * 1024;

export class ChunkedScanner {
  private state = S.SizeStart;
  private left = 0;
  private digits = 0;
  private meta = 0;
  /** Why the body was refused, once it was (400; `offset` is into the buffer given to feed). */
  error: ParseError | undefined;
  /** The current trailer field's name, lower case. */
  private name = "";

  /**
   * `forbidden(lowerName)`: trailer fields refused outright. Trailers pass on unchanged, and an upstream
   * may merge them into the header section, so a field only the proxy may set must not arrive there.
   */
  constructor(private readonly forbidden?: (lowerName: string) => boolean) {}

  get done(): boolean {
    return this.state === S.Done;
  }

  /**
   * Look at buf[from, end). Returns the offset just past the body's last byte when the body ends
   * inside this range, `end` when it goes on, or -1 when it is malformed (see `error`). `spans`, when
   * given, gets the [start, end) offsets of the chunk data in this range, pair after pair (de-chunking).
   */
  feed(buf: Uint8Array, from: number, end: number, spans?: number[]): number {
    let i = from;
    while (i < end) {
      const c = buf[i]!;
      switch (this.state) {
        case S.Data: {
          const n = Math.min(this.left, end - i);
          if (spans !== undefined) spans.push(i, i + n);
          this.left -= n;
          i += n;
          if (this.left === 0) this.state = S.DataCr;
          continue;
        }
        case S.SizeStart:
          if (HEX[c]! < 0) return this.fail("invalid chunk size", i);
          this.left = HEX[c]!;
          this.digits = 1;
          this.state = S.Size;
          break;
        case S.Size:
          if (HEX[c]! >= 0) {
            if (++this.digits > MAX_SIZE_DIGITS) return this.fail("chunk size too large", i);
            this.left = this.left * 16 + HEX[c]!;
          } else if (c === 0x3b /* ; */) this.state = S.Ext;
          else if (c === 0x0d) this.state = S.SizeLf;
          else return this.fail("invalid character after a chunk size", i);
          break;
        case S.Ext:
          if (c === 0x0d) this.state = S.SizeLf;
          else if (!FIELD_CHAR[c] || ++this.meta > MAX_META_BYTES) return this.fail("invalid chunk extension", i);
          break;
        case S.SizeLf:
          if (c !== 0x0a) return this.fail("chunk size line not ended by CRLF", i);
          this.state = this.left === 0 ? S.TrailerStart : S.Data;
          break;
        case S.DataCr:
          if (c !== 0x0d) return this.fail("chunk data longer than its size", i);
          this.state = S.DataLf;
          break;
        case S.DataLf:
          if (c !== 0x0a) return this.fail("chunk data not ended by CRLF", i);
          this.state = S.SizeStart;
          break;
        case S.TrailerStart:
          if (c === 0x0d) this.state = S.LastLf;
          else if (c === 0x20 || c === 0x09) return this.fail("obs-fold in a trailer section", i);
          else if (!TCHAR[c]) return this.fail("invalid character in a trailer field name", i);
          else {
            this.state = S.TrailerName;
            this.name = String.fromCharCode(c | (c >= 0x41 && c <= 0x5a ? 0x20 : 0));
          }
          break;
        case S.TrailerName:
          // field-name ":" as in the head (RFC 9112 §5.1): no whitespace before the colon, no line without one.
          if (c === 0x3a /* : */) {
            if (this.forbidden?.(this.name)) return this.fail(`trailer field '${this.name}' is not allowed`, i);
            this.state = S.Trailer;
          } else if (TCHAR[c] && this.name.length < 256) this.name += String.fromCharCode(c | (c >= 0x41 && c <= 0x5a ? 0x20 : 0));
          else if (c === 0x20 || c === 0x09) return this.fail("whitespace between a trailer field name and its colon", i);
          else if (!TCHAR[c] || ++this.meta > MAX_META_BYTES) return this.fail("invalid character in a trailer field name", i);
          break;
        case S.Trailer:
          if (c === 0x0d) this.state = S.TrailerLf;
          else if (!FIELD_CHAR[c] || ++this.meta > MAX_META_BYTES) return this.fail("invalid trailer field", i);
          break;
        case S.TrailerLf:
          if (c !== 0x0a) return this.fail("trailer field not ended by CRLF", i);
          this.state = S.TrailerStart;
          break;
        case S.LastLf:
          if (c !== 0x0a) return this.fail("chunked body not ended by CRLF", i);
          this.state = S.Done;
          return i + 1;
        case S.Done:
          return i;
      }
      i++;
    }
    return end;
  }

  private fail(reason: string, offset: number): number {
    this.error = parseError(400, reason, offset);
    return -1;
  }
}
