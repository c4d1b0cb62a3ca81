// Resolving what the user typed to one image (spec/kairos.md "ours" 1): a name matches exactly,
// with or without `.raw`, `.sysext.raw` or `.confext.raw`; a pattern only with --regex, and a
// pattern that matches more than one image is an error that lists them.
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
            : "run `list` to see the images there; --regex matches a pattern",
      },
    );
  }
  throw new ExtctlError(
    "ambiguous",
    `${JSON.stringify(query)} matches ${matches.length} images in ${options.where}: ${matches.join(", ")}`,
    { hint: "give the full file name" },
  );
}
