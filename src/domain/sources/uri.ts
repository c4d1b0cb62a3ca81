// Parsing what `install` is given: file:, http:, https: or oci: (the schemes Kairos accepts),
// and the file name an image gets in the store.
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ExtctlError } from "../../util/errors.js";
import { checkSafeName, escapeText, quoteName } from "../store/names.js";

export type SourceScheme = "file" | "http" | "https" | "oci";

export const SCHEMES: readonly SourceScheme[] = ["file", "http", "https", "oci"];

export function schemeOf(uri: string): SourceScheme {
  const m = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(uri);
  const scheme = m?.[1]?.toLowerCase();
  if (scheme && (SCHEMES as readonly string[]).includes(scheme)) return scheme as SourceScheme;
  throw new ExtctlError(
    "invalid-uri",
    scheme
      ? `unsupported URI scheme "${scheme}:" in ${JSON.stringify(uri)}`
      : `${JSON.stringify(uri)} is not a URI`,
    { hint: "use file:, http:, https: or oci:, e.g. https://example.org/tool.sysext.raw" },
  );
}

/** Host path of a file: URI (file:///abs, file:/abs or file:relative). */
export function filePathOf(uri: string): string {
  if (uri.startsWith("file://")) {
    try {
      return fileURLToPath(uri);
    } catch (e) {
      throw new ExtctlError(
        "invalid-uri",
        `invalid file URI ${JSON.stringify(uri)}: ${(e as Error).message}`,
        {},
      );
    }
  }
  const rest = uri.slice("file:".length);
  if (rest.length === 0)
    throw new ExtctlError("invalid-uri", `the file URI ${JSON.stringify(uri)} names no file`, {});
  let decoded: string;
  try {
    decoded = decodeURIComponent(rest);
  } catch {
    throw new ExtctlError(
      "invalid-uri",
      `invalid percent-encoding in the file URI ${JSON.stringify(uri)}`,
      { hint: "write a literal % as %25" },
    );
  }
  return path.resolve(decoded);
}

/**
 * Checks that `name` can be a file in the store: a safe, printable file name (names.ts), ending
 * in .raw so that systemd and `list` see it.
 */
export function checkStoreName(name: string, from: string): string {
  checkSafeName(name, from);
  if (!name.endsWith(".raw")) {
    throw new ExtctlError(
      "invalid-uri",
      `the file name ${quoteName(name)} from ${escapeText(from)} does not end in .raw, so systemd would not load it`,
      { hint: `pass --name ${name.replace(/\.[^.]*$/, "")}.raw to store it under another name` },
    );
  }
  return name;
}

export function httpFileName(uri: string): string {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    throw new ExtctlError("invalid-uri", `${JSON.stringify(uri)} is not a valid URL`, {});
  }
  if (!url.hostname)
    throw new ExtctlError("invalid-uri", `the URL ${JSON.stringify(uri)} has no host`, {});
  const last = url.pathname.split("/").filter(Boolean).at(-1) ?? "";
  let decoded: string;
  try {
    decoded = decodeURIComponent(last);
  } catch {
    decoded = last;
  }
  return decoded;
}
