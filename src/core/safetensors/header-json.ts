// The safetensors header JSON, parsed the way the reference (Rust: serde_json + serde derive of
// `HashMetadata { __metadata__: Option<HashMap<String, String>>, #[flatten] tensors:
// HashMap<String, TensorInfo> }`) parses it, so that the same files are accepted and rejected
// with the same messages, including serde_json's "at line L column C" positions (byte columns).
//
// Like the reference, it works in two phases: the top-level object is read as a stream (syntax
// of every value, and `__metadata__` typed on the fly), then each tensor entry is typed from its
// already-checked text. Errors of the second phase carry the position of the end of the object,
// because the reference types them from a buffered copy that has no positions.
//
// Memory stays proportional to the header: tensor values are not materialised in phase one,
// only their offsets.
//
// Headers in the form safetensors writers produce skip all of that: a single scan reads them
// (parseCommonHeaderJson, below), and hands anything else to the exact parser.

import { DTYPES, type DType } from './types';

/** A JSON error of the header, worded like serde_json; `message` includes the position if any. */
export class HeaderJsonError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HeaderJsonError';
  }
}

/**
 * A non-negative integer that fits a u64: a number up to 2^53 - 1 (Number.MAX_SAFE_INTEGER), a
 * bigint above, so each value has one form and `===` compares values.
 */
export type U64 = number | bigint;

export interface RawTensorEntry {
  name: string;
  dtype: DType;
  shape: U64[];
  begin: U64;
  end: U64;
}

export interface RawHeader {
  metadata: Map<string, string> | null;
  /** Tensors in the order their names first appear; a repeated name keeps its last value. */
  tensors: RawTensorEntry[];
}

// ---------------------------------------------------------------------------------------------
// Values as serde's buffered `Content` sees them (only built for one tensor entry at a time).

type NumberContent =
  | { k: 'uint'; v: U64 }
  | { k: 'int'; v: U64 } // negative integers (v < 0)
  | { k: 'float'; v: number };

type Content =
  | NumberContent
  | { k: 'str'; v: string }
  | { k: 'bool'; v: boolean }
  | { k: 'null' }
  | { k: 'seq'; v: Content[] }
  | { k: 'map'; v: [string, Content][] };

const RECURSION_LIMIT = 128;
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const U64_MAX = (1n << 64n) - 1n;
const U64_MAX_DIGITS = 20;

const enum Code {
  EofWhileParsingList = 'EOF while parsing a list',
  EofWhileParsingObject = 'EOF while parsing an object',
  EofWhileParsingString = 'EOF while parsing a string',
  EofWhileParsingValue = 'EOF while parsing a value',
  ExpectedColon = 'expected `:`',
  ExpectedListCommaOrEnd = 'expected `,` or `]`',
  ExpectedObjectCommaOrEnd = 'expected `,` or `}`',
  ExpectedSomeIdent = 'expected ident',
  ExpectedSomeValue = 'expected value',
  InvalidEscape = 'invalid escape',
  InvalidNumber = 'invalid number',
  NumberOutOfRange = 'number out of range',
  ControlCharacter = 'control character (\\u0000-\\u001F) found while parsing a string',
  KeyMustBeAString = 'key must be a string',
  LoneLeadingSurrogate = 'lone leading surrogate in hex escape',
  TrailingComma = 'trailing comma',
  TrailingCharacters = 'trailing characters',
  UnexpectedEndOfHexEscape = 'unexpected end of hex escape',
  RecursionLimitExceeded = 'recursion limit exceeded',
}

/** A semantic (serde) error not yet given a position. */
class Unpositioned {
  constructor(readonly message: string) {}
}

// ignoreBOM: keep a U+FEFF that starts a string, as serde does (the default decoder drops it).
const textDecoder = new TextDecoder('utf-8', { ignoreBOM: true });

class Parser {
  index = 0;
  private remainingDepth = RECURSION_LIMIT;

  constructor(private readonly bytes: Uint8Array) {}

  // ---- positions and errors (serde_json: `error` = at the last consumed byte, `peek_error` =
  // including the byte being looked at)

  positionOf(index: number): { line: number; column: number } {
    let line = 1;
    let lineStart = 0;
    for (let i = 0; i < index; i++) {
      if (this.bytes[i] === 0x0a) {
        line++;
        lineStart = i + 1;
      }
    }
    return { line, column: index - lineStart };
  }

  errorAt(message: string, index: number): HeaderJsonError {
    const { line, column } = this.positionOf(index);
    return new HeaderJsonError(`${message} at line ${line} column ${column}`);
  }

  error(message: string): HeaderJsonError {
    return this.errorAt(message, this.index);
  }

  peekError(message: string): HeaderJsonError {
    return this.errorAt(message, Math.min(this.bytes.length, this.index + 1));
  }

