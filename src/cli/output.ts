// How `graft` writes: JSON streamed in pieces (a report of millions of tensors is larger than
// the longest string V8 can build), and a stdout that a reader may close early (`graft inspect
// big | head`) without a stack trace.
import { escapeControl } from '../core/text';

/** Pieces of at most about this many characters are handed to the writer. */
const CHUNK_CHARS = 64 * 1024;

// JSON.stringify escapes C0 controls; C1 controls and bidi marks are valid JSON unescaped but
// can still act on a terminal the JSON is printed to, so they are written as \u escapes too.
const UNSAFE_IN_JSON = /[\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

function jsonString(text: string): string {
  return JSON.stringify(text).replace(UNSAFE_IN_JSON, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * Writes `value` as JSON (as JSON.stringify with `indent` would, plus bigints as exact integers)
 * through `write`, in pieces of about CHUNK_CHARS, so memory does not grow with the output.
 */
export function writeJson(write: (text: string) => void, value: unknown, indent = 2): void {
  let buffer = '';
  const emit = (text: string) => {
    buffer += text;
    if (buffer.length >= CHUNK_CHARS) {
      write(buffer);
      buffer = '';
    }
  };
  const pad = (depth: number) => (indent > 0 ? '\n' + ' '.repeat(indent * depth) : '');
  const colon = indent > 0 ? ': ' : ':';
  const visit = (v: unknown, depth: number): void => {
    if (v === null || v === undefined || typeof v === 'function' || typeof v === 'symbol') return emit('null');
    if (typeof v === 'bigint') return emit(v.toString());
    if (typeof v === 'string') return emit(jsonString(v));
    if (typeof v === 'number') return emit(Number.isFinite(v) ? String(v) : 'null');
    if (typeof v === 'boolean') return emit(v ? 'true' : 'false');
    if (typeof (v as { toJSON?: unknown }).toJSON === 'function') return visit((v as { toJSON(): unknown }).toJSON(), depth);
    if (Array.isArray(v)) {
      if (v.length === 0) return emit('[]');
      emit('[');
      for (let i = 0; i < v.length; i++) {
        emit((i > 0 ? ',' : '') + pad(depth + 1));
        const item = v[i];
        visit(item === undefined || typeof item === 'function' ? null : item, depth + 1);
      }
      return emit(pad(depth) + ']');
    }
    let first = true;
    emit('{');
    for (const key of Object.keys(v as object)) {
      const item = (v as Record<string, unknown>)[key];
      if (item === undefined || typeof item === 'function' || typeof item === 'symbol') continue;
      emit((first ? '' : ',') + pad(depth + 1) + jsonString(key) + colon);
      first = false;
      visit(item, depth + 1);
    }
    emit(first ? '}' : pad(depth) + '}');
  };
  visit(value, 0);
  emit('\n');
  if (buffer) write(buffer);
}

/** Writes lines (joined by line breaks, one at the end) in pieces of about CHUNK_CHARS. */
export function writeLines(write: (text: string) => void, lines: Iterable<string>): void {
  let buffer = '';
  for (const line of lines) {
    buffer += line + '\n';
    if (buffer.length >= CHUNK_CHARS) {
      write(buffer);
      buffer = '';
    }
  }
  if (buffer) write(buffer);
}

/** The text of an error, made safe to print (it may quote names from files; see core/text.ts). */
export function errorMessage(error: unknown): string {
  return escapeControl(error instanceof Error ? error.message : String(error));
}
