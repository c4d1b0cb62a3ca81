// `extctl boot`: immucore's boot-time linking step as a command, for an initramfs hook or the
// extctl-boot.service unit. Prints what was linked and what was skipped, and why.
import type { Command } from "commander";
import type { BootResult } from "../../operations/boot.js";
import { stdoutIsJournal } from "../../util/journal.js";
import { writeStdout } from "../../util/stdio.js";
import {
  addFlags,
  contextFor,
  defined,
  flagsOf,
  jsonFlag,
  negatedFlag,
  textFlag,
  type FlagSpec,
} from "../options.js";
import { print, printJson, renderTable } from "../render.js";

export function renderBoot(result: BootResult): string {
  const lines = [
    `Boot state: ${result.state}${result.uki ? " (trusted boot, UKI)" : ""} (${result.detectedBy})`,
  ];
  if (!result.profile) {
    lines.push("Nothing linked: this boot state loads no extensions.");
    return lines.join("\n");
  }
  lines.push(`Profile: ${result.profile} (then common)`);
  if (result.policy) {
    lines.push(`Policy: ${result.policy.policy} (from ${result.policy.source})`);
    if (result.policy.importedKeys.length > 0)
      lines.push(`EFI keys imported: ${result.policy.importedKeys.join(", ")}`);
  }
  const rows = [
    ...result.linked.map((i) => ({ ...i, status: i.action === "linked" ? "linked" : "unchanged" })),
    ...result.skipped.map((i) => ({ ...i, status: "skipped" })),
  ];
  if (rows.length === 0) lines.push("No images enabled for this profile.");
  else {
    lines.push(
      "",
      renderTable(rows, [
        { header: "KIND", value: (r) => r.kind },
        { header: "NAME", value: (r) => r.name },
        { header: "FROM", value: (r) => r.profile },
        { header: "STATUS", value: (r) => r.status },
        { header: "WHY", value: (r) => r.reason ?? "" },
      ]).trimEnd(),
    );
  }
  for (const a of result.assessment)
    if (a.action === "fallback")
      lines.push(`boot fallback: ${a.kind} ${a.name} ${a.from} -> ${a.to}: ${a.reason}`);
    else if (a.action === "try")
      lines.push(
        `pending: ${a.kind} ${a.name} ${a.version} (${a.triesLeft} tries left after this boot)`,
      );
  for (const u of result.unlinked) lines.push(`unlinked ${u.kind} ${u.name} (not for this boot)`);
  for (const r of result.refresh) {
    if (r.error) lines.push(`${r.kind}: refresh failed: ${r.error}`);
    else if (r.refreshed)
      lines.push(
        `${r.kind}: merged ${r.merged.flatMap((h) => h.extensions).join(", ") || "nothing"}`,
      );
    for (const u of r.unmerged) lines.push(`${r.kind}: NOT merged ${u.name}: ${u.reason}`);
  }
  const unmerged = result.refresh.reduce((n, r) => n + r.unmerged.length, 0);
  if (unmerged > 0)
    lines.push(
      `${unmerged} linked image${unmerged === 1 ? " was" : "s were"} not merged by systemd`,
    );
  return lines.join("\n");
}

const BOOT_FLAGS = {
  efivars: textFlag(
    "--efivars <dir>",
    "read EFI variables here (default: ROOT/sys/firmware/efi/efivars)",
  ),
  cmdline: textFlag(
    "--cmdline <file>",
    "read the kernel cmdline here (default: $SYSTEMD_PROC_CMDLINE, else ROOT/proc/cmdline)",
  ),
  refresh: negatedFlag("--no-refresh", "only link; systemd-sysext merges later (initramfs)"),
  policy: textFlag(
    "--policy <policy>",
    "trust policy: signed, verity, any or a systemd image policy",
  ),
  json: jsonFlag(),
} as const satisfies FlagSpec;

export function registerBootCommand(program: Command): void {
  addFlags(
    program
      .command("boot")
      .description(
        "link the boot profile's extensions (then common's) into /run and refresh, as immucore does at boot",
      ),
    BOOT_FLAGS,
  ).action(async (_opts: unknown, command: Command) => {
    const opts = flagsOf(command, BOOT_FLAGS);
    const { boot } = await import("../../operations/boot.js");
    const result = await boot(
      contextFor(command),
      defined({
        efivarsDir: opts.efivars,
        cmdlineFile: opts.cmdline,
        policy: opts.policy,
        refresh: opts.refresh === false ? ("none" as const) : ("auto" as const),
      }),
    );
    if (opts.json) printJson(result);
    else if (stdoutIsJournal()) {
      // Under extctl-boot.service each event is a log line already: one summary line, no table.
      const { bootJournalText } = await import("../journal-summary.js");
      writeStdout(bootJournalText(result));
    } else print(renderBoot(result));
    // A linked image systemd did not merge is a failed boot step, as for enable --now.
    if (result.refresh.some((r) => r.error || r.unmerged.length > 0)) process.exitCode = 1;
  });
}

const BLESS_FLAGS = {
  json: jsonFlag("print per extension: kind, name, version, action, wasPending"),
} as const satisfies FlagSpec;

/** `extctl bless`: what extctl-bless.service runs after boot-complete.target. */
export function registerBlessCommand(program: Command): void {
  addFlags(
    program
      .command("bless")
      .description(
        "mark the current versions of extensions installed by name good (boot-complete.target was reached), ending a pending version's trial",
      ),
    BLESS_FLAGS,
  ).action(async (_opts: unknown, command: Command) => {
    const opts = flagsOf(command, BLESS_FLAGS);
    const { bless } = await import("../../operations/bless.js");
    const result = await bless(contextFor(command));
    if (opts.json) printJson(result);
    else
      print(
        result.items.length === 0
          ? "no extensions installed by name"
          : renderTable(result.items, [
              { header: "KIND", value: (i) => i.kind },
              { header: "NAME", value: (i) => i.name },
              { header: "VERSION", value: (i) => i.version },
              {
                header: "ACTION",
                value: (i) =>
                  i.wasPending && i.action === "blessed" ? "blessed (was pending)" : i.action,
              },
            ]),
      );
  });
}