  /** Gives a semantic error the current position, as serde_json's `fix_position` does. */
  fix(error: unknown): unknown {
    return error instanceof Unpositioned ? this.error(error.message) : error;
  }

  // ---- scanning

  peek(): number | undefined {
    return this.index < this.bytes.length ? this.bytes[this.index] : undefined;
  }

  skipWhitespace(): number | undefined {
    const bytes = this.bytes;
    while (this.index < bytes.length) {
      const b = bytes[this.index];
      if (b !== 0x20 && b !== 0x0a && b !== 0x09 && b !== 0x0d) return b;
      this.index++;
    }
    return undefined;
  }

  enterContainer(): void {
    this.remainingDepth--;
    if (this.remainingDepth === 0) throw this.peekError(Code.RecursionLimitExceeded);
  }

  leaveContainer(): void {
    this.remainingDepth++;
  }

  parseIdent(rest: string): void {
    for (let i = 0; i < rest.length; i++) {
      if (this.index >= this.bytes.length) throw this.error(Code.EofWhileParsingValue);
      const b = this.bytes[this.index++];
      if (b !== rest.charCodeAt(i)) throw this.error(Code.ExpectedSomeIdent);
    }
  }

  /** Parses a number whose first byte ('-' or a digit) is at `index`. */
  parseNumber(): NumberContent {
    const start = this.index;
    const bytes = this.bytes;
    const negative = bytes[this.index] === 0x2d;
    if (negative) this.index++;
    if (this.index >= bytes.length) throw this.error(Code.EofWhileParsingValue);
    const first = bytes[this.index++];
    if (first === 0x30) {
      const next = this.peek();
      if (next !== undefined && isDigit(next)) throw this.peekError(Code.InvalidNumber);
    } else if (first >= 0x31 && first <= 0x39) {
      while (this.index < bytes.length && isDigit(bytes[this.index])) this.index++;
    } else {
      throw this.error(Code.InvalidNumber);
    }
    let isFloat = false;
    if (this.peek() === 0x2e) {
      isFloat = true;
      this.index++;
      const digitsStart = this.index;
      while (this.index < bytes.length && isDigit(bytes[this.index])) this.index++;
      if (this.index === digitsStart) {
        if (this.index < bytes.length) throw this.peekError(Code.InvalidNumber);
        throw this.peekError(Code.EofWhileParsingValue);
      }
    }
    const e = this.peek();
    if (e === 0x65 || e === 0x45) {
      isFloat = true;
      this.index++;
      const sign = this.peek();
      if (sign === 0x2b || sign === 0x2d) this.index++;
      if (this.index >= bytes.length) throw this.error(Code.EofWhileParsingValue);
      const d = bytes[this.index++];
      if (!isDigit(d)) throw this.error(Code.InvalidNumber);
      while (this.index < bytes.length && isDigit(bytes[this.index])) this.index++;
    }
    const literal = asciiSlice(bytes, start, this.index);
    if (!isFloat) {
      const digits = negative ? literal.slice(1) : literal;
      // Without leading zeros, more than 20 digits is past u64 (and i64): no BigInt, whose
      // parsing time grows with the square of the length (a 100 MB header could hold one number).
      const magnitude = digits.length <= U64_MAX_DIGITS ? BigInt(digits) : undefined;
      if (!negative) {
        // Integers past u64 become floats in serde_json, and an error past f64.
        if (magnitude !== undefined && magnitude <= U64_MAX) return { k: 'uint', v: magnitude <= MAX_SAFE ? Number(magnitude) : magnitude };
        return { k: 'float', v: this.finite(Number(digits)) };
      }
      // Negative integers that fit an i64 are signed; "-0" and anything below i64::MIN are floats.
      if (magnitude === undefined || magnitude === 0n || magnitude > 1n << 63n) return { k: 'float', v: -this.finite(Number(digits)) };
      return { k: 'int', v: magnitude <= MAX_SAFE ? -Number(magnitude) : -magnitude };
    }
    return { k: 'float', v: this.finite(Number(literal)) };
  }

  /** A parsed float, or serde_json's error for one past f64 (at the end of the number). */
  private finite(value: number): number {
    if (!Number.isFinite(value)) throw this.error(Code.NumberOutOfRange);
    return value;
  }

