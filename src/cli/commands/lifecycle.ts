// `extctl sysext|confext upgrade|rollback|versions`, and the catalog half of `install NAME`:
// extensions installed by name from catalogs, kept in several versions (issue 14).
import type { Command } from "commander";
import { Option } from "commander";
import { UsageError } from "../../util/errors.js";
import type { ExtensionKind } from "../../domain/store/layout.js";
import type { RefreshMode } from "../../domain/activate/refresh.js";
import type { NetOptions } from "../../domain/lifecycle/steps.js";
import type { UpgradeResult } from "../../operations/upgrade.js";
import type { VersionsResult } from "../../operations/versions.js";
import { collect, contextFor, TIMEOUT_OPTION } from "../options.js";
import { print, printJson, renderTable } from "../render.js";

/** The catalog, TLS and registry options install, upgrade and versions share. */
export function addCatalogOptions(command: Command, options: { install?: boolean } = {}): Command {
  command
    .option(
      "--catalog <url>",
      "read extensions from this catalog (https:, file: or oci:; repeatable, searched in order; default: /etc/extctl/catalogs)",
      collect,
    )
    .addOption(
      new Option(
        "--catalog-policy <policy>",
        "signed: refuse a catalog without a valid URL.p7s signature",
      ).choices(["any", "signed"]),
    )
    .option("--trust <cert>", "also trust this certificate for signatures (repeatable)", collect)
    .option("--creds <user:pass>", "oci: registry credentials")
    .option(
      "--insecure-registry <host>",
      "oci: reach this registry over plain http (repeatable)",
      collect,
    )
    .option(...TIMEOUT_OPTION);
  // install has its own --ca-cert with the same meaning
  if (!options.install)
    command.option(
      "--ca-cert <file>",
      "also trust this CA (PEM) for https: and oci: (repeatable)",
      collect,
    );
  return command;
}

interface CatalogFlags {
  catalog?: string[];
  catalogPolicy?: "any" | "signed";
  trust?: string[];
  caCert?: string[];
  creds?: string;
  insecureRegistry?: string[];
  timeout?: number;
  maxSize?: string;
}

export async function netOptionsOf(opts: CatalogFlags): Promise<NetOptions> {
  const { parseSize } = await import("../../domain/sources/expansion.js");
  return {
    ...(opts.catalog ? { catalogs: opts.catalog } : {}),
    ...(opts.catalogPolicy ? { catalogPolicy: opts.catalogPolicy } : {}),
    ...(opts.trust ? { trust: opts.trust } : {}),
    ...(opts.caCert ? { caCerts: opts.caCert } : {}),
    ...(opts.creds ? { creds: opts.creds } : {}),
    ...(opts.insecureRegistry ? { insecureRegistries: opts.insecureRegistry } : {}),
    ...(opts.timeout === undefined ? {} : { timeoutMs: opts.timeout * 1000 }),
    ...(opts.maxSize === undefined ? {} : { maxBytes: parseSize(opts.maxSize) }),
  };
}

export function parseKeep(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new UsageError(
      `--keep wants a whole number of versions, 1 or more, got ${JSON.stringify(value)}`,
    );
  return n;
}

function refreshOption(): Option {
  return new Option("--refresh <mode>", "how to make systemd pick up changes")
    .choices(["auto", "systemctl", "sysext", "none"])
    .default("auto");
}

