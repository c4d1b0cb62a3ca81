// `systemd install [--uninstall]`: writes extctl-boot.service (enabled for sysinit.target), enables
// systemd-sysext/confext.service as kairos-init does, for systemd 254+ writes the image-policy
// drop-ins and with --auto-upgrade the upgrade timer and service (the timer enabled for
// timers.target); --uninstall removes exactly the files and links we wrote.
import { lstat, readlink, realpath, rmdir, unlink } from "node:fs/promises";
import path from "node:path";
import type { Context } from "../util/context.js";
import { ExtctlError, errnoCode, fsError } from "../util/errors.js";
import { lastErrorLine } from "../util/runner.js";
import { quoteName } from "../domain/store/names.js";
import { symlinkAtomic, writeFileAtomic, writeFileInRoot } from "../util/atomic.js";
import { makeDir } from "../util/owned-state.js";
import { READ_CAPS, readBoundedOptional } from "../util/bounded-read.js";
import { detectSystemdVersion } from "../domain/image/host.js";
import {
  UNIT_MARKER,
  unitSet,
  bootUnitWantsLink,
  bootUnit,
  blessService,
  blessServiceWantsLink,
  checkCalendarSpec,
  checkExecPath,
  DEFAULT_ON_CALENDAR,
  dropIn,
  dropInPolicy,
  enabledByInstall,
  profileScript,
  PROFILE_DIR,
  upgradeService,
  upgradeTimer,
  upgradeTimerWantsLink,
  type DropInPolicy,
} from "../domain/systemd-units/units.js";
import {
  MERGE_UNITS,
  UNIT_SEARCH_PATH,
  enableLinks,
  parseInstallSection,
  type EnableLink,
} from "../domain/systemd-units/enablement.js";
import { requireRoot, withLock } from "./guard.js";

export interface SystemdInstallOptions {
  uninstall?: boolean;
  /** systemd version; default: detected from the root's libsystemd-shared. */
  systemdVersion?: number;
  /** The drop-ins' image policy: signed, verity, any or a systemd policy (wins over `trusted`). */
  policy?: string;
  /** true: the signed policy, false: verity; default: signed on a trusted (UKI) boot, else verity. */
  trusted?: boolean;
  /** The extctl the unit runs; default: the running one on the host, else /usr/bin/extctl. */
  extctlPath?: string;
  /** Also write and enable extctl-upgrade.timer and .service (`upgrade --all --now`). */
  autoUpgrade?: boolean;
  /** The timer's OnCalendar= (default daily); only with autoUpgrade. */
  onCalendar?: string;
  /** boot, upgrade and bless write DIR/extctl.prom (node_exporter's textfile collector). */
  metricsDir?: string;
}

export interface SystemdInstallResult {
  action: "install" | "uninstall";
  systemdVersion?: number;
  trusted?: boolean;
  /** The drop-ins' policy: its name (signed, verity, any, custom) and the --image-policy= value. */
  policy?: DropInPolicy;
  /** With --auto-upgrade: the upgrade timer's schedule. */
  autoUpgrade?: { onCalendar: string };
  /** Node paths written (install) or removed (uninstall). */
  changed: string[];
  /** Node paths already as wanted (install) or left alone because not ours (uninstall). */
  unchanged: string[];
  notes: string[];
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
  if (options.onCalendar !== undefined && !options.autoUpgrade)
    throw new ExtctlError("usage", "--on-calendar is the upgrade timer's schedule", {
      hint: "give it with --auto-upgrade",
      exitCode: 2,
    });
  if (options.uninstall && options.autoUpgrade)
    throw new ExtctlError("usage", "--uninstall and --auto-upgrade cannot be combined", {
      hint: "--uninstall alone removes the upgrade timer and service too",
      exitCode: 2,
    });
  // Checked before the lock and before anything is written: a bad schedule changes nothing.
  const onCalendar = options.autoUpgrade
    ? await checkCalendar(ctx, options.onCalendar ?? DEFAULT_ON_CALENDAR)
    : undefined;
  return withLock(ctx, () =>
    options.uninstall ? uninstallUnits(ctx) : installUnits(ctx, options, onCalendar),
  );
}

