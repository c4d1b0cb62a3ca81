// Makes a value safe to print on a terminal: C0 and C1 control characters, DEL and the Unicode
// line and bidi controls are written as visible escapes, so a crafted name, label or release
// field cannot draw fake table rows or send terminal sequences. JSON output does not need this.

// C0 (incl. TAB, LF, CR, ESC), DEL, C1, and the line/paragraph separators and bidi overrides
// that reorder or break what a terminal shows.
// eslint-disable-next-line no-control-regex
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

const NAMED: Readonly<Record<string, string>> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };

function escapeOne(ch: string): string {
  const named = NAMED[ch];
  if (named !== undefined) return named;
  const code = ch.charCodeAt(0);
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u${code.toString(16)}`;
}

/** `value` with every control character shown as an escape (`\x1b`, `\n`, ...). */
export function escapeControl(value: string): string {
  UNSAFE.lastIndex = 0;
  return UNSAFE.test(value) ? value.replace(UNSAFE, escapeOne) : value;
}

/**
 * Escapes every control character but the line breaks a renderer put between its lines: for
 * whole blocks of text. Values in a block should still be escaped where they are interpolated.
 */
export function escapeControlKeepLines(text: string): string {
  return text.split("\n").map(escapeControl).join("\n");
}
