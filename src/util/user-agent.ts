// The User-Agent of every request extctl makes (https downloads, catalogs, registries): its
// version, the runtime's and the platform, so a catalog or registry owner can see what a fleet runs.
import { createRequire } from "node:module";
import { bundledVersion } from "./bundled.js";

let cachedVersion: string | undefined;

/** extctl's own version: baked into the one-file build, else read from package.json. */
export function extctlVersion(): string {
  if (cachedVersion !== undefined) return cachedVersion;
  const bundled = bundledVersion();
  if (bundled !== undefined) return (cachedVersion = bundled);
  // Not named `require`: the bundle's import.meta.url stands for an expression that calls it.
  const load = createRequire(import.meta.url);
  cachedVersion = (load("../../package.json") as { version: string }).version;
  return cachedVersion;
}

let cachedAgent: string | undefined;

/** `extctl/VERSION (Node.js/VERSION; linux-ARCH)`, ARCH as Node names it (x64, arm64). */
export function userAgent(): string {
  cachedAgent ??= `extctl/${extctlVersion()} (Node.js/${process.versions.node}; ${process.platform}-${process.arch})`;
  return cachedAgent;
}
