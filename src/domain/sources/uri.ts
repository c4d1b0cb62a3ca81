// Parsing what `install` is given: a URI of a scheme some source handles (source-registry.ts),
// and the file name an image gets in the store.
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ExtctlError } from "../../util/errors.js";
import { checkSafeName, escapeText, quoteName } from "../store/names.js";
import { schemeList, sourceFor, type SourceDescriptor } from "./source-registry.js";

export { SCHEMES } from "./source-registry.js";

/** The scheme of a URI, lower case; undefined when the text does not start with one. */
export function uriScheme(uri: string): string | undefined {
  return /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(uri)?.[1]?.toLowerCase();
}

/** The source that handles a URI; refuses a URI of a scheme no source handles. */
export function sourceOf(uri: string): SourceDescriptor {
  const scheme = uriScheme(uri);
  const source = scheme === undefined ? undefined : sourceFor(scheme);
  if (source) return source;
  throw new ExtctlError(
    "invalid-uri",
    scheme
      ? `unsupported URI scheme "${scheme}:" in ${JSON.stringify(uri)}`
      : `${JSON.stringify(uri)} is not a URI`,
    { hint: `use ${schemeList()}, e.g. https://example.org/tool.sysext.raw` },
  );
}

export function schemeOf(uri: string): string {
  sourceOf(uri);
  return uriScheme(uri) as string;
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
