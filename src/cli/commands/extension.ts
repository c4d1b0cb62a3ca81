// `extctl sysext|confext VERB`: the kairos-agent grammar (install/download, list, enable,
// disable, remove, status). Each action loads its operation only when it runs.
import { pathToFileURL } from "node:url";
import type { Command } from "commander";
import { UsageError } from "../../util/errors.js";
import { EXTENSION_KINDS, type ExtensionKind, type Profile } from "../../domain/store/layout.js";
import type { ListedImage } from "../../operations/list.js";
import type { InstallEnableResult } from "../../operations/install-enable.js";
import { schemeList } from "../../domain/sources/source-registry.js";
import {
  addFlags,
  boolFlag,
  contextFor,
  defined,
  millisecondsOf,
  flagsOf,
  jsonFlag,
  listFlag,
  numberFlag,
  refreshFlag,
  textFlag,
  type FlagSpec,
  type FlagValues,
  TABLE_FLAGS,
} from "../options.js";
import { print, printJson, printJsonAs, printTable, setTableLayout } from "../render.js";
import { renderStatus, STATUS_FLAGS } from "./status.js";
import {
  CA_CERT_FLAG,
  CATALOG_FLAGS,
  netOptionsOf,
  parseKeep,
  registerLifecycleCommands,
} from "./lifecycle.js";
import { writeStderr } from "../../util/stdio.js";

/** --active, --passive, --recovery, --common: the boot profile a command works on. */
const PROFILE_FLAGS = {
  active: boolFlag("--active", "the active boot profile"),
  passive: boolFlag("--passive", "the passive (fallback) boot profile"),
  recovery: boolFlag("--recovery", "the recovery boot profile (also used on autoreset)"),
  common: boolFlag("--common", "every boot profile"),
} as const satisfies FlagSpec;

const PROFILE_NAMES = ["active", "passive", "recovery", "common"] as const satisfies Profile[];

function chosenProfile(flags: FlagValues<typeof PROFILE_FLAGS>, required: true): Profile;
function chosenProfile(
  flags: FlagValues<typeof PROFILE_FLAGS>,
  required: false,
): Profile | undefined;
function chosenProfile(
  flags: FlagValues<typeof PROFILE_FLAGS>,
  required: boolean,
): Profile | undefined {
  const chosen = PROFILE_NAMES.filter((p) => flags[p]);
  if (chosen.length > 1)
    throw new UsageError("only one of --active, --passive, --recovery or --common can be set");
  if (chosen.length === 0 && required) {
    throw new UsageError("either --active, --passive, --recovery or --common must be set");
  }
  return chosen[0];
}

const INSTALL_FLAGS = {
  sha256: textFlag("--sha256 <hex>", "expected SHA-256 of the image, checked while it streams"),
  name: textFlag("--name <file>", "store the image under this file name (must end in .raw)"),
  caCert: CA_CERT_FLAG,
  platform: textFlag(
    "--platform <os/arch[/variant]>",
    "oci: which platform to pull from a multi-arch index",
  ),
  maxSize: textFlag(
    "--max-size <size>",
    "refuse an image (or OCI layers) expanding past this size, e.g. 8G (default 64G; never more than the store's free space)",
  ),
  replace: boolFlag(
    "--replace",
    "oci: let a classic image holding several .raw files replace installed ones besides its own",
  ),
  version: textFlag(
    "--version <version>",
    "by name: this tag or semver constraint (as NAME@VERSION)",
  ),
  dryRun: boolFlag("--dry-run", "by name: print what would be fetched; change nothing"),
  keep: numberFlag("--keep <n>", "by name: versions to keep (default 3)", parseKeep),
  enable: listFlag(
    "--enable <profile>",
    "also enable it in this profile: active, passive, recovery or common (repeatable); a failure undoes the install",
  ),
  now: boolFlag(
    "--now",
    "with --enable: also merge it now when booted in one of those profiles; a failed merge undoes everything",
  ),
  json: jsonFlag(),
  ...CATALOG_FLAGS,
} as const satisfies FlagSpec;

