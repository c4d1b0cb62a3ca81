// `extctl sysext|confext upgrade|rollback|versions`, and the catalog half of `install NAME`:
// extensions installed by name from catalogs, kept in several versions (issue 14).
import type { Command } from "commander";
import { UsageError } from "../../util/errors.js";
import { stdoutIsJournal } from "../../util/journal.js";
import { writeStdout } from "../../util/stdio.js";
import type { ExtensionKind } from "../../domain/store/layout.js";
import type { NetOptions } from "../../domain/lifecycle/steps.js";
import type { UpgradeResult } from "../../operations/upgrade.js";
import type { VersionsResult } from "../../operations/versions.js";
import {
  addFlags,
  boolFlag,
  choiceFlag,
  contextFor,
  defined,
  millisecondsOf,
  flagsOf,
  jsonFlag,
  listFlag,
  numberFlag,
  secondsFor,
  refreshFlag,
  textFlag,
  TIMEOUT_FLAG,
  type FlagSpec,
  type FlagValues,
  TABLE_FLAGS,
} from "../options.js";
import { print, printJson, printJsonAs, renderTable, setTableLayout } from "../render.js";
import { formatCommand } from "../../util/runner.js";

/** The catalog, TLS and registry options install, upgrade and versions share. */
export const CATALOG_FLAGS = {
  catalog: listFlag(
    "--catalog <url>",
    "read extensions from this catalog (https:, file: or oci:; repeatable, searched in order; default: /etc/extctl/catalogs)",
  ),
  catalogPolicy: choiceFlag(
    "--catalog-policy <policy>",
    "signed: refuse a catalog without a valid URL.p7s signature",
    ["any", "signed"],
  ),
  trust: listFlag("--trust <cert>", "also trust this certificate for signatures (repeatable)"),
  creds: textFlag("--creds <user:pass>", "oci: registry credentials"),
  insecureRegistry: listFlag(
    "--insecure-registry <host>",
    "oci: reach this registry over plain http (repeatable)",
  ),
  timeout: TIMEOUT_FLAG,
} as const satisfies FlagSpec;

/** install lists --ca-cert among its own options, upgrade and versions after the catalog's. */
export const CA_CERT_FLAG = listFlag(
  "--ca-cert <file>",
  "also trust this CA (PEM) for https: and oci: (repeatable)",
);

type CatalogFlags = Partial<FlagValues<typeof CATALOG_FLAGS>> & {
  readonly caCert?: string[] | undefined;
  readonly maxSize?: string | undefined;
};

export async function netOptionsOf(opts: CatalogFlags): Promise<NetOptions> {
  const { parseSize } = await import("../../domain/sources/expansion.js");
  return defined({
    catalogs: opts.catalog,
    catalogPolicy: opts.catalogPolicy,
    trust: opts.trust,
    caCerts: opts.caCert,
    creds: opts.creds,
    insecureRegistries: opts.insecureRegistry,
    timeoutMs: millisecondsOf(opts.timeout),
    maxBytes: opts.maxSize === undefined ? undefined : parseSize(opts.maxSize),
  });
}

export function parseKeep(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new UsageError(
      `--keep wants a whole number of versions, 1 or more, got ${JSON.stringify(value)}`,
    );
  return n;
}

function parseTriesFlag(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > 100)
    throw new UsageError(
      `--tries wants a whole number of boots 0-100, got ${JSON.stringify(value)}`,
    );
  return n;
}

const UPGRADE_FLAGS = {
  all: boolFlag("--all", "every extension installed by name"),
  now: boolFlag(
    "--now",
    "refresh and confirm the new version merged (else the old one is put back)",
  ),
  dryRun: boolFlag("--dry-run", "say what would be upgraded; change nothing"),
  keep: numberFlag("--keep <n>", "versions to keep per extension (default 3)", parseKeep),
  allowDowngrade: boolFlag(
    "--allow-downgrade",
    "take a version older than the current one when the catalog chooses it",
  ),
  policy: textFlag("--policy <policy>", "image policy for the new versions instead of the node's"),
  forOs: textFlag(
    "--for-os <file|root>",
    "pre-fetch the versions that suit another os-release (a file, or a root holding one); switch nothing",
  ),
  maxSize: textFlag("--max-size <size>", "refuse an image past this size, e.g. 8G"),
  healthCheck: textFlag(
    "--health-check <command>",
    "with --now: run this program and its arguments (no shell; sh -c '...' for one) after the new version merged, and put the old one back when it fails; remembered per extension, '' forgets it",
  ),
  healthCheckTimeout: numberFlag(
    "--health-check-timeout <seconds>",
    "kill the health check and count it failed after this many seconds (default 60)",
    secondsFor("--health-check-timeout"),
  ),
  tries: numberFlag(
    "--tries <n>",
    "boot assessment: the new version is pending for n boots until `extctl bless` (after boot-complete.target) keeps it, else a boot goes back to the previous one (default /etc/extctl/boot-tries, else 0: off)",
    parseTriesFlag,
  ),
  refresh: refreshFlag(),
  json: jsonFlag("print per extension: name, from, to, action, reason, healthCheck"),
  ...TABLE_FLAGS,
  ...CATALOG_FLAGS,
  caCert: CA_CERT_FLAG,
} as const satisfies FlagSpec;