/**
 * The OnCalendar= value, checked: always that it is safe on one unit-file line, then by the
 * host's `systemd-analyze calendar` (systemd's own parser; the spec means the same on any
 * systemd of the last years, so the host's copy stands in for the root's) and, when that program
 * is not there, by checkCalendarSpec's syntactic rules.
 */
async function checkCalendar(ctx: Context, input: string): Promise<string> {
  const spec = checkCalendarSpec(input, { parsed: true });
  let result;
  try {
    result = await ctx.runner.run("systemd-analyze", ["calendar", "--", spec], {
      timeoutMs: 10_000,
    });
  } catch (e) {
    if (errnoCode(e) !== "ENOENT") throw e;
    ctx.log.debug("systemd-analyze is not installed: checking --on-calendar by its syntax only");
    return checkCalendarSpec(spec);
  }
  if (result.exitCode !== 0) {
    const why = lastErrorLine(result);
    throw new ExtctlError(
      "usage",
      `--on-calendar ${quoteName(input)} is not a calendar event systemd reads${why ? `: ${why}` : ""}`,
      {
        hint: "give a systemd calendar event such as daily, weekly or 'Mon *-*-* 03:00' (see systemd.time(7); `systemd-analyze calendar SPEC` checks one)",
        exitCode: 2,
      },
    );
  }
  return spec;
}

async function choosePolicy(ctx: Context, options: SystemdInstallOptions): Promise<DropInPolicy> {
  if (options.policy !== undefined) return dropInPolicy(options.policy);
  let trusted = options.trusted;
  if (trusted === undefined) {
    const { trustedBoot } = await import("../domain/trust/policy.js");
    trusted = (await trustedBoot(ctx)) !== undefined;
  }
  return dropInPolicy(trusted ? "signed" : "verity");
}

/**
 * The node path of `unit`'s file, the first in systemd's search path, or why it cannot be
 * enabled (absent, or masked by a link to /dev/null).
 */
async function findUnitFile(
  ctx: Context,
  unit: string,
): Promise<{ file: string; text: string } | { why: string }> {
  for (const dir of UNIT_SEARCH_PATH) {
    const nodePath = `${dir}/${unit}`;
    const link = await readlink(await ctx.root.writePath(nodePath, { leaf: "entry" })).catch(
      () => undefined,
    );
    if (link === "/dev/null") return { why: `${unit} is masked (${nodePath} -> /dev/null)` };
    const text = await readBoundedOptional(await ctx.root.readPath(nodePath), {
      cap: READ_CAPS.config,
      noFollow: !ctx.root.isHostRoot,
      what: "a unit file",
    }).catch(() => undefined);
    if (text !== undefined) return { file: nodePath, text: text.toString("utf8") };
  }
  return { why: `${unit} is not installed under the root` };
}

/** The links that enable systemd-sysext/confext.service; notes say what could not be enabled. */
async function mergeUnitLinks(ctx: Context, notes: string[]): Promise<EnableLink[]> {
  const links: EnableLink[] = [];
  for (const unit of MERGE_UNITS) {
    const found = await findUnitFile(ctx, unit);
    if ("why" in found) {
      notes.push(`${found.why}: not enabled`);
      continue;
    }
    const unitLinks = enableLinks(unit, found.file, parseInstallSection(found.text));
    if (unitLinks.length === 0)
      notes.push(`${found.file} has no [Install] section to enable it by: not enabled`);
    links.push(...unitLinks);
  }
  return links;
}