/** --enable's profiles, checked; undefined without --enable. */
function enableProfiles(
  values: string[] | undefined,
  now: boolean | undefined,
): Profile[] | undefined {
  if (values === undefined) {
    if (now) throw new UsageError("--now goes with --enable PROFILE when installing");
    return undefined;
  }
  const profiles: Profile[] = [];
  for (const value of values) {
    const profile = PROFILE_NAMES.find((p) => p === value);
    if (profile === undefined)
      throw new UsageError(
        `--enable ${JSON.stringify(value)} is not a profile; use active, passive, recovery or common`,
      );
    if (!profiles.includes(profile)) profiles.push(profile);
  }
  return profiles;
}

const LIST_FLAGS = {
  verify: boolFlag("--verify", "also check each signature against the trusted certificates"),
  trust: listFlag(
    "--trust <file|dir>",
    "with --verify: also trust these certificates (repeatable)",
  ),
  json: jsonFlag("print the list as JSON"),
  ...PROFILE_FLAGS,
  ...TABLE_FLAGS,
} as const satisfies FlagSpec;

/** enable and disable; enable adds its trust options after the profile flags. */
function switchFlags(verb: "enable" | "disable") {
  return {
    now: boolFlag(
      "--now",
      verb === "enable"
        ? "also link it into /run and refresh"
        : "also unlink it from /run and refresh",
    ),
    regex: boolFlag("--regex", "treat NAME as a regular expression (must match exactly one image)"),
    refresh: refreshFlag(),
    json: jsonFlag(),
    ...PROFILE_FLAGS,
  } as const satisfies FlagSpec;
}

const ENABLE_FLAGS = {
  ...switchFlags("enable"),
  policy: textFlag(
    "--policy <policy>",
    "image policy: signed, verity, any or systemd's syntax (default: the node's)",
  ),
  trust: listFlag("--trust <file|dir>", "also trust these certificates (repeatable)"),
} as const satisfies FlagSpec;

const DISABLE_FLAGS = switchFlags("disable");

function switchArgs(kind: ExtensionKind, name: string, opts: FlagValues<typeof DISABLE_FLAGS>) {
  return {
    kind,
    name,
    profile: chosenProfile(opts, true),
    now: !!opts.now,
    regex: !!opts.regex,
    refresh: opts.refresh,
  };
}

const REMOVE_FLAGS = {
  now: boolFlag("--now", "also unlink it from /run and refresh"),
  regex: boolFlag("--regex", "treat NAME as a regular expression (must match exactly one image)"),
  refresh: refreshFlag(),
  json: jsonFlag(),
} as const satisfies FlagSpec;

/** One line per image: where it is enabled and, with --now, whether it merged. */
function renderInstallEnable(result: InstallEnableResult): string {
  const images = [...new Set(result.enabled.map((e) => e.image))];
  return images
    .map((image) => {
      const rows = result.enabled.filter((e) => e.image === image);
      const profiles = [...new Set(rows.map((e) => e.profile))].join(", ");
      const merged = rows.find((e) => e.merged !== undefined)?.merged;
      const now =
        merged === undefined
          ? result.notLive
            ? `; not merged now: ${result.notLive}`
            : ""
          : merged
            ? "; merged"
            : "; not merged";
      return `${image}  enabled in ${profiles}${now}`;
    })
    .join("\n");
}

/** The store's (or a profile's) images, as `list` prints them. */
function printListTable(images: ListedImage[], verify: boolean): void {
  printTable(images, [
    { header: "NAME", value: (i) => i.name + (i.present ? "" : " (missing)") },
    { header: "VERSION", value: (i) => i.version ?? "-" },
    { header: "FORMAT", value: (i) => i.format ?? "-" },
    { header: "SIGNED", value: (i) => (i.signed === undefined ? "-" : yesNo(i.signed)) },
    ...(verify
      ? [
          {
            header: "TRUST",
            value: (i: ListedImage) =>
              i.corrupted
                ? "CORRUPTED (verify --full)"
                : i.trust
                  ? i.trust.trusted
                    ? "trusted"
                    : i.trust.outcome
                  : "-",
          },
          { header: "SIGNER", value: (i: ListedImage) => i.trust?.signer ?? "-" },
        ]
      : []),
    {
      header: "COMPATIBLE",
      value: (i) =>
        i.compatible === undefined ? "-" : i.compatible ? "yes" : `no: ${i.reason ?? "?"}`,
    },
    { header: "ENABLED", value: (i) => i.profiles.join(",") || "-" },
    { header: "MERGED", value: (i) => yesNo(i.merged) },
  ]);
}

function yesNo(value: boolean): string {
  return value ? "yes" : "no";
}

