// Text from files (tensor names, metadata, card fields, GGUF strings) shown to people. A crafted
// name can hold terminal escape sequences (retitle the window, clear the screen, recolour), bare
// carriage returns and line breaks that forge lines, or bidirectional overrides that reorder what
// is read. Every human-readable output passes such text through escapeControl first.
// (No Node APIs here: the webviews use it too.)

// C0 controls, DEL, C1 controls, the line and paragraph separators and the bidi embedding,
// override and isolate marks.
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/** `text` with every control character written as a visible escape (`\n`, `\x1b`, `\u202e`). */
export function escapeControl(text: string): string {
  return text.replace(CONTROL, (c) => {
    if (c === '\n') return '\\n';
    if (c === '\r') return '\\r';
    if (c === '\t') return '\\t';
    const code = c.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}

/** Whether `text` holds a character escapeControl would rewrite. */
export function hasControl(text: string): boolean {
  CONTROL.lastIndex = 0;
  const found = CONTROL.test(text);
  CONTROL.lastIndex = 0;
  return found;
}
