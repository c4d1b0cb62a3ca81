// What the one-file build (scripts/package-sea.ts) puts inside the program where the other builds
// read files beside the code: the version, and the source of the verity hashing thread.

// esbuild's `define` replaces these names in that build; elsewhere they are not declared at all,
// and `typeof` of an undeclared name is "undefined", not an error.
declare const EXTCTL_BUNDLED_VERSION: string | undefined;
declare const EXTCTL_BUNDLED_VERITY_WORKER: string | undefined;

/** The package version baked into the one-file build, or undefined elsewhere. */
export function bundledVersion(): string | undefined {
  return typeof EXTCTL_BUNDLED_VERSION === "string" ? EXTCTL_BUNDLED_VERSION : undefined;
}

/** The verity worker's bundled source (run with `eval: true`), or undefined elsewhere. */
export function bundledVerityWorker(): string | undefined {
  return typeof EXTCTL_BUNDLED_VERITY_WORKER === "string"
    ? EXTCTL_BUNDLED_VERITY_WORKER
    : undefined;
}
