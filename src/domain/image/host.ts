// What the host (the --root) looks like to systemd-sysext: its os-release, its systemd version
// (from the versioned libsystemd-shared file name, without running anything) and architecture.
import { readdir, stat } from "node:fs/promises";
import { Root } from "../../util/root.js";
import { READ_CAPS, readInRoot } from "../../util/bounded-read.js";
import { parseOsRelease, type ReleaseFields } from "./os-release.js";
import { hostArchitecture } from "./partition-types.js";
import type { HostFacts } from "./compat.js";

import { NEWEST_SYSTEMD } from "./systemd-versions.js";
export { NEWEST_SYSTEMD };

export async function readHostOsRelease(root: Root): Promise<ReleaseFields | undefined> {
  for (const p of ["/etc/os-release", "/usr/lib/os-release"]) {
    const raw = await readInRoot(root, p, { cap: READ_CAPS.small, what: "the os-release" });
    if (raw !== undefined) return parseOsRelease(raw.toString("utf8"));
  }
  return undefined;
}

/** The systemd version installed in the root, found from libsystemd-shared-NNN.so. */
export async function detectSystemdVersion(root: Root): Promise<number | undefined> {
  const dirs = ["/usr/lib/systemd", "/usr/lib64/systemd", "/lib/systemd"];
  try {
    for (const d of await readdir(await root.readPath("/usr/lib"), { withFileTypes: true })) {
      if (d.isDirectory() && /-linux-gnu/.test(d.name)) dirs.push(`/usr/lib/${d.name}/systemd`);
    }
  } catch {
    // no /usr/lib: nothing to find
  }
  for (const dir of dirs) {
    let names: string[];
    try {
      names = await readdir(await root.readPath(dir));
    } catch {
      continue;
    }
    for (const n of names) {
      const m = /^libsystemd-shared-(\d+)(?:[.~-][^/]*)?\.so$/.exec(n);
      if (m) return Number(m[1]);
    }
  }
  return undefined;
}

/**
 * The systemd that merges images for `root`: the root's own, or, for a --root without one (an
 * image tree, a test root), the host's, which runs systemd-sysext --root on it.
 */
export async function mergingSystemd(
  root: Root,
): Promise<{ version: number; source: "root" | "host" } | undefined> {
  const inRoot = await detectSystemdVersion(root);
  if (inRoot !== undefined) return { version: inRoot, source: "root" };
  if (root.isHostRoot) return undefined;
  const onHost = await detectSystemdVersion(new Root("/"));
  return onHost === undefined ? undefined : { version: onHost, source: "host" };
}

const dissecting = new Map<string, Promise<number>>();

/**
 * The systemd version whose dissection rules apply to images for `root` (mergingSystemd, else
 * the newest), looked up once per root directory.
 */
export function dissectingSystemd(root: Root): Promise<number> {
  let cached = dissecting.get(root.dir);
  if (!cached) {
    cached = mergingSystemd(root).then((m) => m?.version ?? NEWEST_SYSTEMD);
    dissecting.set(root.dir, cached);
  }
  return cached;
}

export async function hostFacts(
  root: Root,
  env: NodeJS.ProcessEnv = process.env,
  options: { scopeFromRootOnly?: boolean } = {},
): Promise<HostFacts> {
  const osRelease = (await readHostOsRelease(root)) ?? {};
  // systemd decides initrd scope by /etc/initrd-release; SYSTEMD_IN_INITRD overrides it, except
  // where a newer systemd-sysext --root reads only ROOT/etc/initrd-release (scopeFromRootOnly).
  let scope: HostFacts["scope"] = "system";
  const forced = options.scopeFromRootOnly ? undefined : env.SYSTEMD_IN_INITRD;
  if (
    forced !== undefined
      ? /^(1|yes|true|on)$/i.test(forced)
      : await exists(root, "/etc/initrd-release")
  )
    scope = "initrd";
  return { osRelease, architecture: hostArchitecture() ?? process.arch, scope };
}

async function exists(root: Root, p: string): Promise<boolean> {
  // Only whether it is there: never read it (it may be a FIFO or a device).
  try {
    await stat(await root.readPath(p));
    return true;
  } catch {
    return false;
  }
}