export function registerLifecycleCommands(parent: Command, kind: ExtensionKind): void {
  addCatalogOptions(
    parent
      .command("upgrade")
      .description(
        "upgrade extensions installed by name to what their catalogs offer now, keeping every profile; exit 0 upgraded, 3 nothing to do, 1 a failure kept the old version",
      )
      .argument("[name...]", "extensions to upgrade (installed by name)")
      .option("--all", "every extension installed by name")
      .option("--now", "refresh and confirm the new version merged (else the old one is put back)")
      .option("--dry-run", "say what would be upgraded; change nothing")
      .option("--keep <n>", "versions to keep per extension (default 3)", parseKeep)
      .option(
        "--allow-downgrade",
        "take a version older than the current one when the catalog chooses it",
      )
      .option("--policy <policy>", "image policy for the new versions instead of the node's")
      .option(
        "--for-os <file|root>",
        "pre-fetch the versions that suit another os-release (a file, or a root holding one); switch nothing",
      )
      .option("--max-size <size>", "refuse an image past this size, e.g. 8G")
      .addOption(refreshOption())
      .option("--json", "print per extension: name, from, to, action, reason"),
  ).action(async (names: string[], opts, command: Command) => {
    const { upgrade } = await import("../../operations/upgrade.js");
    const ctx = contextFor(command);
    const forOs = opts.forOs === undefined ? undefined : await readForOs(opts.forOs as string);
    const result = await upgrade(ctx, {
      kind,
      names,
      ...(await netOptionsOf(opts)),
      ...(opts.all ? { all: true } : {}),
      ...(opts.now ? { now: true } : {}),
      ...(opts.dryRun ? { dryRun: true } : {}),
      ...(opts.keep === undefined ? {} : { keep: opts.keep as number }),
      ...(opts.allowDowngrade ? { allowDowngrade: true } : {}),
      ...(opts.policy === undefined ? {} : { policy: opts.policy as string }),
      ...(forOs ? { forOs } : {}),
      refresh: opts.refresh as RefreshMode,
    });
    if (opts.json) printJson(result);
    else print(renderUpgrade(result));
    process.exitCode = result.exitCode;
  });

  parent
    .command("rollback")
    .description("make an older installed version current again, in every profile")
    .argument("<name>", "extension installed by name")
    .option("--to <version>", "this installed version (default: the one switched from last)")
    .option("--now", "refresh and confirm it merged")
    .option("--policy <policy>", "image policy instead of the node's")
    .option("--trust <cert>", "also trust this certificate (repeatable)", collect)
    .addOption(refreshOption())
    .option("--json", "print the result as JSON")
    .action(async (name: string, opts, command: Command) => {
      const { rollback } = await import("../../operations/rollback.js");
      const result = await rollback(contextFor(command), {
        kind,
        name,
        ...(opts.to === undefined ? {} : { to: opts.to as string }),
        ...(opts.now ? { now: true } : {}),
        ...(opts.policy === undefined ? {} : { policy: opts.policy as string }),
        ...(opts.trust ? { trust: opts.trust as string[] } : {}),
        refresh: opts.refresh as RefreshMode,
      });
      if (opts.json) printJson(result);
      else
        print(`${result.name}: ${result.from} -> ${result.to}${result.merged ? " (merged)" : ""}`);
    });

  addCatalogOptions(
    parent
      .command("versions")
      .description(
        "installed versions of an extension, which is current, and what the catalogs offer",
      )
      .argument("<name>", "extension installed by name")
      .option("--installed", "do not read the catalogs")
      .option("--json", "print the result as JSON"),
  ).action(async (name: string, opts, command: Command) => {
    const { listVersions } = await import("../../operations/versions.js");
    const result = await listVersions(contextFor(command), {
      kind,
      name,
      ...(await netOptionsOf(opts)),
      ...(opts.installed ? { installedOnly: true } : {}),
    });
    if (opts.json) printJson(result);
    else print(renderVersions(result));
  });
}

async function readForOs(where: string): Promise<Record<string, string>> {
  const [{ stat }, { readBounded, READ_CAPS }, { parseOsRelease }, path] = await Promise.all([
    import("node:fs/promises"),
    import("../../util/bounded-read.js"),
    import("../../domain/image/os-release.js"),
    import("node:path"),
  ]);
  let file = where;
  if ((await stat(where).catch(() => undefined))?.isDirectory()) {
    const candidates = ["etc/os-release", "usr/lib/os-release"].map((p) => path.join(where, p));
    const found = [];
    for (const c of candidates) if (await stat(c).catch(() => undefined)) found.push(c);
    if (found.length === 0)
      throw new UsageError(`--for-os ${where}: no etc/os-release or usr/lib/os-release there`);
    file = found[0] as string;
  }
  const fields = parseOsRelease(
    (await readBounded(file, { cap: READ_CAPS.small, what: "the --for-os os-release" })).toString(
      "utf8",
    ),
  );
  if (!fields.ID) throw new UsageError(`--for-os ${where}: the os-release has no ID`);
  return fields;
}

function renderUpgrade(result: UpgradeResult): string {
  if (result.items.length === 0) return `no ${result.kind}s installed by name\n`;
  return renderTable(result.items, [
    { header: "NAME", value: (i) => i.name },
    { header: "FROM", value: (i) => i.from ?? "-" },
    { header: "TO", value: (i) => i.to ?? "-" },
    { header: "ACTION", value: (i) => i.action },
    { header: "REASON", value: (i) => i.reason },
  ]);
}

function renderVersions(result: VersionsResult): string {
  const lines = [
    `${result.name} (${result.image})${result.requested ? `: asked for ${result.requested}${result.pinned ? " (a pin)" : ""}` : ": follows latest"}`,
    `enabled in: ${result.profiles.join(", ") || "no profile"}${result.linkedInRuntime ? "; linked for this boot" : ""}`,
    "",
    renderTable(result.installed, [
      { header: "VERSION", value: (v) => v.version },
      {
        header: "STATE",
        value: (v) =>
          [v.current ? "current" : "", v.merged ? "merged" : "", v.previous ? "previous" : ""]
            .filter(Boolean)
            .join(",") || "-",
      },
      { header: "INSTALLED", value: (v) => v.installedAt },
      { header: "REFERENCE", value: (v) => v.reference },
    ]),
  ];
  if (result.offered) {
    lines.push(
      "offered by the catalogs:",
      renderTable(result.offered, [
        { header: "VERSION", value: (o) => o.version },
        { header: "INSTALLED", value: (o) => (o.installed ? "yes" : "no") },
        { header: "ROLLOUT", value: (o) => (o.rollout ? `${o.rollout.percent}%` : "-") },
        { header: "CATALOG", value: (o) => o.catalog },
      ]),
    );
  } else if (result.catalogError) lines.push(`catalogs: ${result.catalogError}`);
  return lines.join("\n");
}
