// Resolving what the user typed to one image (spec/kairos.md "ours" 1): a name matches exactly,
// with or without `.raw`, `.sysext.raw` or `.confext.raw`; failing that, a bare name matches the
// one image that is that name plus a version (issue 14 item 4); a pattern only with --regex. A
// name or pattern that matches more than one image is an error that lists them.
import { ExtctlError } from "../../util/errors.js";

export const IMAGE_SUFFIX = ".raw";

const KNOWN_SUFFIXES = [".sysext.raw", ".confext.raw", ".raw"] as const;

export function isImageName(fileName: string): boolean {
  return (
    fileName.endsWith(IMAGE_SUFFIX) &&
    fileName.length > IMAGE_SUFFIX.length &&
    !fileName.startsWith(".")
  );
}

/** The file names that `query` can stand for, exactly. */
export function exactCandidates(query: string): string[] {
  const names = new Set<string>([query]);
  for (const suffix of KNOWN_SUFFIXES) names.add(query + suffix);
  return [...names];
}

/** The short name people use: the file name without `.sysext.raw` / `.confext.raw` / `.raw`. */
export function shortName(fileName: string): string {
  for (const suffix of KNOWN_SUFFIXES) {
    if (fileName.endsWith(suffix) && fileName.length > suffix.length)
      return fileName.slice(0, -suffix.length);
  }
  return fileName;
}

// What may follow NAME in `NAME-VERSION` / `NAME_VERSION`: a digit, or `v` and a digit, first
// (so `k3s` never finds `k3s-agent`, Kairos 4767), then version characters only.
const VERSION = /^v?[0-9][A-Za-z0-9.+~_-]*$/;

/**
 * The images of `available` that are the bare name `query` with a version: `NAME-VERSION` or
 * `NAME_VERSION` plus any of the known suffixes, VERSION starting with a digit or `v` and a
 * digit (`mytool` -> `mytool-v1.0.sysext.raw`, `mytool_1.2.raw`; never `mytool-agent.raw`,
 * `non-mytool.raw` or `mytoolx-1.raw`). A query that already ends in a suffix is a full file
 * name and has no versioned candidates. Sorted.
 */
export function versionedCandidates(query: string, available: readonly string[]): string[] {
  if (query.length === 0 || KNOWN_SUFFIXES.some((suffix) => query.endsWith(suffix))) return [];
  const found = new Set<string>();
  for (const name of available) {
    const short = shortName(name);
    if (short.length <= query.length + 1 || !short.startsWith(query)) continue;
    const separator = short[query.length];
    if (separator !== "-" && separator !== "_") continue;
    if (VERSION.test(short.slice(query.length + 1))) found.add(name);
  }
  return [...found].sort();
}

export interface MatchOptions {
  regex?: boolean;
  /** What we were looking in, for the error message ("the store /var/lib/kairos/extensions"). */
  where: string;
}

/** Picks exactly one of `available` (file names) for `query`, or throws a clear error. */
export function resolveName(
  query: string,
  available: readonly string[],
  options: MatchOptions,
): string {
  if (query.length === 0)
    throw new ExtctlError("usage", "the image name is empty", { exitCode: 2 });
  let matches: string[];
  if (options.regex) {
    let pattern: RegExp;
    try {
      pattern = new RegExp(query);
    } catch (e) {
      throw new ExtctlError(
        "usage",
        `invalid --regex pattern ${JSON.stringify(query)}: ${(e as Error).message}`,
        {
          exitCode: 2,
        },
      );
    }
    matches = available.filter((name) => pattern.test(name));
  } else {
    const wanted = new Set(exactCandidates(query));
    matches = available.filter((name) => wanted.has(name));
    if (matches.length === 0) {
      const versioned = versionedCandidates(query, available);
      if (versioned.length === 1) return versioned[0] as string;
      if (versioned.length > 1) {
        throw new ExtctlError(
          "ambiguous",
          `${JSON.stringify(query)} matches ${versioned.length} versioned images in ${options.where}: ${versioned.join(", ")}`,
          { hint: `give the full file name, for example ${versioned[versioned.length - 1]}` },
        );
      }
    }
  }
  matches = [...new Set(matches)].sort();
  if (matches.length === 1) return matches[0] as string;
  if (matches.length === 0) {
    const near = available.filter((n) => n.includes(query)).slice(0, 5);
    throw new ExtctlError(
      "not-found",
      `no image named ${JSON.stringify(query)} in ${options.where}`,
      {
        hint:
          near.length > 0
            ? `did you mean: ${near.join(", ")}?`
            : "run `list` to see the images there; a bare name also finds NAME-VERSION (VERSION starting with a digit or v and a digit); --regex matches a pattern",
      },
    );
  }
  throw new ExtctlError(
    "ambiguous",
    `${JSON.stringify(query)} matches ${matches.length} images in ${options.where}: ${matches.join(", ")}`,
    { hint: "give the full file name" },
  );
}