  /** Parses a string whose opening quote is at `index`. Returns its value when `build`. */
  parseString(build: boolean): string {
    const bytes = this.bytes;
    this.index++; // opening quote
    const start = this.index;
    // Fast path: no escapes.
    while (this.index < bytes.length) {
      const b = bytes[this.index];
      if (b === 0x22) {
        const value = build ? utf8Slice(bytes, start, this.index) : '';
        this.index++;
        return value;
      }
      if (b === 0x5c) break;
      if (b < 0x20) {
        this.index++;
        throw this.error(Code.ControlCharacter);
      }
      this.index++;
    }
    if (this.index >= bytes.length) throw this.error(Code.EofWhileParsingString);
    // Slow path with escapes.
    let out = build ? utf8Slice(bytes, start, this.index) : '';
    let runStart = this.index;
    while (true) {
      if (this.index >= bytes.length) throw this.error(Code.EofWhileParsingString);
      const b = bytes[this.index];
      if (b === 0x22) {
        if (build) out += utf8Slice(bytes, runStart, this.index);
        this.index++;
        return out;
      }
      if (b < 0x20) {
        this.index++;
        throw this.error(Code.ControlCharacter);
      }
      if (b !== 0x5c) {
        this.index++;
        continue;
      }
      if (build) out += utf8Slice(bytes, runStart, this.index);
      this.index++;
      if (this.index >= bytes.length) throw this.error(Code.EofWhileParsingString);
      const escape = bytes[this.index++];
      switch (escape) {
        case 0x22: out += '"'; break;
        case 0x5c: out += '\\'; break;
        case 0x2f: out += '/'; break;
        case 0x62: out += '\b'; break;
        case 0x66: out += '\f'; break;
        case 0x6e: out += '\n'; break;
        case 0x72: out += '\r'; break;
        case 0x74: out += '\t'; break;
        case 0x75: out += this.parseUnicodeEscape(); break;
        default: throw this.error(Code.InvalidEscape);
      }
      runStart = this.index;
    }
  }

  private decodeHexEscape(): number {
    if (this.index + 4 > this.bytes.length) {
      this.index = this.bytes.length;
      throw this.error(Code.EofWhileParsingString);
    }
    // serde_json consumes the four characters before judging them.
    let n = 0;
    let valid = true;
    for (let i = 0; i < 4; i++) {
      const value = hexValue(this.bytes[this.index++]);
      if (value < 0) valid = false;
      n = n * 16 + value;
    }
    if (!valid) throw this.error(Code.InvalidEscape);
    return n;
  }

  /** After `\u`: a code point, pairing surrogates; lone surrogates are errors (the header is a Rust str). */
  private parseUnicodeEscape(): string {
    const n = this.decodeHexEscape();
    if (n >= 0xdc00 && n <= 0xdfff) throw this.error(Code.LoneLeadingSurrogate);
    if (n < 0xd800 || n > 0xdbff) return String.fromCharCode(n);
    if (this.index >= this.bytes.length) throw this.error(Code.EofWhileParsingString);
    if (this.bytes[this.index++] !== 0x5c) throw this.error(Code.UnexpectedEndOfHexEscape);
    if (this.index >= this.bytes.length) throw this.error(Code.EofWhileParsingString);
    if (this.bytes[this.index++] !== 0x75) throw this.error(Code.UnexpectedEndOfHexEscape);
    const n2 = this.decodeHexEscape();
    if (n2 < 0xdc00 || n2 > 0xdfff) throw this.error(Code.LoneLeadingSurrogate);
    return String.fromCharCode(n, n2);
  }

  /** serde_json `deserialize_any`: any value; builds it only when `build` (else checks syntax). */
  parseAny(build: boolean): Content | undefined {
    const b = this.skipWhitespace();
    if (b === undefined) throw this.peekError(Code.EofWhileParsingValue);
    switch (b) {
      case 0x6e:
        this.index++;
        this.parseIdent('ull');
        return build ? { k: 'null' } : undefined;
      case 0x74:
        this.index++;
        this.parseIdent('rue');
        return build ? { k: 'bool', v: true } : undefined;
      case 0x66:
        this.index++;
        this.parseIdent('alse');
        return build ? { k: 'bool', v: false } : undefined;
      case 0x22: {
        const s = this.parseString(build);
        return build ? { k: 'str', v: s } : undefined;
      }
      case 0x5b: {
        this.enterContainer();
        this.index++;
        const items: Content[] = [];
        let first = true;
        while (true) {
          let c = this.skipWhitespace();
          if (c === 0x5d) break;
          if (c === 0x2c && !first) {
            this.index++;
            c = this.skipWhitespace();
          } else if (c === undefined) {
            throw this.peekError(Code.EofWhileParsingList);
          } else if (!first) {
            throw this.peekError(Code.ExpectedListCommaOrEnd);
          }
          first = false;
          if (c === 0x5d) throw this.peekError(Code.TrailingComma);
          if (c === undefined) throw this.peekError(Code.EofWhileParsingValue);
          const item = this.parseAny(build);
          if (build) items.push(item!);
        }
        this.index++; // ']'
        this.leaveContainer();
        return build ? { k: 'seq', v: items } : undefined;
      }
      case 0x7b: {
        this.enterContainer();
        this.index++;
        const entries: [string, Content][] = [];
        let first = true;
        while (true) {
          const key = this.nextKey(first, build);
          first = false;
          if (key === undefined) break;
          this.parseColon();
          const value = this.parseAny(build);
          if (build) entries.push([key, value!]);
        }
        this.index++; // '}'
        this.leaveContainer();
        return build ? { k: 'map', v: entries } : undefined;
      }
      default:
        if (b === 0x2d || isDigit(b)) return this.parseNumber();
        throw this.peekError(Code.ExpectedSomeValue);
    }
  }

