// `systemd install [--uninstall]`: writes extctl-boot.service (enabled for sysinit.target) and,
// for systemd 254+, the image-policy drop-ins; --uninstall removes exactly the files we wrote.
import { lstat, mkdir, readdir, readlink, realpath, rmdir, unlink } from "node:fs/promises";
import path from "node:path";
import type { Context } from "../util/context.js";
import { ExtctlError, errnoCode, fsError } from "../util/errors.js";
import { symlinkAtomic, writeFileAtomic } from "../util/atomic.js";
import { READ_CAPS, readBoundedOptional } from "../util/bounded-read.js";
import {
  UNIT_MARKER,
  unitSet,
  versionFromLibraryName,
  bootUnitWantsLink,
  bootUnit,
  checkExecPath,
  dropIn,
} from "../domain/systemd-units/units.js";
import { requireRoot, withLock } from "./guard.js";

export interface SystemdInstallOptions {
  uninstall?: boolean;
  /** systemd version; default: detected from the root's libsystemd-shared. */
  systemdVersion?: number;
  /** Trusted (UKI) boot policy in the drop-ins; default: detected from cmdline/sentinel. */
  trusted?: boolean;
  /** The extctl the unit runs; default: the running one on the host, else /usr/bin/extctl. */
  extctlPath?: string;
}

export interface SystemdInstallResult {
  action: "install" | "uninstall";
  systemdVersion?: number;
  trusted?: boolean;
  /** Node paths written (install) or removed (uninstall). */
  changed: string[];
  /** Node paths already as wanted (install) or left alone because not ours (uninstall). */
  unchanged: string[];
  notes: string[];
}

const LIBRARY_DIRS = [
  "/usr/lib/systemd",
  "/usr/lib64/systemd",
  "/lib/systemd",
  "/usr/lib/x86_64-linux-gnu/systemd",
  "/usr/lib/aarch64-linux-gnu/systemd",
  "/usr/lib/riscv64-linux-gnu/systemd",
];

/** The systemd version installed in the root, from its libsystemd-shared-NNN.so. */
export async function detectSystemdVersion(ctx: Context): Promise<number | undefined> {
  for (const dir of LIBRARY_DIRS) {
    let names: string[];
    try {
      names = await readdir(await ctx.root.readPath(dir));
    } catch {
      continue;
    }
    for (const name of names) {
      const version = versionFromLibraryName(name);
      if (version !== undefined) return version;
    }
  }
  return undefined;
}

async function runningExtctl(ctx: Context): Promise<string> {
  const script = process.argv[1];
  if (ctx.root.isHostRoot && script && /extctl(\.js)?$/.test(path.basename(script))) {
    try {
      return await realpath(script);
    } catch {
      // fall through to the packaged path
    }
  }
  return "/usr/bin/extctl";
}

/**
 * A unit file's text (undefined when absent), read where `host` is (already resolved inside the
 * root, never through a symlink). Anything but a regular file there (a mask link to /dev/null, a
 * FIFO) is not ours: "other".
 */
async function readText(host: string): Promise<string | undefined | { other: string }> {
  let st;
  try {
    st = await lstat(host);
  } catch (e) {
    if (errnoCode(e) === "ENOENT" || errnoCode(e) === "ENOTDIR") return undefined;
    throw fsError(e, `read ${host}`);
  }
  if (!st.isFile()) return { other: st.isSymbolicLink() ? "a symlink" : "not a regular file" };
  return (
    await readBoundedOptional(host, { cap: READ_CAPS.config, noFollow: true, what: "a unit file" })
  )?.toString("utf8");
}

/** Host paths of every unit path, checked before the first write: none may lead out of the root. */
async function unitHosts(ctx: Context, paths: readonly string[]): Promise<Map<string, string>> {
  const hosts = new Map<string, string>();
  for (const p of paths) hosts.set(p, await ctx.root.writePath(p, { leaf: "entry" }));
  return hosts;
}

export async function systemdInstall(
  ctx: Context,
  options: SystemdInstallOptions = {},
): Promise<SystemdInstallResult> {
  if (options.extctlPath !== undefined) checkExecPath(options.extctlPath);
  requireRoot(ctx);
  if (
    options.systemdVersion !== undefined &&
    !(Number.isInteger(options.systemdVersion) && options.systemdVersion > 0)
  ) {
    throw new ExtctlError("usage", `--systemd ${options.systemdVersion} is not a systemd version`, {
      hint: "give the major version, e.g. --systemd 255",
      exitCode: 2,
    });
  }
  return withLock(ctx, () =>
    options.uninstall ? uninstallUnits(ctx) : installUnits(ctx, options),
  );
}

