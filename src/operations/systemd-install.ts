// `systemd install [--uninstall]`: writes extctl-boot.service (enabled for sysinit.target) and,
// for systemd 254+, the image-policy drop-ins; --uninstall removes exactly the files we wrote.
import { mkdir, readdir, readFile, readlink, realpath, rmdir, unlink } from "node:fs/promises";
import path from "node:path";
import type { Context } from "../util/context.js";
import { ExtctlError, errnoCode, fsError } from "../util/errors.js";
import { symlinkAtomic, writeFileAtomic } from "../util/atomic.js";
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
      names = await readdir(ctx.root.path(dir));
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

async function readText(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, "utf8");
  } catch (e) {
    if (errnoCode(e) === "ENOENT" || errnoCode(e) === "ENOTDIR") return undefined;
    throw fsError(e, `read ${file}`);
  }
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
  for (const file of set.files) {
    const host = ctx.root.path(file.path);
    const existing = await readText(host);
    if (existing === file.content) {
      result.unchanged.push(file.path);
      continue;
    }
    if (existing !== undefined && !existing.startsWith(UNIT_MARKER)) {
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
    const host = ctx.root.path(link.path);
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
  if ((await readlink(ctx.root.path(link.path)).catch(() => undefined)) === link.target) {
    await removeFile(ctx, link.path);
    result.changed.push(link.path);
  }
  for (const file of files) {
    const text = await readText(ctx.root.path(file.path));
    if (text === undefined) continue;
    if (!text.startsWith(UNIT_MARKER)) {
      result.unchanged.push(file.path);
      result.notes.push(`${file.path} was not written by extctl and stays`);
      continue;
    }
    await removeFile(ctx, file.path);
    result.changed.push(file.path);
  }
  // The directories install created, when nothing else lives in them now.
  for (const dir of [
    "/etc/systemd/system/sysinit.target.wants",
    "/etc/systemd/system/systemd-sysext.service.d",
    "/etc/systemd/system/systemd-confext.service.d",
  ]) {
    await rmdir(ctx.root.path(dir)).catch(() => {});
  }
  for (const p of result.changed) ctx.log.info(`removed ${p}`);
  return result;
}

async function removeFile(ctx: Context, nodePath: string): Promise<void> {
  try {
    await unlink(ctx.root.path(nodePath));
  } catch (e) {
    if (errnoCode(e) !== "ENOENT") throw fsError(e, `remove ${nodePath}`);
  }
}