  /** serde_json `MapAccess::next_key`: the next key, or undefined at '}' (left unconsumed). */
  nextKey(first: boolean, build: boolean): string | undefined {
    let c = this.skipWhitespace();
    if (c === 0x7d) return undefined;
    if (c === 0x2c && !first) {
      this.index++;
      c = this.skipWhitespace();
    } else if (c === undefined) {
      throw this.peekError(Code.EofWhileParsingObject);
    } else if (!first) {
      throw this.peekError(Code.ExpectedObjectCommaOrEnd);
    }
    if (c === 0x22) return this.parseString(build);
    if (c === 0x7d) throw this.peekError(Code.TrailingComma);
    if (c === undefined) throw this.peekError(Code.EofWhileParsingValue);
    throw this.peekError(Code.KeyMustBeAString);
  }

  parseColon(): void {
    const c = this.skipWhitespace();
    if (c === 0x3a) {
      this.index++;
      return;
    }
    if (c === undefined) throw this.peekError(Code.EofWhileParsingObject);
    throw this.peekError(Code.ExpectedColon);
  }

  /** serde_json `peek_invalid_type`: the "invalid type: X, expected Y" error for the value ahead. */
  invalidTypeAhead(expected: string): HeaderJsonError {
    const b = this.peek();
    let unexpected: string;
    switch (b) {
      case 0x6e:
        this.index++;
        this.parseIdent('ull');
        unexpected = 'null';
        break;
      case 0x74:
        this.index++;
        this.parseIdent('rue');
        unexpected = 'boolean `true`';
        break;
      case 0x66:
        this.index++;
        this.parseIdent('alse');
        unexpected = 'boolean `false`';
        break;
      case 0x22:
        unexpected = `string ${rustDebugString(this.parseString(true))}`;
        break;
      case 0x5b:
        unexpected = 'sequence';
        break;
      case 0x7b:
        unexpected = 'map';
        break;
      default:
        if (b !== undefined && (b === 0x2d || isDigit(b))) {
          const n = this.parseNumber();
          unexpected = n.k === 'float' ? `floating point \`${ryuFormat(n.v)}\`` : `integer \`${String(n.v)}\``;
          break;
        }
        return this.peekError(Code.ExpectedSomeValue);
    }
    return this.error(`invalid type: ${unexpected}, expected ${expected}`);
  }

  /** `__metadata__`: Option<HashMap<String, String>>, typed while streaming. */
  parseMetadata(): Map<string, string> | null {
    let b = this.skipWhitespace();
    if (b === 0x6e) {
      this.index++;
      this.parseIdent('ull');
      return null;
    }
    b = this.skipWhitespace();
    if (b === undefined) throw this.peekError(Code.EofWhileParsingValue);
    if (b !== 0x7b) throw this.invalidTypeAhead('a map');
    this.enterContainer();
    this.index++;
    const map = new Map<string, string>();
    let first = true;
    while (true) {
      const key = this.nextKey(first, true);
      first = false;
      if (key === undefined) break;
      this.parseColon();
      const c = this.skipWhitespace();
      if (c === undefined) throw this.peekError(Code.EofWhileParsingValue);
      if (c !== 0x22) throw this.invalidTypeAhead('a string');
      map.set(key, this.parseString(true));
    }
    this.index++;
    this.leaveContainer();
    return map;
  }
}

// ---------------------------------------------------------------------------------------------
// Typing one buffered tensor entry, as serde's ContentRefDeserializer does. serde_json words
// "invalid type/value" itself (null as "null", floats through ryu), whatever the path.

function unexpected(c: Content): string {
  switch (c.k) {
    case 'uint':
    case 'int':
      return `integer \`${String(c.v)}\``;
    case 'float':
      return `floating point \`${ryuFormat(c.v)}\``;
    case 'str':
      return `string ${rustDebugString(c.v)}`;
    case 'bool':
      return `boolean \`${c.v}\``;
    case 'null':
      return 'null';
    case 'seq':
      return 'sequence';
    case 'map':
      return 'map';
  }
}

const invalidType = (c: Content, expected: string) => new Unpositioned(`invalid type: ${unexpected(c)}, expected ${expected}`);
const invalidLength = (length: number, expected: string) => new Unpositioned(`invalid length ${length}, expected ${expected}`);
const inSeq = (n: number) => (n === 1 ? '1 element in sequence' : `${n} elements in sequence`);

const DTYPE_SET = new Set<string>(DTYPES);
const DTYPE_LIST = DTYPES.map((d) => `\`${d}\``).join(', ');