async function installUnits(
  ctx: Context,
  options: SystemdInstallOptions,
  onCalendar: string | undefined,
): Promise<SystemdInstallResult> {
  const version = options.systemdVersion ?? (await detectSystemdVersion(ctx.root));
  const policy = await choosePolicy(ctx, options);
  const extctlPath = options.extctlPath ?? (await runningExtctl(ctx));
  const result: SystemdInstallResult = {
    action: "install",
    ...(version === undefined ? {} : { systemdVersion: version }),
    trusted: policy.name === "signed",
    policy,
    ...(onCalendar === undefined ? {} : { autoUpgrade: { onCalendar } }),
    changed: [],
    unchanged: [],
    notes: [],
  };
  if (version === undefined)
    result.notes.push(
      "the systemd version could not be found under the root, so no drop-ins were written (pass --systemd VERSION)",
    );
  else if (!unitSet(extctlPath, version, policy).files.some((f) => f.path.endsWith(".conf")))
    result.notes.push(
      `systemd ${version} has no image policies or systemd-confext: no drop-ins written (254 or newer needs them)`,
    );
  const enable = await mergeUnitLinks(ctx, result.notes);
  const enableHosts = await unitHosts(
    ctx,
    enable.map((l) => l.path),
  );
  // A link that is already there (kairos-init's, the distribution's) is not ours to remove later;
  // the ones this install or an earlier one made are recorded in the boot unit.
  const bootPath = bootUnit(extctlPath).path;
  const previous = await readText(await ctx.root.writePath(bootPath, { leaf: "entry" }));
  const ownedBefore = new Set(
    typeof previous === "string" && previous.startsWith(UNIT_MARKER)
      ? enabledByInstall(previous)
      : [],
  );
  const toMake: EnableLink[] = [];
  for (const link of enable) {
    const present = await lstat(enableHosts.get(link.path) as string).catch(() => undefined);
    if (present === undefined) toMake.push(link);
  }
  const owned = enable
    .map((l) => l.path)
    .filter((p) => ownedBefore.has(p) || toMake.some((l) => l.path === p));
  const set = unitSet(
    extctlPath,
    version,
    policy,
    owned,
    onCalendar === undefined ? undefined : { onCalendar },
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
      // Kairos writes its own /etc/profile.d/systemd-sysext.sh: that one is the operator's
      // and stays, but a unit file we cannot write would leave the node half set up.
      if (file.path.startsWith(`${PROFILE_DIR}/`)) {
        result.unchanged.push(file.path);
        result.notes.push(
          `${file.path} exists and was not written by extctl: it stays (it should export what the unit uses: ${file.content.split("\n").find((l) => l.startsWith("export ")) ?? ""})`,
        );
        continue;
      }
      throw new ExtctlError("exists", `${file.path} exists and was not written by extctl`, {
        hint: "move it away first; extctl does not overwrite files it did not write",
      });
    }
    try {
      await makeDir(path.dirname(host), { within: ctx.root.dir });
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
    await makeLink(ctx.root.dir, host, link);
    result.changed.push(link.path);
  }
  for (const link of enable) {
    if (!toMake.includes(link)) {
      result.unchanged.push(link.path);
      continue;
    }
    await makeLink(ctx.root.dir, enableHosts.get(link.path) as string, link);
    result.changed.push(link.path);
  }
  if (options.metricsDir !== undefined) await installMetricsDir(ctx, options.metricsDir, result);
  for (const p of result.changed) ctx.log.info(`wrote ${p}`);
  return result;
}

/** Writes /etc/extctl/metrics-dir naming DIR (absolute, one line), so boot, upgrade and bless
 * write DIR/extctl.prom; a file someone else wrote there stays and is an error. */