const ROLLBACK_FLAGS = {
  to: textFlag("--to <version>", "this installed version (default: the one switched from last)"),
  now: boolFlag("--now", "refresh and confirm it merged"),
  policy: textFlag("--policy <policy>", "image policy instead of the node's"),
  trust: listFlag("--trust <cert>", "also trust this certificate (repeatable)"),
  refresh: refreshFlag(),
  json: jsonFlag(),
} as const satisfies FlagSpec;

const VERSIONS_FLAGS = {
  installed: boolFlag("--installed", "do not read the catalogs"),
  json: jsonFlag(),
  ...TABLE_FLAGS,
  ...CATALOG_FLAGS,
  caCert: CA_CERT_FLAG,
} as const satisfies FlagSpec;

/** Registers upgrade, rollback and versions under `parent`, those `wanted` says (default all). */
export function registerLifecycleCommands(
  parent: Command,
  kind: ExtensionKind,
  wanted: (name: string) => boolean = () => true,
): void {
  if (wanted("upgrade"))
    addFlags(
      parent
        .command("upgrade")
        .description(
          "upgrade extensions installed by name to what their catalogs offer now, keeping every profile; exit 0 upgraded, 3 nothing to do, 1 a failure (or a failed health check) kept the old version, 75 a catalog or registry could not be reached",
        )
        .argument("[name...]", "extensions to upgrade (installed by name)"),
      UPGRADE_FLAGS,
    ).action(async (names: string[], _opts: unknown, command: Command) => {
      const opts = flagsOf(command, UPGRADE_FLAGS);
      setTableLayout(opts);
      const { upgrade } = await import("../../operations/upgrade.js");
      const { parseHealthCheck } = await import("../../domain/lifecycle/health-check.js");
      const ctx = contextFor(command);
      const { readOsReleaseAt } = await import("../../domain/image/os-release-file.js");
      const forOs = opts.forOs === undefined ? undefined : await readOsReleaseAt(opts.forOs);
      const result = await upgrade(
        ctx,
        defined({
          kind,
          names,
          ...(await netOptionsOf(opts)),
          all: opts.all,
          now: opts.now,
          dryRun: opts.dryRun,
          keep: opts.keep,
          allowDowngrade: opts.allowDowngrade,
          policy: opts.policy,
          forOs: forOs,
          refresh: opts.refresh,
          healthCheck:
            opts.healthCheck === undefined
              ? undefined
              : opts.healthCheck.trim() === ""
                ? []
                : parseHealthCheck(opts.healthCheck),
          healthCheckTimeoutMs: millisecondsOf(opts.healthCheckTimeout),
          tries: opts.tries,
        }),
      );
      if (opts.json) await printJsonAs("upgrade", result);
      else if (stdoutIsJournal()) {
        // Under extctl-upgrade.service: a line per event and a summary, not a table.
        const { upgradeJournalText } = await import("../journal-summary.js");
        writeStdout(upgradeJournalText(result));
      } else print(renderUpgrade(result));
      process.exitCode = result.exitCode;
    });

  if (wanted("rollback"))
    addFlags(
      parent
        .command("rollback")
        .description("make an older installed version current again, in every profile")
        .argument("<name>", "extension installed by name"),
      ROLLBACK_FLAGS,
    ).action(async (name: string, _opts: unknown, command: Command) => {
      const opts = flagsOf(command, ROLLBACK_FLAGS);
      const { rollback } = await import("../../operations/rollback.js");
      const result = await rollback(
        contextFor(command),
        defined({
          kind,
          name,
          to: opts.to,
          now: opts.now,
          policy: opts.policy,
          trust: opts.trust,
          refresh: opts.refresh,
        }),
      );
      if (opts.json) printJson(result);
      else
        print(`${result.name}: ${result.from} -> ${result.to}${result.merged ? " (merged)" : ""}`);
    });

  if (wanted("versions"))
    addFlags(
      parent
        .command("versions")
        .description(
          "installed versions of an extension, which is current, and what the catalogs offer",
        )
        .argument("<name>", "extension installed by name"),
      VERSIONS_FLAGS,
    ).action(async (name: string, _opts: unknown, command: Command) => {
      const opts = flagsOf(command, VERSIONS_FLAGS);
      setTableLayout(opts);
      const { listVersions } = await import("../../operations/versions.js");
      const result = await listVersions(
        contextFor(command),
        defined({
          kind,
          name,
          ...(await netOptionsOf(opts)),
          installedOnly: opts.installed,
        }),
      );
      if (opts.json) await printJsonAs("versions", result);
      else print(renderVersions(result));
    });
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
          [
            v.current ? "current" : "",
            v.merged ? "merged" : "",
            v.previous ? "previous" : "",
            v.pending ? `pending(${v.triesLeft ?? 0} tries left)` : "",
            v.blessed ? "blessed" : "",
          ]
            .filter(Boolean)
            .join(",") || "-",
      },
      { header: "INSTALLED", value: (v) => v.installedAt },
      { header: "REFERENCE", value: (v) => v.reference },
    ]),
  ];
  for (const f of result.bootFallbacks)
    lines.push(`boot fallback at ${f.at}: ${f.from} -> ${f.to}: ${f.reason}`);
  if (result.healthCheck) lines.push(`health check: ${formatCommand(result.healthCheck)}`);
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
