// `extctl metrics`: what a fleet owner asks of each node, in the Prometheus text exposition
// format (version 0.0.4): which extension versions run, whether merged, how the last upgrade
// ended and when, how old the catalogs are; written atomically for node_exporter's textfile
// collector with --write DIR.
import path from "node:path";
import { mkdir, open, rename, rm } from "node:fs/promises";
import type { Context } from "../util/context.js";
import { messageOf } from "../util/errors.js";
import { READ_CAPS, readInRoot } from "../util/bounded-read.js";
import { writeFileInRoot } from "../util/atomic.js";
import { EXTENSION_KINDS, type ExtensionKind } from "../domain/store/layout.js";
import { ExtensionStore } from "../domain/store/store.js";
import { VersionedStore } from "../domain/store/versions.js";
import { CATALOG_STATE_FILE } from "../domain/catalog/fetch.js";

/** Under the root: how the last upgrade of each kind ended (written by `upgrade`). */
export const UPGRADE_STATE_FILE = "/var/lib/kairos/extctl-upgrade.json";
/** Under the root: the metrics directory `systemd install --metrics-dir` chose (one path). */
export const METRICS_DIR_FILE = "/etc/extctl/metrics-dir";
/** The first line of that file, so uninstall removes only a file install wrote. */
export const METRICS_DIR_MARKER = "# written by extctl systemd install --metrics-dir";

/** The file node_exporter's textfile collector reads in the metrics directory. */
export const METRICS_FILE_NAME = "extctl.prom";

interface UpgradeState {
  [kind: string]: { exitCode: number; at: string };
}

async function readJson<T>(ctx: Context, nodePath: string): Promise<T | undefined> {
  try {
    const bytes = await readInRoot(ctx.root, nodePath, { cap: READ_CAPS.config, what: nodePath });
    return bytes === undefined ? undefined : (JSON.parse(bytes.toString("utf8")) as T);
  } catch (e) {
    ctx.log.warn(`cannot read ${ctx.root.path(nodePath)}: ${messageOf(e)}`);
    return undefined;
  }
}

/** Records how an upgrade of `kind` ended, for `metrics` (a failure to write only warns). */
export async function recordUpgrade(
  ctx: Context,
  kind: ExtensionKind,
  exitCode: number,
): Promise<void> {
  try {
    const state = (await readJson<UpgradeState>(ctx, UPGRADE_STATE_FILE)) ?? {};
    state[kind] = { exitCode, at: new Date().toISOString() };
    await writeFileInRoot(ctx.root, UPGRADE_STATE_FILE, JSON.stringify(state, null, 2) + "\n");
  } catch (e) {
    ctx.log.warn(`cannot record the upgrade's result: ${messageOf(e)}`);
  }
}

