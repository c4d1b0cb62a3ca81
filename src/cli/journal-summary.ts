// What the commands the units run (boot, upgrade) print when their output goes to the journal:
// one line per event, each with its sd-daemon priority, then a one-line summary, instead of a
// table (whose header and padding mean nothing in `journalctl`) or JSON (a dozen lines a run).
import type { BootResult } from "../operations/boot.js";
import type { UpgradeItem, UpgradeResult } from "../operations/upgrade.js";
import { escapeControl } from "../util/escape.js";
import { journalLines, type Priority } from "../util/journal.js";

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

function itemPriority(item: UpgradeItem): Priority {
  if (item.action !== "failed") return "info";
  // A catalog or registry out of reach is retried by the next timer run (exit 75).
  return item.unreachable ? "warning" : "error";
}

const ORDER = ["upgraded", "would-upgrade", "prefetched", "skipped", "failed", "up-to-date"];

/**
 * upgrade under a unit: a line for each extension whose state changed or that failed (an
 * up-to-date one is no event), then `KIND upgrade: 1 upgraded, 3 up-to-date`.
 */
export function upgradeJournalText(result: UpgradeResult): string {
  const lines: string[] = [];
  for (const item of result.items) {
    if (item.action === "up-to-date") continue;
    const versions = item.to ? ` ${item.from ?? "?"} -> ${item.to}` : "";
    const merged = item.merged === undefined ? "" : item.merged ? " (merged)" : " (not merged)";
    lines.push(
      journalLines(
        itemPriority(item),
        escapeControl(
          `${result.kind} ${item.name}: ${item.action}${versions}${merged}: ${item.reason}`,
        ),
      ),
    );
  }
  const counts = new Map<string, number>();
  for (const item of result.items) counts.set(item.action, (counts.get(item.action) ?? 0) + 1);
  const summary =
    result.items.length === 0
      ? `${result.kind} upgrade: no ${result.kind}s installed by name`
      : `${result.kind} upgrade: ${ORDER.filter((a) => counts.has(a))
          .map((a) => `${counts.get(a)} ${a}`)
          .join(", ")}`;
  const worst: Priority = result.items.some((i) => itemPriority(i) === "error")
    ? "error"
    : result.items.some((i) => itemPriority(i) === "warning")
      ? "warning"
      : "info";
  lines.push(journalLines(worst, summary));
  return lines.join("\n") + "\n";
}

/**
 * boot under a unit: each link, skip and unlink is already a log line of its own (with its
 * priority); this is the one line that sums the boot up.
 */
export function bootJournalText(result: BootResult): string {
  if (!result.profile)
    return journalLines("info", `boot: ${result.state} boot, nothing linked`) + "\n";
  const made = result.linked.filter((i) => i.action === "linked").length;
  const kept = result.linked.length - made;
  const parts = [
    `${plural(made, "image")} linked`,
    ...(kept ? [`${kept} already linked`] : []),
    `${result.skipped.length} skipped`,
    ...(result.unlinked.length ? [`${result.unlinked.length} unlinked`] : []),
  ];
  const unmerged = result.refresh.reduce((n, r) => n + r.unmerged.length, 0);
  const failed = result.refresh.filter((r) => r.error).length;
  if (result.refresh.some((r) => r.refreshed))
    parts.push(
      `merged: ${result.refresh.flatMap((r) => r.merged.flatMap((h) => h.extensions)).join(", ") || "nothing"}`,
    );
  if (unmerged) parts.push(`${unmerged} not merged`);
  if (failed) parts.push(`${plural(failed, "refresh", "refreshes")} failed`);
  const policy = result.policy ? `, policy ${result.policy.policy}` : "";
  const priority: Priority =
    unmerged || failed ? "error" : result.skipped.length ? "warning" : "info";
  return (
    journalLines(
      priority,
      escapeControl(
        `boot: ${result.state} boot, profile ${result.profile} then common${policy}: ${parts.join(", ")}`,
      ),
    ) + "\n"
  );
}