function toUsize(c: Content): U64 {
  if (c.k === 'uint') return c.v;
  if (c.k === 'int') return fail(new Unpositioned(`invalid value: integer \`${String(c.v)}\`, expected usize`));
  return fail(invalidType(c, 'usize'));
}

function toDtype(c: Content): DType {
  let variant: string;
  if (c.k === 'str') {
    variant = c.v;
  } else if (c.k === 'map') {
    if (c.v.length !== 1) throw new Unpositioned('invalid value: map, expected map with a single key');
    variant = c.v[0][0];
    if (DTYPE_SET.has(variant) && c.v[0][1].k !== 'null') throw invalidType(c.v[0][1], 'unit');
  } else {
    throw invalidType(c, 'string or map');
  }
  if (!DTYPE_SET.has(variant)) throw new Unpositioned(`unknown variant \`${variant}\`, expected one of ${DTYPE_LIST}`);
  return variant as DType;
}

function toShape(c: Content): U64[] {
  if (c.k !== 'seq') throw invalidType(c, 'a sequence');
  return c.v.map(toUsize);
}

function toOffsets(c: Content): [U64, U64] {
  const expected = 'a tuple of size 2';
  if (c.k !== 'seq') throw invalidType(c, expected);
  if (c.v.length < 1) throw invalidLength(0, expected);
  const begin = toUsize(c.v[0]);
  if (c.v.length < 2) throw invalidLength(1, expected);
  const end = toUsize(c.v[1]);
  if (c.v.length > 2) throw invalidLength(c.v.length, inSeq(2));
  return [begin, end];
}

function toTensorInfo(name: string, c: Content): RawTensorEntry {
  let dtype: DType | undefined;
  let shape: U64[] | undefined;
  let offsets: [U64, U64] | undefined;
  if (c.k === 'map') {
    for (const [key, value] of c.v) {
      if (key === 'dtype') {
        if (dtype !== undefined) throw new Unpositioned('duplicate field `dtype`');
        dtype = toDtype(value);
      } else if (key === 'shape') {
        if (shape !== undefined) throw new Unpositioned('duplicate field `shape`');
        shape = toShape(value);
      } else if (key === 'data_offsets') {
        if (offsets !== undefined) throw new Unpositioned('duplicate field `data_offsets`');
        offsets = toOffsets(value);
      }
      // Unknown fields are ignored, as serde does by default.
    }
    if (dtype === undefined) throw new Unpositioned('missing field `dtype`');
    if (shape === undefined) throw new Unpositioned('missing field `shape`');
    if (offsets === undefined) throw new Unpositioned('missing field `data_offsets`');
  } else if (c.k === 'seq') {
    // serde also accepts a struct written as a sequence of its fields.
    const expected = 'struct TensorInfo with 3 elements';
    if (c.v.length < 1) throw invalidLength(0, expected);
    dtype = toDtype(c.v[0]);
    if (c.v.length < 2) throw invalidLength(1, expected);
    shape = toShape(c.v[1]);
    if (c.v.length < 3) throw invalidLength(2, expected);
    offsets = toOffsets(c.v[2]);
    if (c.v.length > 3) throw invalidLength(c.v.length, inSeq(3));
  } else {
    throw invalidType(c, 'struct TensorInfo');
  }
  return { name, dtype, shape, begin: offsets[0], end: offsets[1] };
}

function fail(error: Unpositioned): never {
  throw error;
}

// ---------------------------------------------------------------------------------------------

/**
 * Parses and types a header (already valid UTF-8). Throws HeaderJsonError with serde_json's
 * message for anything the reference would refuse to deserialize. Headers in the common form
 * take the fast path; the result is the same either way.
 */
export function parseHeaderJson(bytes: Uint8Array): RawHeader {
  return parseCommonHeaderJson(bytes) ?? parseHeaderJsonExact(bytes);
}

/** The exact parser alone: every header, every error (see parseHeaderJson). */
export function parseHeaderJsonExact(bytes: Uint8Array): RawHeader {
  const p = new Parser(bytes);
  // Top level: deserialize_map of HashMetadata.
  const b = p.skipWhitespace();
  if (b === undefined) throw p.peekError(Code.EofWhileParsingValue);
  if (b !== 0x7b) throw p.invalidTypeAhead('struct HashMetadata');
  p.enterContainer();
  p.index++;
  let metadata: Map<string, string> | null | undefined;
  const entries: { name: string; valueAt: number }[] = [];
  let first = true;
  while (true) {
    const key = p.nextKey(first, true);
    first = false;
    if (key === undefined) break;
    if (key === '__metadata__') {
      if (metadata !== undefined) {
        // serde stops at the duplicate key, then consumes whitespace and a '}' if one follows.
        if (p.skipWhitespace() === 0x7d) p.index++;
        throw p.error('duplicate field `__metadata__`');
      }
      p.parseColon();
      metadata = p.parseMetadata();
    } else {
      p.parseColon();
      p.skipWhitespace();
      entries.push({ name: key, valueAt: p.index });
      p.parseAny(false);
    }
  }
  p.index++; // '}'
  p.leaveContainer();

  // Phase two: type each tensor entry from its text; errors take the position after the object.
  const byName = new Map<string, RawTensorEntry>();
  for (const entry of entries) {
    const reader = new Parser(bytes);
    reader.index = entry.valueAt;
    const content = reader.parseAny(true)!;
    try {
      byName.set(entry.name, toTensorInfo(entry.name, content));
    } catch (error) {
      throw p.fix(error);
    }
  }

  if (p.skipWhitespace() !== undefined) throw p.peekError(Code.TrailingCharacters);
  return { metadata: metadata ?? null, tensors: [...byName.values()] };
}

