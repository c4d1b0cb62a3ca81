// Makes systemd pick up the links in /run: `systemctl restart systemd-sysext` on a systemd host
// (a restart so the unit's drop-ins — image policy, hierarchies — apply), otherwise
// `systemd-sysext refresh --root ROOT` directly, with debug logging captured so that we can say
// why an image was skipped in systemd's own words.
import { access, stat } from "node:fs/promises";
import type { Context } from "../../util/context.js";
import { ExtctlError, errnoCode } from "../../util/errors.js";
import { lastErrorLine, type RunResult } from "../../util/runner.js";
import { isMountPoint } from "../../util/mounts.js";
import { LAYOUTS, type ExtensionKind } from "../store/layout.js";
import { ExtensionStore } from "../store/store.js";

/** The refresh tool is not on this node at all (systemd-confext before 254): nothing ran. */
export class MissingToolError extends ExtctlError {
  constructor(
    readonly tool: string,
    hint: string,
  ) {
    super("refresh", `${tool} is not installed, so the extensions cannot be refreshed`, { hint });
  }
}

export type RefreshMode = "auto" | "systemctl" | "sysext" | "none";

export const REFRESH_MODES: readonly RefreshMode[] = ["auto", "systemctl", "sysext", "none"];

export interface RefreshResult {
  /** What actually ran ("none" when refresh was skipped). */
  mode: Exclude<RefreshMode, "auto">;
  command?: string[];
  /** Reasons systemd gave for images it did not use, by systemd image name. */
  skipped: Map<string, string>;
}

async function systemdIsPid1(): Promise<boolean> {
  try {
    await access("/run/systemd/system");
    return true;
  } catch {
    return false;
  }
}

export async function chooseMode(
  ctx: Context,
  requested: RefreshMode,
): Promise<Exclude<RefreshMode, "auto">> {
  if (requested !== "auto") return requested;
  return ctx.root.isHostRoot && (await systemdIsPid1()) ? "systemctl" : "sysext";
}

/** Pulls "Extension 'x' is for OS 'fedora', but ..." style lines out of systemd's debug log. */
export function parseSkipReasons(stderr: string): Map<string, string> {
  const reasons = new Map<string, string>();
  for (const raw of stderr.split("\n")) {
    const line = raw.trim();
    const m = /^Extension '([^']+)' (.+)$/.exec(line);
    if (m && !/\bmatches\b/.test(m[2] as string)) {
      reasons.set(m[1] as string, line.replace(/\.$/, ""));
      continue;
    }
    const img =
      /(?:Image|image) '?([^' ]+?)(?:\.raw)?'? (?:is not|does not|has no|refused|lacks)(.*)$/.exec(
        line,
      );
    if (img && !reasons.has(img[1] as string))
      reasons.set(img[1] as string, line.replace(/\.$/, ""));
  }
  return reasons;
}

function describeFailure(kind: ExtensionKind, result: RunResult): string {
  return `${result.command.slice(0, 3).join(" ")} failed for ${kind}: ${lastErrorLine(result)}`;
}

export async function refresh(
  ctx: Context,
  kind: ExtensionKind,
  requested: RefreshMode,
): Promise<RefreshResult> {
  const mode = await chooseMode(ctx, requested);
  const layout = LAYOUTS[kind];
  if (mode === "none") return { mode, skipped: new Map() };

  if (mode === "systemctl") {
    const args = ["restart", layout.unit];
    const result = await runTool(ctx, "systemctl", args, {});
    if (result.exitCode !== 0) {
      throw new ExtctlError("refresh", describeFailure(kind, result), {
        hint: `see \`journalctl -u ${layout.unit}\``,
      });
    }
    return { mode, command: result.command, skipped: new Map() };
  }

  // The real root gets a plain `refresh`: with `--root=/` systemd 252 and 257 treat the search
  // dirs as relative to a root and skip the symlink chain in /run/extensions (262 follows it).
  const view = ctx.root.isHostRoot ? undefined : await runtimeView(ctx, kind);
  const args = ctx.root.isHostRoot ? ["refresh"] : ["refresh", `--root=${ctx.root.dir}`];
  const result = view
    ? await runTool(ctx, "unshare", view, { SYSTEMD_LOG_LEVEL: "debug" })
    : await runTool(ctx, layout.tool, args, { SYSTEMD_LOG_LEVEL: "debug" });
  if (result.exitCode !== 0) {
    throw new ExtctlError("refresh", describeFailure(kind, result));
  }
  return { mode, command: result.command, skipped: parseSkipReasons(result.stderr) };
}

/**
 * systemd-sysext never follows symlinks in its search dirs when given --root (systemd disables it
 * "when operating relative to some root directory"), so the link chain in ROOT/run/extensions
 * would be invisible to it. We show it the same images as plain files instead: in a child mount
 * namespace, a tmpfs over the runtime dir holds bind mounts of each link's resolved image. The
 * view needs ROOT/run to be a mount of its own (a tmpfs, as on a node), made private in the child,
 * so nothing of it leaks back; the overlay systemd-sysext mounts on ROOT/usr still propagates.
 */
async function runtimeView(ctx: Context, kind: ExtensionKind): Promise<string[] | undefined> {
  const store = new ExtensionStore(ctx.root, kind);
  // A tmpfs is mounted over these: never through a symlink that leads outside the root.
  const runtime = await ctx.root.writePath(store.layout.runtime);
  const runDir = await ctx.root.writePath("/run");
  const links = await store.runtimeLinks();
  if (links.length === 0) return undefined;
  if (!(await isMountPoint(runDir))) {
    ctx.log.warn(
      `${runDir} is not a mount of its own, so ${store.layout.tool} --root cannot see the linked images ` +
        `(it does not follow symlinks under --root); mount a tmpfs there, as on a node`,
    );
    return undefined;
  }
  const pairs: string[] = [];
  for (const name of links) {
    const target = await ctx.root.resolve(`${store.layout.runtime}/${name}`);
    const host = ctx.root.path(target);
    const st = await stat(host).catch(() => undefined);
    if (st?.isFile()) pairs.push(name, host);
  }
  const script = [
    "set -e",
    'run="$1"; rt="$2"; root="$3"; tool="$4"; shift 4',
    'mount --make-rprivate "$run"',
    'mount -t tmpfs -o mode=0755 extctl-view "$rt"',
    'while [ "$#" -ge 2 ]; do : > "$rt/$1"; mount --bind "$2" "$rt/$1"; shift 2; done',
    'exec "$tool" refresh --root="$root"',
  ].join("\n");
  return [
    "--mount",
    "--propagation",
    "unchanged",
    "sh",
    "-c",
    script,
    "sh",
    runDir,
    runtime,
    ctx.root.dir,
    store.layout.tool,
    ...pairs,
  ];
}

async function runTool(
  ctx: Context,
  tool: string,
  args: string[],
  extraEnv: NodeJS.ProcessEnv,
): Promise<RunResult> {
  try {
    return await ctx.runner.run(tool, args, {
      env: { ...ctx.env, ...extraEnv },
      timeoutMs: 300_000,
    });
  } catch (e) {
    if (errnoCode(e) === "ENOENT") {
      const hint =
        tool === "systemd-confext"
          ? "systemd-confext comes with systemd 254 or newer (Debian 12 has 252); use --refresh none to only link"
          : `install it, or use --refresh none to only link`;
      throw new MissingToolError(tool, hint);
    }
    throw e;
  }
}