// Characters an image name may not hold (issue 12): control characters (C0, DEL, C1), format
// characters (bidi overrides, zero-width), line/paragraph separators, surrogates, private use
// and unassigned code points, and every space but U+0020. Printed raw, any of them could forge a
// table row or hide what a name really is; systemd refuses control characters in names too.
const UNSAFE_CHARACTER = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}]|(?! )\p{Zs}/u;

/** Text for a message: every character outside printable ASCII written as \u{…}. */
export function escapeText(text: string): string {
  let out = "";
  for (const ch of text) {
    const cp = ch.codePointAt(0) as number;
    out += cp < 0x20 || cp > 0x7e || ch === "\\" ? `\\u{${cp.toString(16)}}` : ch;
  }
  return out;
}

/** A name for messages, quoted and escaped (see escapeText). */
export function quoteName(name: string): string {
  return `"${escapeText(name).replace(/"/g, "\\u{22}")}"`;
}

// What a name may hold besides letters, marks and digits (any script): what image names use
// (`k3s-v1.29.0+k3s1.sysext.raw`, `tool_1.2~rc1.raw`, `a@b`), and the space. Everything else a
// shell gives meaning to ($ ` ' " \ ; & | < > ( ) { } [ ] * ? ! and more) is refused: a name is
// offered to shells by completion and typed by operators, and a file name needs none of them.
const NAME_PUNCTUATION = " ._+-~@,:=%^#";
const ALLOWED_CHARACTER = /^[\p{L}\p{M}\p{N} ._+\-~@,:=%^#]$/u;
/** For messages: what a name may hold. */
export const ALLOWED_NAME_CHARACTERS = `letters, digits, spaces and ${NAME_PUNCTUATION.trim().split("").join(" ")}`;

/**
 * Why `name` cannot be the file name of an image in a store, or undefined when it can: one
 * printable path component of at most 255 bytes, not hidden (temp files start with a dot), not
 * an option look-alike, no slash or backslash, no "..", and no character a shell would expand.
 * The one name check for every way a name comes in: --name, file and URL basenames, OCI titles
 * and classic-image file names, build names, catalog names.
 */
export function unsafeNameReason(name: string): string | undefined {
  if (name.length === 0) return "it is empty";
  if (Buffer.byteLength(name, "utf8") > 255) return "it is longer than 255 bytes";
  if (UNSAFE_CHARACTER.test(name))
    return "it holds a control, format or other non-printable character";
  if (name.includes("/") || name.includes("\\")) return "it holds a slash or backslash";
  if (name === "." || name === ".." || name.includes("..")) return 'it holds ".."';
  if (name.startsWith(".")) return "it starts with a dot (a hidden file)";
  if (name.startsWith("-")) return 'it starts with "-" (it would read as an option)';
  if (name !== name.trim()) return "it starts or ends with a space";
  for (const ch of name) {
    if (!ALLOWED_CHARACTER.test(ch))
      return `it holds ${quoteName(ch)}, which a shell would give meaning to; a name may hold ${ALLOWED_NAME_CHARACTERS} only`;
  }
  if (name.startsWith("~") || name.startsWith("#"))
    return `it starts with "${name[0]}" (a shell reads it as a home directory or a comment)`;
  return undefined;
}

/** Throws a clear error when `name` (from `from`) is not a safe image file name. */
export function checkSafeName(
  name: string,
  from: string,
  options: { hint?: string; exitCode?: number } = {},
): string {
  const reason = unsafeNameReason(name);
  if (reason !== undefined) {
    throw new ExtctlError(
      options.exitCode === 2 ? "usage" : "invalid-uri",
      `refusing the image name ${quoteName(name)} from ${escapeText(from)}: ${reason}`,
      {
        hint: options.hint ?? "pass --name NAME.raw with a name made of those characters",
        ...(options.exitCode === undefined ? {} : { exitCode: options.exitCode }),
      },
    );
  }
  return name;
}