/** A label value as the exposition format escapes it: backslash, double quote and newline. */
export function labelValue(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function labels(pairs: Record<string, string>): string {
  const inner = Object.entries(pairs)
    .map(([k, v]) => `${k}="${labelValue(v)}"`)
    .join(",");
  return inner === "" ? "" : `{${inner}}`;
}

/** One metric family: HELP and TYPE once, then its samples. */
class Family {
  readonly samples: string[] = [];
  constructor(
    readonly name: string,
    readonly type: "gauge" | "counter",
    readonly help: string,
  ) {}
  add(pairs: Record<string, string>, value: number): void {
    this.samples.push(`${this.name}${labels(pairs)} ${Number.isFinite(value) ? value : "NaN"}`);
  }
  text(): string {
    return [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} ${this.type}`, ...this.samples]
      .map((l) => l + "\n")
      .join("");
  }
}

/** The node's metrics in the Prometheus text format. */
export async function metricsText(ctx: Context, now = Date.now()): Promise<string> {
  const info = new Family(
    "extctl_extension_info",
    "gauge",
    "An extension installed by name and its current version (always 1).",
  );
  const merged = new Family(
    "extctl_extension_merged",
    "gauge",
    "1 when the current version is the one extctl last saw merged, else 0.",
  );
  const pending = new Family(
    "extctl_extension_pending",
    "gauge",
    "1 when the current version still awaits its boot assessment (not blessed), else 0.",
  );
  const triesLeft = new Family(
    "extctl_extension_pending_tries_left",
    "gauge",
    "Boots a pending version may still try before a boot falls back to the previous one.",
  );
  const blessed = new Family(
    "extctl_extension_blessed",
    "gauge",
    "1 when the current version was blessed (boot-complete.target reached while current), else 0.",
  );
  const fallbacks = new Family(
    "extctl_extension_boot_fallbacks_total",
    "counter",
    "Boots that found a pending version out of tries and linked the previous version instead.",
  );
  const versionsCount = new Family(
    "extctl_extension_versions",
    "gauge",
    "Versions of the extension kept on the node.",
  );
  for (const kind of EXTENSION_KINDS) {
    const versions = new VersionedStore(new ExtensionStore(ctx.root, kind));
    for (const name of await versions.names()) {
      const record = await versions.read(name).catch(() => undefined);
      if (!record) continue;
      const current = await versions.current(record).catch(() => undefined);
      const version = current?.version ?? "";
      info.add({ kind, name, version }, 1);
      merged.add({ kind, name }, current && record.merged === current.version ? 1 : 0);
      const onTrial = record.pending !== undefined && record.pending.file === current?.file;
      pending.add({ kind, name }, onTrial ? 1 : 0);
      if (onTrial) triesLeft.add({ kind, name }, record.pending?.triesLeft ?? 0);
      blessed.add({ kind, name }, version !== "" && record.blessed === version ? 1 : 0);
      fallbacks.add({ kind, name }, record.bootFallbackCount ?? 0);
      versionsCount.add({ kind, name }, record.versions.length);
    }
  }
  const upgradeCode = new Family(
    "extctl_upgrade_last_exit_code",
    "gauge",
    "Exit code of the last upgrade (0 upgraded, 3 nothing to do, 1 failed, 75 unreachable).",
  );
  const upgradeTime = new Family(
    "extctl_upgrade_last_timestamp_seconds",
    "gauge",
    "When the last upgrade ended, in seconds since the epoch.",
  );
  const upgrades = (await readJson<UpgradeState>(ctx, UPGRADE_STATE_FILE)) ?? {};
  for (const kind of EXTENSION_KINDS) {
    const last = upgrades[kind];
    if (!last || typeof last.exitCode !== "number") continue;
    upgradeCode.add({ kind }, last.exitCode);
    upgradeTime.add({ kind }, Date.parse(last.at) / 1000);
  }
  const catalogTime = new Family(
    "extctl_catalog_generated_timestamp_seconds",
    "gauge",
    "The newest `generated` time seen from each catalog URL, in seconds since the epoch.",
  );
  const catalogAge = new Family(
    "extctl_catalog_age_seconds",
    "gauge",
    "How old the newest catalog seen from each URL was when these metrics were written.",
  );
  const catalogs =
    (await readJson<{ generated?: Record<string, string> }>(ctx, CATALOG_STATE_FILE))?.generated ??
    {};
  for (const [url, generated] of Object.entries(catalogs).sort()) {
    const at = Date.parse(generated);
    if (Number.isNaN(at)) continue;
    catalogTime.add({ url }, at / 1000);
    catalogAge.add({ url }, Math.max(0, Math.round((now - at) / 1000)));
  }
  return [
    info,
    merged,
    pending,
    triesLeft,
    blessed,
    fallbacks,
    versionsCount,
    upgradeCode,
    upgradeTime,
    catalogTime,
    catalogAge,
  ]
    .map((f) => f.text())
    .join("");
}

/**
 * Writes the metrics to DIR/extctl.prom (a host directory, as node_exporter's
 * --collector.textfile.directory names it) atomically, mode 0644: the collector never reads a
 * half-written file. Returns the path written.
 */
export async function writeMetrics(ctx: Context, dir: string): Promise<string> {
  const text = await metricsText(ctx);
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const file = path.join(dir, METRICS_FILE_NAME);
  // The temp name must not end in .prom: the collector reads every *.prom in the directory.
  const temp = path.join(dir, `.${METRICS_FILE_NAME}.${process.pid}.tmp`);
  const handle = await open(temp, "w", 0o644);
  try {
    await handle.writeFile(text);
    await handle.chmod(0o644);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await rename(temp, file);
  } catch (e) {
    await rm(temp, { force: true });
    throw e;
  }
  return file;
}

/** The metrics directory named in ROOT/etc/extctl/metrics-dir (root's own), if any. */
export async function configuredMetricsDir(ctx: Context): Promise<string | undefined> {
  const { readOwnedInRoot } = await import("../util/owned-state.js");
  const raw = await readOwnedInRoot(ctx.root, METRICS_DIR_FILE, {
    cap: READ_CAPS.config,
    what: "the metrics directory setting",
    warn: (m) => ctx.log.warn(m),
  });
  if (raw === undefined) return undefined;
  const dir = raw
    .toString("utf8")
    .split("\n")
    .map((l) => l.trim())
    .find((l) => l !== "" && !l.startsWith("#"));
  if (dir === undefined || !dir.startsWith("/")) {
    ctx.log.warn(`${METRICS_DIR_FILE} names no absolute directory; no metrics written`);
    return undefined;
  }
  return dir;
}

/**
 * After boot, upgrade and bless: rewrites DIR/extctl.prom when `systemd install --metrics-dir`
 * chose DIR (a node path, under the root). A failure only warns: metrics never fail the step.
 */
export async function writeConfiguredMetrics(ctx: Context): Promise<void> {
  try {
    const dir = await configuredMetricsDir(ctx);
    if (dir === undefined) return;
    await writeMetrics(ctx, await ctx.root.writePath(dir));
  } catch (e) {
    ctx.log.warn(`cannot write the metrics: ${messageOf(e)}`);
  }
}