// ---------------------------------------------------------------------------------------------
// The fast path. Safetensors writers emit one narrow form: plain keys, the three fields of each
// tensor once, dimensions and offsets as bare digits, metadata mapping strings to strings. On
// that form the exact parser cannot fail and its result is plain to see, so one tight scan of
// the bytes produces it without buffering `Content` values or making BigInts. The scan gives up
// (returns undefined) at the first byte outside the form, and the exact parser then decides,
// errors included. Giving up is always safe; accepting is only allowed where the exact parser
// provably returns the same header:
// - nesting is at most 3 deep (the recursion limit is 128);
// - a key never has an escape or a control character, so its value is its UTF-8 text; metadata
//   values with escapes are decoded by the exact parser's own string reader;
// - no key repeats (no tensor name, no `__metadata__`, no metadata key, no tensor field), so
//   the "last value wins" and "duplicate field" rules never come into play;
// - a tensor is an object of exactly `dtype` (a plain string naming a known dtype), `shape` and
//   `data_offsets` (lists of unsigned integers, two for the offsets): no unknown fields, no
//   struct-as-sequence;
// - an integer is `0` or a non-zero digit then digits, at most 15 of them (below 2^53, exact as
//   a number), directly followed by whitespace, `,` or `]`: no sign, fraction or exponent, which
//   serde would type as i64 or f64;
// - nothing but whitespace (the same four bytes as JSON) follows the closing brace.

/** 10^15 - 1 < 2^53: up to 15 digits, an integer accumulated in a float64 is exact. */
const MAX_FAST_DIGITS = 15;

const asciiBytes = (text: string) => Uint8Array.from(text, (c) => c.charCodeAt(0));
const DTYPE_FIELD = asciiBytes('"dtype"');
const SHAPE_FIELD = asciiBytes('"shape"');
const OFFSETS_FIELD = asciiBytes('"data_offsets"');
const NULL_LITERAL = asciiBytes('null');
/** Each dtype's name as bytes, by name length. */
const DTYPES_BY_LENGTH = new Map<number, [DType, Uint8Array][]>();
for (const dtype of DTYPES) {
  const list = DTYPES_BY_LENGTH.get(dtype.length) ?? [];
  list.push([dtype, asciiBytes(dtype)]);
  DTYPES_BY_LENGTH.set(dtype.length, list);
}

class CommonFormScanner {
  index = 0;

  constructor(private readonly bytes: Uint8Array) {}

  /** Skips whitespace; the byte after it, or -1 at the end. */
  skipWhitespace(): number {
    const bytes = this.bytes;
    let i = this.index;
    while (i < bytes.length) {
      const b = bytes[i];
      if (b !== 0x20 && b !== 0x0a && b !== 0x09 && b !== 0x0d) break;
      i++;
    }
    this.index = i;
    return i < bytes.length ? bytes[i] : -1;
  }

  /** Consumes `literal` if the bytes at `index` are exactly it. */
  consume(literal: Uint8Array): boolean {
    const bytes = this.bytes;
    const at = this.index;
    if (at + literal.length > bytes.length) return false;
    for (let k = 0; k < literal.length; k++) if (bytes[at + k] !== literal[k]) return false;
    this.index = at + literal.length;
    return true;
  }

  /**
   * Where the string whose opening quote is at `index` ends (its closing quote), if it has no
   * escape and no control character; -1 otherwise. Does not move `index`.
   */
  plainStringEnd(): number {
    const bytes = this.bytes;
    for (let i = this.index + 1; i < bytes.length; i++) {
      const b = bytes[i];
      if (b === 0x22) return i;
      if (b === 0x5c || b < 0x20) return -1;
    }
    return -1;
  }

  /** The string at `index`, if plain (see plainStringEnd). */
  plainString(): string | undefined {
    const end = this.plainStringEnd();
    if (end < 0) return undefined;
    const value = utf8Slice(this.bytes, this.index + 1, end);
    this.index = end + 1;
    return value;
  }

