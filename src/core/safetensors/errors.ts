// Errors of the safetensors reader, writer and checkpoint loader. Header errors carry the same
// text as the reference implementation (safetensors 0.8.0, Python binding) so users can search for
// them, plus a machine-readable rule for code and tests.

/** Which validation rule a header broke: one per error kind of the reference reader. */
export type HeaderRule =
  | 'header-too-small'
  | 'header-too-large'
  | 'invalid-header-length'
  | 'invalid-utf8'
  | 'invalid-json'
  | 'invalid-offset'
  | 'overflow'
  | 'misaligned-subbyte'
  | 'invalid-tensor-info'
  | 'incomplete-buffer';

/** Rules raised outside the header: decoding, writing and multi-file checkpoints. */
export type SafetensorsRule =
  | HeaderRule
  | 'io'
  | 'unsupported-dtype'
  | 'out-of-range'
  | 'invalid-spec'
  | 'incomplete-write'
  | 'target-exists'
  | 'invalid-index'
  | 'missing-shard'
  | 'tensor-not-in-shard'
  | 'unlisted-tensor'
  | 'ambiguous-folder'
  | 'no-weights';

export const HEADER_ERROR_PREFIX = 'Error while deserializing header: ';

export interface SafetensorsErrorDetails {
  rule: SafetensorsRule;
  /** The tensor involved, when there is one. */
  tensor?: string;
  /** The file involved, when known. */
  file?: string;
}

/**
 * Every error of this module. `name` is 'SafetensorError' like the reference Python exception,
 * so `${name}: ${message}` of a header error equals the reference text.
 */
export class SafetensorsError extends Error {
  readonly rule: SafetensorsRule;
  readonly tensor?: string;
  readonly file?: string;
  /** The reason alone, without the "Error while deserializing header: " prefix. */
  readonly reason: string;
  /** Structured fields for the worker pool, which re-creates errors from name/message/details. */
  readonly details: SafetensorsErrorDetails;

  constructor(message: string, details: SafetensorsErrorDetails, reason = message) {
    super(message);
    this.name = 'SafetensorError';
    this.rule = details.rule;
    this.tensor = details.tensor;
    this.file = details.file;
    this.reason = reason;
    this.details = details;
  }

  /** A header validation error, worded exactly like the reference. */
  static header(rule: HeaderRule, reason: string, tensor?: string, file?: string): SafetensorsError {
    return new SafetensorsError(HEADER_ERROR_PREFIX + reason, { rule, tensor, file }, reason);
  }

  isHeaderError(): boolean {
    return this.message.startsWith(HEADER_ERROR_PREFIX);
  }
}

export function isSafetensorsError(error: unknown): error is SafetensorsError {
  return error instanceof SafetensorsError;
}

/**
 * The rule of a SafetensorsError, also when it crossed a worker thread (the pool re-creates it as
 * a plain Error named 'SafetensorError' carrying `details`); undefined for other errors.
 */
export function safetensorsRuleOf(error: unknown): SafetensorsRule | undefined {
  if (error instanceof SafetensorsError) return error.rule;
  if (error instanceof Error && error.name === 'SafetensorError') {
    return (error as Error & { details?: Partial<SafetensorsErrorDetails> }).details?.rule;
  }
  return undefined;
}
