// `extctl status` (both kinds) and the text rendering shared with `sysext|confext status`.
import type { Command } from "commander";
import type { StatusResult } from "../../operations/status.js";
import { PROFILES } from "../../domain/store/layout.js";
import { addFlags, contextFor, flagsOf, jsonFlag, type FlagSpec } from "../options.js";
import { print, printJsonAs } from "../render.js";

export function renderStatus(result: StatusResult): string {
  const lines: string[] = [];
  const boot =
    result.boot.states.length > 0
      ? result.boot.states.join(", ")
      : "unknown (no /run/cos sentinel)";
  lines.push(`Boot profile: ${boot}${result.boot.uki ? " (trusted boot, UKI)" : ""}`);
  lines.push(
    `Image policy: ${result.policy.name} (${result.policy.text}) from ${result.policy.source}`,
  );
  for (const k of result.kinds) {
    lines.push("", `${k.kind} (store ${k.store})`);
    if (k.merged.length === 0) lines.push("  merged:   nothing");
    for (const h of k.merged) {
      lines.push(
        `  merged:   ${h.hierarchy}: ${h.extensions.join(", ") || "-"}${h.since ? `  (since ${h.since})` : ""}`,
      );
    }
    for (const p of PROFILES) {
      lines.push(`  ${(p + ":").padEnd(9)} ${k.enabled[p].join(", ") || "-"}`);
    }
    lines.push(`  linked:   ${k.linked.join(", ") || "-"}`);
    if (k.mismatches.length === 0) lines.push("  all consistent");
    for (const m of k.mismatches)
      lines.push(`  ! ${m.name}: ${m.problem.replace(/-/g, " ")}: ${m.detail}`);
  }
  return lines.join("\n");
}

/** The flags of `status` and of `sysext|confext status`. */
export const STATUS_FLAGS = {
  json: jsonFlag("print the status as JSON"),
} as const satisfies FlagSpec;

export function registerStatusCommand(program: Command): void {
  addFlags(
    program
      .command("status")
      .description(
        "show merged, enabled and linked extensions of both kinds, the boot profile and every mismatch",
      ),
    STATUS_FLAGS,
  ).action(async (_opts: unknown, command: Command) => {
    const opts = flagsOf(command, STATUS_FLAGS);
    const { status } = await import("../../operations/status.js");
    const result = await status(contextFor(command));
    if (opts.json) await printJsonAs("status", result);
    else print(renderStatus(result));
  });
}