  /** The dtype named by the plain string at `index`, matched on its bytes (no string is made). */
  dtype(): DType | undefined {
    const end = this.plainStringEnd();
    if (end < 0) return undefined;
    const start = this.index + 1;
    const candidates = DTYPES_BY_LENGTH.get(end - start);
    if (candidates === undefined) return undefined;
    const bytes = this.bytes;
    next: for (const [dtype, name] of candidates) {
      for (let k = 0; k < name.length; k++) if (bytes[start + k] !== name[k]) continue next;
      this.index = end + 1;
      return dtype;
    }
    return undefined;
  }

  /** Any string at `index`: escapes go through the exact parser, which refuses what serde refuses. */
  string(): string | undefined {
    const plain = this.plainString();
    if (plain !== undefined) return plain;
    const exact = new Parser(this.bytes);
    exact.index = this.index;
    try {
      const value = exact.parseString(true);
      this.index = exact.index;
      return value;
    } catch {
      return undefined;
    }
  }

  /** An unsigned integer in bare digits at `index` (see MAX_FAST_DIGITS); -1 if not one. */
  plainInteger(): number {
    const bytes = this.bytes;
    const start = this.index;
    let i = start;
    let value = 0;
    while (i < bytes.length) {
      const digit = bytes[i] - 0x30;
      if (digit < 0 || digit > 9) break;
      value = value * 10 + digit;
      i++;
    }
    const digits = i - start;
    if (digits === 0 || digits > MAX_FAST_DIGITS || (digits > 1 && bytes[start] === 0x30)) return -1;
    this.index = i;
    return value;
  }

  /** `[` plain integers `]`, the bracket at `index`; after each integer only whitespace, `,` or `]`. */
  integerList(): number[] | undefined {
    this.index++;
    const values: number[] = [];
    if (this.skipWhitespace() === 0x5d) {
      this.index++;
      return values;
    }
    while (true) {
      const value = this.plainInteger();
      if (value < 0) return undefined;
      values.push(value);
      const next = this.skipWhitespace();
      if (next === 0x5d) {
        this.index++;
        return values;
      }
      if (next !== 0x2c) return undefined;
      this.index++;
      this.skipWhitespace();
    }
  }

  /** A tensor's value, the opening brace at `index`: exactly dtype, shape and data_offsets. */
  tensor(name: string): RawTensorEntry | undefined {
    this.index++;
    let dtype: DType | undefined;
    let shape: number[] | undefined;
    let offsets: number[] | undefined;
    let next = this.skipWhitespace();
    while (true) {
      if (next !== 0x22) return undefined;
      if (this.consume(DTYPE_FIELD)) {
        if (dtype !== undefined || this.skipWhitespace() !== 0x3a) return undefined;
        this.index++;
        if (this.skipWhitespace() !== 0x22) return undefined;
        dtype = this.dtype();
        if (dtype === undefined) return undefined;
      } else if (this.consume(SHAPE_FIELD)) {
        if (shape !== undefined || this.skipWhitespace() !== 0x3a) return undefined;
        this.index++;
        if (this.skipWhitespace() !== 0x5b) return undefined;
        shape = this.integerList();
        if (shape === undefined) return undefined;
      } else if (this.consume(OFFSETS_FIELD)) {
        if (offsets !== undefined || this.skipWhitespace() !== 0x3a) return undefined;
        this.index++;
        if (this.skipWhitespace() !== 0x5b) return undefined;
        offsets = this.integerList();
        if (offsets === undefined || offsets.length !== 2) return undefined;
      } else {
        return undefined; // another field, or a field name with an escape
      }
      next = this.skipWhitespace();
      if (next === 0x7d) break;
      if (next !== 0x2c) return undefined;
      this.index++;
      next = this.skipWhitespace();
    }
    this.index++;
    if (dtype === undefined || shape === undefined || offsets === undefined) return undefined;
    return { name, dtype, shape, begin: offsets[0], end: offsets[1] };
  }

  /** `__metadata__`'s value at `index`: null, or an object of distinct plain keys to strings. */
  metadata(): Map<string, string> | null | undefined {
    if (this.consume(NULL_LITERAL)) return null;
    if (this.bytes[this.index] !== 0x7b) return undefined;
    this.index++;
    const map = new Map<string, string>();
    let next = this.skipWhitespace();
    if (next === 0x7d) {
      this.index++;
      return map;
    }
    while (true) {
      if (next !== 0x22) return undefined;
      const key = this.plainString();
      if (key === undefined || map.has(key) || this.skipWhitespace() !== 0x3a) return undefined;
      this.index++;
      if (this.skipWhitespace() !== 0x22) return undefined;
      const value = this.string();
      if (value === undefined) return undefined;
      map.set(key, value);
      next = this.skipWhitespace();
      if (next === 0x7d) {
        this.index++;
        return map;
      }
      if (next !== 0x2c) return undefined;
      this.index++;
      next = this.skipWhitespace();
    }
  }
}