/** Every subcommand name and alias of sysext and confext (test/unit/cli/subtree.test.ts checks). */
export const EXTENSION_SUBCOMMANDS: readonly string[] = [
  "install",
  "download",
  "upgrade",
  "rollback",
  "versions",
  "list",
  "enable",
  "disable",
  "remove",
  "status",
];

/**
 * Registers sysext and confext (or `kinds`) with their subcommands; with `only` naming one of
 * them, that one alone (a run builds what it runs; cli/main.ts). Any other `only` (help, a typo)
 * gets them all, so help and suggestions stay whole.
 */
export function registerExtensionCommands(
  program: Command,
  kinds: readonly ExtensionKind[] = EXTENSION_KINDS,
  only?: string,
): void {
  const one = only !== undefined && EXTENSION_SUBCOMMANDS.includes(only) ? only : undefined;
  const wanted = (...names: string[]) => one === undefined || names.includes(one);
  for (const kind of kinds) {
    const what = kind === "sysext" ? "system extension" : "configuration extension";
    const parent = program
      .command(kind)
      .description(`manage ${what}s (${kind === "sysext" ? "/usr and /opt" : "/etc"} overlays)`);

    if (wanted("install", "download"))
      addFlags(
        parent
          .command("install")
          .alias("download")
          .description(
            `fetch a ${what} into the store: from ${schemeList()}, or by NAME[@VERSION|@CONSTRAINT] from the catalogs`,
          )
          .argument(
            "<uri|name>",
            "where the image is (https://example.org/tool.sysext.raw), or a catalog name such as fwupd, fwupd@2.1.7 or 'gpg@>= 2.5, < 3'",
          ),
        INSTALL_FLAGS,
      ).action(async (target: string, _opts: unknown, command: Command) => {
        const opts = flagsOf(command, INSTALL_FLAGS);
        const profiles = enableProfiles(opts.enable, opts.now);
        const { isUriOrPath } = await import("../../operations/install-name.js");
        if (!isUriOrPath(target) && target.includes("/"))
          throw new UsageError(
            `${JSON.stringify(target)} is neither a URI, an absolute path nor a catalog name (write file:${target} for a relative path)`,
          );
        if (!isUriOrPath(target)) {
          for (const flag of ["sha256", "name", "platform", "replace"] as const)
            if (opts[flag] !== undefined)
              throw new UsageError(`--${flag} is for installing from a URI, not by catalog name`);
          const byName = defined({
            kind,
            spec: target,
            ...(await netOptionsOf(opts)),
            version: opts.version,
            dryRun: opts.dryRun,
            keep: opts.keep,
          });
          if (profiles) {
            const { installAndEnable } = await import("../../operations/install-enable.js");
            const both = await installAndEnable(
              contextFor(command),
              { from: "name", install: byName },
              defined({ profiles, now: opts.now, trust: opts.trust }),
            );
            if (opts.json) printJson(both);
            else print(renderInstallEnable(both));
            return;
          }
          const { installByName } = await import("../../operations/install-name.js");
          const result = await installByName(contextFor(command), byName);
          if (opts.json) printJson(result);
          else print(`${result.name} ${result.version}  ${result.reference}  (${result.action})`);
          return;
        }
        for (const flag of ["version", "dryRun", "keep", "catalog", "catalogPolicy"] as const)
          if (opts[flag] !== undefined)
            throw new UsageError(
              `--${flag.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} is for installing by catalog name, not from a URI`,
            );
        const { parseSize } = await import("../../domain/sources/expansion.js");
        const fromUri = defined({
          kind,
          uri: target.startsWith("/") ? pathToFileURL(target).href : target,
          sha256: opts.sha256,
          name: opts.name,
          caCerts: opts.caCert,
          platform: opts.platform,
          creds: opts.creds,
          insecureRegistries: opts.insecureRegistry,
          timeoutMs: millisecondsOf(opts.timeout),
          maxBytes: opts.maxSize === undefined ? undefined : parseSize(opts.maxSize),
          replace: opts.replace,
        });
        if (profiles) {
          const { installAndEnable } = await import("../../operations/install-enable.js");
          const both = await installAndEnable(
            contextFor(command),
            { from: "uri", install: fromUri },
            defined({ profiles, now: opts.now, trust: opts.trust }),
          );
          if (opts.json) printJson(both);
          else print(renderInstallEnable(both));
          return;
        }
        const { install } = await import("../../operations/install.js");
        const result = await install(contextFor(command), fromUri);
        if (opts.json) printJson(result);
        else for (const image of result.images) print(`${image.name}  sha256:${image.sha256}`);
      });

    registerLifecycleCommands(parent, kind, wanted);

    if (wanted("list"))
      addFlags(
        parent
          .command("list")
          .description(`list the ${what}s in the store, or those enabled in one profile`),
        LIST_FLAGS,
      ).action(async (_opts: unknown, command: Command) => {
        const opts = flagsOf(command, LIST_FLAGS);
        setTableLayout(opts);
        const profile = chosenProfile(opts, false);
        const { list } = await import("../../operations/list.js");
        const result = await list(
          contextFor(command),
          defined({
            kind,
            profile: profile,
            verify: !!opts.verify,
            trust: opts.trust ?? [],
          }),
        );
        if (opts.json) return printJsonAs("list", result);
        if (result.images.length === 0)
          writeStderr(
            profile ? `no ${what}s enabled in the ${profile} profile\n` : `no ${what}s installed\n`,
          );
        else printListTable(result.images, !!opts.verify);
        // What systemd takes from its own search dirs beside extctl's links: after the store.
        if (result.others) {
          print(`\nin systemd's search dirs (not in extctl's store):`);
          printTable(result.others, [
            { header: "NAME", value: (o) => o.name },
            { header: "PATH", value: (o) => o.path },
            {
              header: "TYPE",
              value: (o) => (o.type === "versioned" ? "versions (systemd.v)" : "directory"),
            },
            { header: "PICKED", value: (o) => o.picked?.file ?? "-" },
            {
              header: "COMPATIBLE",
              value: (o) => (o.compatible ? "yes" : `no: ${o.reason ?? "?"}`),
            },
            { header: "MERGED", value: (o) => yesNo(o.merged) },
          ]);
        }
      });

    for (const verb of ["enable", "disable"] as const) {
      if (!wanted(verb)) continue;
      const spec = verb === "enable" ? ENABLE_FLAGS : DISABLE_FLAGS;
      addFlags(
        parent
          .command(verb)
          .description(
            verb === "enable"
              ? `enable a ${what} for a boot profile (--now: merge it now if the node runs that profile)`
              : `disable a ${what} for a boot profile (--now: unmerge it now)`,
          )
          .argument("<name>", "image name, with or without .raw / .sysext.raw / .confext.raw"),
        spec,
      ).action(async (name: string, _opts: unknown, cmd: Command) => {
        const ctx = contextFor(cmd);
        if (verb === "enable") {
          const opts = flagsOf(cmd, ENABLE_FLAGS);
          const args = defined({
            ...switchArgs(kind, name, opts),
            policy: opts.policy,
            trust: opts.trust,
          });
          const { enable } = await import("../../operations/enable.js");
          const result = await enable(ctx, args);
          if (opts.json) printJson(result);
        } else {
          const opts = flagsOf(cmd, DISABLE_FLAGS);
          const args = switchArgs(kind, name, opts);
          const { disable } = await import("../../operations/disable.js");
          const result = await disable(ctx, args);
          if (opts.json) printJson(result);
        }
      });
    }

    if (wanted("remove"))
      addFlags(
        parent
          .command("remove")
          .description(`delete a ${what} and its links in every profile (--now: unmerge it now)`)
          .argument("<name>", "image name, with or without .raw / .sysext.raw / .confext.raw"),
        REMOVE_FLAGS,
      ).action(async (name: string, _opts: unknown, command: Command) => {
        const opts = flagsOf(command, REMOVE_FLAGS);
        const { remove } = await import("../../operations/remove.js");
        const result = await remove(contextFor(command), {
          kind,
          name,
          now: !!opts.now,
          regex: !!opts.regex,
          refresh: opts.refresh,
        });
        if (opts.json) printJson(result);
      });

    if (wanted("status"))
      addFlags(
        parent
          .command("status")
          .description(`show what is merged, enabled and linked for ${what}s, and every mismatch`),
        STATUS_FLAGS,
      ).action(async (_opts: unknown, command: Command) => {
        const opts = flagsOf(command, STATUS_FLAGS);
        const { status } = await import("../../operations/status.js");
        const result = await status(contextFor(command), { kinds: [kind] });
        if (opts.json) printJson(result);
        else print(renderStatus(result));
      });
  }
}