async function installMetricsDir(
  ctx: Context,
  dir: string,
  result: SystemdInstallResult,
): Promise<void> {
  const { METRICS_DIR_FILE, METRICS_DIR_MARKER } = await import("./metrics.js");
  if (!dir.startsWith("/") || /[\0\n\r]/.test(dir) || dir.split("/").includes(".."))
    throw new ExtctlError(
      "usage",
      `--metrics-dir ${quoteName(dir)} is not an absolute directory path`,
      {
        hint: "give node_exporter's --collector.textfile.directory, e.g. /var/lib/prometheus/node-exporter",
        exitCode: 2,
      },
    );
  const content = `${METRICS_DIR_MARKER}\n${dir}\n`;
  const host = await ctx.root.writePath(METRICS_DIR_FILE, { leaf: "entry" });
  const existing = await readText(host);
  if (existing === content) {
    result.unchanged.push(METRICS_DIR_FILE);
    return;
  }
  if (
    existing !== undefined &&
    (typeof existing !== "string" || !existing.startsWith(METRICS_DIR_MARKER))
  )
    throw new ExtctlError("exists", `${METRICS_DIR_FILE} was not written by extctl`, {
      hint: "move it away first; extctl does not overwrite files it did not write",
    });
  await writeFileInRoot(ctx.root, METRICS_DIR_FILE, content, 0o644);
  result.changed.push(METRICS_DIR_FILE);
}

async function makeLink(rootDir: string, host: string, link: EnableLink): Promise<void> {
  try {
    await makeDir(path.dirname(host), { within: rootDir });
    await symlinkAtomic(link.target, host);
  } catch (e) {
    throw fsError(e, `enable ${link.path}`);
  }
}

async function uninstallUnits(ctx: Context): Promise<SystemdInstallResult> {
  const result: SystemdInstallResult = {
    action: "uninstall",
    changed: [],
    unchanged: [],
    notes: [],
  };
  // Every file install can write, whatever version or policy it was written for.
  // Only the paths matter here: they are the same for every policy.
  const somePolicy = dropInPolicy("verity");
  const boot = bootUnit("/usr/bin/extctl");
  const files = [
    boot,
    blessService("/usr/bin/extctl"),
    dropIn("sysext", somePolicy),
    dropIn("confext", somePolicy),
    profileScript("sysext"),
    profileScript("confext"),
    upgradeService("/usr/bin/extctl"),
    upgradeTimer(),
  ];
  const ourLinks = [bootUnitWantsLink(), blessServiceWantsLink(), upgradeTimerWantsLink()];
  const hosts = await unitHosts(ctx, [...ourLinks.map((l) => l.path), ...files.map((f) => f.path)]);
  // The links to systemd's own units that install made, as its boot unit records them.
  const bootText = await readText(hosts.get(boot.path) as string);
  const enabled =
    typeof bootText === "string" && bootText.startsWith(UNIT_MARKER)
      ? enabledByInstall(bootText).filter((p) => p.startsWith("/etc/systemd/system/"))
      : [];
  const enabledHosts = await unitHosts(ctx, enabled);
  const dirs = [
    ...new Set([
      "/etc/systemd/system/sysinit.target.wants",
      "/etc/systemd/system/multi-user.target.wants",
      "/etc/systemd/system/timers.target.wants",
      "/etc/systemd/system/systemd-sysext.service.d",
      "/etc/systemd/system/systemd-confext.service.d",
      PROFILE_DIR,
      ...enabled.map((p) => path.posix.dirname(p)),
    ]),
  ].filter((d) => d !== "/etc/systemd/system");
  const dirHosts = await Promise.all(dirs.map((d) => ctx.root.writePath(d)));
  for (const link of ourLinks) {
    const host = hosts.get(link.path) as string;
    if ((await readlink(host).catch(() => undefined)) !== link.target) continue;
    await removeFile(host, link.path);
    result.changed.push(link.path);
  }
  for (const p of enabled) {
    const host = enabledHosts.get(p) as string;
    // Only a symlink: whatever else sits there now is someone else's.
    if (!(await lstat(host).catch(() => undefined))?.isSymbolicLink()) continue;
    await removeFile(host, p);
    result.changed.push(p);
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
  const { METRICS_DIR_FILE, METRICS_DIR_MARKER } = await import("./metrics.js");
  const metricsHost = await ctx.root.writePath(METRICS_DIR_FILE, { leaf: "entry" });
  const metricsText = await readText(metricsHost);
  if (typeof metricsText === "string" && metricsText.startsWith(METRICS_DIR_MARKER)) {
    await removeFile(metricsHost, METRICS_DIR_FILE);
    result.changed.push(METRICS_DIR_FILE);
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
