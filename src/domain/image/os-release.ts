// Parser for os-release and extension-release files, following systemd's env-file rules: quotes
// (single: literal, double: \-escapes of " \ ` $), backslash continuations, # and ; comments.

const MAX_RELEASE_BYTES = 64 * 1024;
const KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;

export type ReleaseFields = Record<string, string>;

/**
 * Parses os-release syntax into fields. Later assignments win; keys that are not valid
 * environment names are dropped, as systemd does.
 */
export function parseOsRelease(text: string): ReleaseFields {
  const fields: ReleaseFields = {};
  const input = text.length > MAX_RELEASE_BYTES ? text.slice(0, MAX_RELEASE_BYTES) : text;
  type State =
    | "preKey"
    | "key"
    | "preValue"
    | "value"
    | "valueEscape"
    | "single"
    | "double"
    | "doubleEscape"
    | "comment"
    | "commentEscape";
  let state: State = "preKey";
  let key = "";
  let value = "";
  // Unquoted trailing whitespace is dropped; this remembers where it began.
  let valueEnd = 0;
  const finish = () => {
    const k = key.trimEnd();
    if (KEY.test(k)) fields[k] = value.slice(0, valueEnd);
    key = "";
    value = "";
    valueEnd = 0;
  };
  for (const c of input) {
    const newline = c === "\n" || c === "\r";
    const space = c === " " || c === "\t";
    switch (state) {
      case "preKey":
        if (c === "#" || c === ";") state = "comment";
        else if (!newline && !space) {
          key = c;
          state = "key";
        }
        break;
      case "key":
        if (newline) {
          key = "";
          state = "preKey";
        } else if (c === "=") state = "preValue";
        else key += c;
        break;
      case "preValue":
        if (newline) {
          finish();
          state = "preKey";
        } else if (c === "'") state = "single";
        else if (c === '"') state = "double";
        else if (c === "\\") state = "valueEscape";
        else if (!space) {
          value += c;
          valueEnd = value.length;
          state = "value";
        }
        break;
      case "value":
        if (newline) {
          finish();
          state = "preKey";
        } else if (c === "\\") state = "valueEscape";
        else {
          value += c;
          if (!space) valueEnd = value.length;
        }
        break;
      case "valueEscape":
        if (!newline) {
          value += c;
          valueEnd = value.length;
        }
        state = "value";
        break;
      case "single":
        if (c === "'") state = "preValue";
        else {
          value += c;
          valueEnd = value.length;
        }
        break;
      case "double":
        if (c === '"') state = "preValue";
        else if (c === "\\") state = "doubleEscape";
        else {
          value += c;
          valueEnd = value.length;
        }
        break;
      case "doubleEscape":
        if (!newline) {
          value += '"\\`$'.includes(c) ? c : "\\" + c;
          valueEnd = value.length;
        }
        state = "double";
        break;
      case "comment":
        if (c === "\\") state = "commentEscape";
        else if (newline) state = "preKey";
        break;
      case "commentEscape":
        state = "comment";
        break;
    }
  }
  if (
    state === "preValue" ||
    state === "value" ||
    state === "valueEscape" ||
    state === "single" ||
    state === "double" ||
    state === "doubleEscape"
  )
    finish();
  return fields;
}

/** systemd's parse_boolean: the accepted spellings of true and false. */
export function parseBoolean(text: string): boolean | undefined {
  const t = text.trim().toLowerCase();
  if (["1", "yes", "y", "true", "t", "on"].includes(t)) return true;
  if (["0", "no", "n", "false", "f", "off"].includes(t)) return false;
  return undefined;
}