async function installUnits(
  ctx: Context,
  options: SystemdInstallOptions,
): Promise<SystemdInstallResult> {
  const version = options.systemdVersion ?? (await detectSystemdVersion(ctx));
  let trusted = options.trusted;
  if (trusted === undefined) {
    const { trustedBoot } = await import("../domain/trust/policy.js");
    trusted = (await trustedBoot(ctx)) !== undefined;
  }
  const set = unitSet(options.extctlPath ?? (await runningExtctl(ctx)), version, trusted);
  const result: SystemdInstallResult = {
    action: "install",
    ...(version === undefined ? {} : { systemdVersion: version }),
    trusted,
    changed: [],
    unchanged: [],
    notes: [],
  };
  if (version === undefined)
    result.notes.push(
      "the systemd version could not be found under the root, so no drop-ins were written (pass --systemd VERSION)",
    );
  else if (set.files.length === 1)
    result.notes.push(
      `systemd ${version} has no image policies or systemd-confext: no drop-ins written (254 or newer needs them)`,
    );
  const hosts = await unitHosts(ctx, [
    ...set.files.map((f) => f.path),
    ...set.links.map((l) => l.path),
  ]);
  for (const file of set.files) {
    const host = hosts.get(file.path) as string;
    const existing = await readText(host);
    if (existing === file.content) {
      result.unchanged.push(file.path);
      continue;
    }
    if (
      existing !== undefined &&
      (typeof existing !== "string" || !existing.startsWith(UNIT_MARKER))
    ) {
      throw new ExtctlError("exists", `${file.path} exists and was not written by extctl`, {
        hint: "move it away first; extctl does not overwrite files it did not write",
      });
    }
    try {
      await mkdir(path.dirname(host), { recursive: true });
      await writeFileAtomic(host, file.content, 0o644);
    } catch (e) {
      throw fsError(e, `write ${file.path}`);
    }
    result.changed.push(file.path);
  }
  for (const link of set.links) {
    const host = hosts.get(link.path) as string;
    const current = await readlink(host).catch(() => undefined);
    if (current === link.target) {
      result.unchanged.push(link.path);
      continue;
    }
    try {
      await mkdir(path.dirname(host), { recursive: true });
      await symlinkAtomic(link.target, host);
    } catch (e) {
      throw fsError(e, `enable ${link.path}`);
    }
    result.changed.push(link.path);
  }
  for (const p of result.changed) ctx.log.info(`wrote ${p}`);
  return result;
}

async function uninstallUnits(ctx: Context): Promise<SystemdInstallResult> {
  const result: SystemdInstallResult = {
    action: "uninstall",
    changed: [],
    unchanged: [],
    notes: [],
  };
  // Every file install can write, whatever version or policy it was written for.
  const files = [bootUnit("/usr/bin/extctl"), dropIn("sysext", false), dropIn("confext", false)];
  const link = bootUnitWantsLink();
  const dirs = [
    "/etc/systemd/system/sysinit.target.wants",
    "/etc/systemd/system/systemd-sysext.service.d",
    "/etc/systemd/system/systemd-confext.service.d",
  ];
  const hosts = await unitHosts(ctx, [link.path, ...files.map((f) => f.path)]);
  const dirHosts = await Promise.all(dirs.map((d) => ctx.root.writePath(d)));
  if ((await readlink(hosts.get(link.path) as string).catch(() => undefined)) === link.target) {
    await removeFile(hosts.get(link.path) as string, link.path);
    result.changed.push(link.path);
  }
  for (const file of files) {
    const text = await readText(hosts.get(file.path) as string);
    if (text === undefined) continue;
    if (typeof text !== "string" || !text.startsWith(UNIT_MARKER)) {
      result.unchanged.push(file.path);
      result.notes.push(`${file.path} was not written by extctl and stays`);
      continue;
    }
    await removeFile(hosts.get(file.path) as string, file.path);
    result.changed.push(file.path);
  }
  // The directories install created, when nothing else lives in them now.
  for (const dir of dirHosts) await rmdir(dir).catch(() => {});
  for (const p of result.changed) ctx.log.info(`removed ${p}`);
  return result;
}

async function removeFile(host: string, nodePath: string): Promise<void> {
  try {
    await unlink(host);
  } catch (e) {
    if (errnoCode(e) !== "ENOENT") throw fsError(e, `remove ${nodePath}`);
  }
}