/**
 * The header if it is in the common form described above (then it equals what
 * parseHeaderJsonExact returns), else undefined: the caller must then use the exact parser.
 */
export function parseCommonHeaderJson(bytes: Uint8Array): RawHeader | undefined {
  const scanner = new CommonFormScanner(bytes);
  if (scanner.skipWhitespace() !== 0x7b) return undefined;
  scanner.index++;
  let metadata: Map<string, string> | null = null;
  let sawMetadata = false;
  const tensors: RawTensorEntry[] = [];
  const names = new Set<string>();
  let next = scanner.skipWhitespace();
  if (next !== 0x7d) {
    while (true) {
      if (next !== 0x22) return undefined;
      const key = scanner.plainString();
      if (key === undefined || scanner.skipWhitespace() !== 0x3a) return undefined;
      scanner.index++;
      const valueStart = scanner.skipWhitespace();
      if (key === '__metadata__') {
        if (sawMetadata) return undefined;
        sawMetadata = true;
        const value = scanner.metadata();
        if (value === undefined) return undefined;
        metadata = value;
      } else {
        if (valueStart !== 0x7b || names.has(key)) return undefined;
        names.add(key);
        const tensor = scanner.tensor(key);
        if (tensor === undefined) return undefined;
        tensors.push(tensor);
      }
      next = scanner.skipWhitespace();
      if (next === 0x7d) break;
      if (next !== 0x2c) return undefined;
      scanner.index++;
      next = scanner.skipWhitespace();
    }
  }
  scanner.index++;
  if (scanner.skipWhitespace() !== -1) return undefined;
  return { metadata, tensors };
}

// ---------------------------------------------------------------------------------------------
// Text helpers.

function isDigit(b: number): boolean {
  return b >= 0x30 && b <= 0x39;
}

function hexValue(b: number): number {
  if (b >= 0x30 && b <= 0x39) return b - 0x30;
  if (b >= 0x61 && b <= 0x66) return b - 0x61 + 10;
  if (b >= 0x41 && b <= 0x46) return b - 0x41 + 10;
  return -1;
}

/** Chunk of String.fromCharCode.apply: far below the engines' limit on argument count. */
const ASCII_CHUNK = 4096;

function asciiSlice(bytes: Uint8Array, start: number, end: number): string {
  // One call per chunk builds a flat string; concatenating char by char allocates one per byte.
  if (end - start <= ASCII_CHUNK) return String.fromCharCode.apply(null, bytes.subarray(start, end) as unknown as number[]);
  const parts: string[] = [];
  for (let i = start; i < end; i += ASCII_CHUNK) parts.push(asciiSlice(bytes, i, Math.min(end, i + ASCII_CHUNK)));
  return parts.join('');
}

function utf8Slice(bytes: Uint8Array, start: number, end: number): string {
  return textDecoder.decode(bytes.subarray(start, end));
}

/** Rust's `{:?}` of a str, as serde prints unexpected strings. */
export function rustDebugString(s: string): string {
  let out = '"';
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (cp === 0) out += '\\0';
    else if (cp < 0x20 || cp === 0x7f) out += `\\u{${cp.toString(16)}}`;
    else out += ch;
  }
  return out + '"';
}

/** Shortest round-trip digits and decimal exponent of a finite, non-zero float. */
function shortestDigits(value: number): { digits: string; exponent: number } {
  const [mantissa, exp] = Math.abs(value).toExponential().split('e');
  return { digits: mantissa.replace('.', ''), exponent: Number(exp) };
}

/**
 * How serde_json prints floats in its error messages (checked against safetensors 0.8.0): the
 * shortest round-trip digits, plain decimal for 1e-5 <= |x| < 1e16, else scientific with an
 * explicit '+' on positive exponents.
 */
export function ryuFormat(value: number): string {
  const sign = value < 0 || Object.is(value, -0) ? '-' : '';
  if (value === 0) return `${sign}0.0`;
  const { digits, exponent } = shortestDigits(value);
  const length = digits.length;
  const k = exponent - length + 1; // value = digits * 10^k
  const kk = length + k;
  let text: string;
  if (k >= 0 && kk <= 16) text = digits + '0'.repeat(k) + '.0';
  else if (kk > 0 && kk <= 16) text = digits.slice(0, kk) + '.' + digits.slice(kk);
  else if (kk > -5 && kk <= 0) text = '0.' + '0'.repeat(-kk) + digits;
  else {
    const exp = kk - 1;
    const mantissa = length === 1 ? digits : `${digits[0]}.${digits.slice(1)}`;
    text = `${mantissa}e${exp >= 0 ? '+' : ''}${exp}`;
  }
  return sign + text;
}
