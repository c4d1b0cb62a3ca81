// Makes systemd pick up the links in /run: `systemctl restart systemd-sysext` on a systemd host
// (a restart so the unit's drop-ins — image policy, hierarchies — apply), otherwise
// `systemd-sysext refresh --root ROOT` directly, with debug logging captured so that we can say
// why an image was skipped in systemd's own words.
import { access } from "node:fs/promises";
import type { Context } from "../../util/context.js";
import { ExtctlError, errnoCode } from "../../util/errors.js";
import { lastErrorLine, type RunResult } from "../../util/runner.js";
import { LAYOUTS, type ExtensionKind } from "../store/layout.js";

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

  const args = ["refresh", `--root=${ctx.root.dir}`];
  const result = await runTool(ctx, layout.tool, args, { SYSTEMD_LOG_LEVEL: "debug" });
  if (result.exitCode !== 0) {
    throw new ExtctlError("refresh", describeFailure(kind, result));
  }
  return { mode, command: result.command, skipped: parseSkipReasons(result.stderr) };
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
      throw new ExtctlError(
        "refresh",
        `${tool} is not installed, so the extensions cannot be refreshed`,
        { hint },
      );
    }
    throw e;
  }
}
