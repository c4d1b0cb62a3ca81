// Errors meant for people: a stable code, one sentence on what went wrong and what to do.
// The CLI prints them without a stack trace; anything else is a bug and keeps its stack.

export type ErrorCode =
  | "usage"
  | "not-root"
  | "not-found"
  | "ambiguous"
  | "exists"
  | "invalid-uri"
  | "unsupported"
  | "download"
  | "checksum"
  | "tls"
  | "io"
  | "space"
  | "read-only"
  | "not-a-directory"
  | "outside-root"
  | "refresh"
  | "locked"
  | "format"
  | "incompatible"
  | "verity"
  | "signature"
  | "untrusted"
  | "policy"
  | "build"
  | "registry"
  | "config"
  | "catalog"
  | "internal";

/**
 * sysexits.h's EX_TEMPFAIL: a catalog, registry or server could not be reached (refused, DNS,
 * timeout, 5xx after retries, 429). A timer or a fleet tool tries later; it is no failed upgrade.
 */
export const EX_TEMPFAIL = 75;

export class ExtctlError extends Error {
  readonly code: ErrorCode;
  readonly exitCode: number;
  readonly hint: string | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    options: { hint?: string; cause?: unknown; exitCode?: number } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "ExtctlError";
    this.code = code;
    this.hint = options.hint;
    this.exitCode = options.exitCode ?? (code === "usage" ? 2 : 1);
  }
}

export class UsageError extends ExtctlError {
  constructor(message: string, hint?: string) {
    super("usage", message, hint === undefined ? {} : { hint });
  }
}

/** The error says a peer could not be reached now (exit code EX_TEMPFAIL): worth trying later. */
export function isTemporary(e: unknown): boolean {
  return e instanceof ExtctlError && e.exitCode === EX_TEMPFAIL;
}

/** A thrown value's message: an Error's own, anything else as text. */
export function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export function isExtctlError(e: unknown): e is ExtctlError {
  return e instanceof ExtctlError;
}

/** The errno code of a Node system error, if it is one. */
export function errnoCode(e: unknown): string | undefined {
  if (typeof e === "object" && e !== null && "code" in e) {
    const code = e.code;
    return typeof code === "string" ? code : undefined;
  }
  return undefined;
}

/**
 * Turns a filesystem error into a sentence for people. `what` says what we were doing,
 * e.g. "create the store directory /var/lib/kairos/extensions".
 */
export function fsError(e: unknown, what: string): ExtctlError {
  if (e instanceof ExtctlError) return e;
  const code = errnoCode(e);
  switch (code) {
    case "EROFS":
      return new ExtctlError("read-only", `cannot ${what}: the filesystem is read-only`, {
        cause: e,
        hint: "remount it read-write or pick another --root",
      });
    case "EACCES":
    case "EPERM":
      return new ExtctlError("not-root", `cannot ${what}: permission denied`, {
        cause: e,
        hint: "run extctl as root",
      });
    case "ENOTDIR":
      return new ExtctlError(
        "not-a-directory",
        `cannot ${what}: a file stands where a directory should be`,
        {
          cause: e,
        },
      );
    case "EEXIST":
      return new ExtctlError("exists", `cannot ${what}: something already exists there`, {
        cause: e,
      });
    case "ENOENT":
      return new ExtctlError("not-found", `cannot ${what}: no such file or directory`, {
        cause: e,
      });
    case "ENOSPC":
      return new ExtctlError("space", `cannot ${what}: no space left on the device`, {
        cause: e,
        hint: "free space there and try again",
      });
    case "EDQUOT":
      return new ExtctlError("io", `cannot ${what}: disk quota exceeded`, { cause: e });
    default: {
      const detail = messageOf(e);
      return new ExtctlError("io", `cannot ${what}: ${detail}`, { cause: e });
    }
  }
}
