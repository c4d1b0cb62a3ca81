// `extctl metrics [--write DIR]`: the node's extension metrics in the Prometheus text format, on
// stdout or written atomically to DIR/extctl.prom for node_exporter's textfile collector.
import type { Command } from "commander";
import { addFlags, contextFor, flagsOf, textFlag, type FlagSpec } from "../options.js";
import { print } from "../render.js";

export const METRICS_FLAGS = {
  write: textFlag(
    "--write <dir>",
    "write DIR/extctl.prom atomically (mode 0644) for node_exporter's textfile collector instead of printing",
  ),
} as const satisfies FlagSpec;

export function registerMetricsCommand(program: Command): void {
  addFlags(
    program
      .command("metrics")
      .description(
        "print extension versions, merge state, the last upgrade and catalog age in the Prometheus text format",
      ),
    METRICS_FLAGS,
  ).action(async (_opts: unknown, command: Command) => {
    const opts = flagsOf(command, METRICS_FLAGS);
    const { metricsText, writeMetrics } = await import("../../operations/metrics.js");
    const ctx = contextFor(command);
    if (opts.write !== undefined) {
      const file = await writeMetrics(ctx, opts.write);
      ctx.log.info(`wrote ${file}`);
    } else print((await metricsText(ctx)).replace(/\n$/, ""));
  });
}
