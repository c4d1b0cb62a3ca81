// `extctl sysext|confext VERB`: the kairos-agent grammar (install/download, list, enable,
// disable, remove, status). Each action loads its operation only when it runs.
import { pathToFileURL } from "node:url";
import type { Command } from "commander";
import { Option } from "commander";
import { UsageError } from "../../util/errors.js";
import type { ExtensionKind, Profile } from "../../domain/store/layout.js";
import type { RefreshMode } from "../../domain/activate/refresh.js";
import type { ListedImage } from "../../operations/list.js";
import { schemeList } from "../../domain/sources/source-registry.js";
import { collect, contextFor } from "../options.js";
import { print, printJson, renderTable } from "../render.js";
import { renderStatus } from "./status.js";
import {
  addCatalogOptions,
  netOptionsOf,
  parseKeep,
  registerLifecycleCommands,
} from "./lifecycle.js";

const PROFILE_FLAGS = ["active", "passive", "recovery", "common"] as const;

interface ProfileFlags {
  active?: boolean;
  passive?: boolean;
  recovery?: boolean;
  common?: boolean;
}

function addProfileFlags(command: Command): Command {
  return command
    .option("--active", "the active boot profile")
    .option("--passive", "the passive (fallback) boot profile")
    .option("--recovery", "the recovery boot profile (also used on autoreset)")
    .option("--common", "every boot profile");
}

function chosenProfile(flags: ProfileFlags, required: boolean): Profile | undefined {
  const chosen = PROFILE_FLAGS.filter((p) => flags[p]);
  if (chosen.length > 1)
    throw new UsageError("only one of --active, --passive, --recovery or --common can be set");
  if (chosen.length === 0 && required) {
    throw new UsageError("either --active, --passive, --recovery or --common must be set");
  }
  return chosen[0];
}

function refreshOption(): Option {
  return new Option("--refresh <mode>", "how to make systemd pick up changes")
    .choices(["auto", "systemctl", "sysext", "none"])
    .default("auto");
}

function yesNo(value: boolean): string {
  return value ? "yes" : "no";
}

export function registerExtensionCommands(program: Command): void {
  for (const kind of ["sysext", "confext"] as const satisfies readonly ExtensionKind[]) {
    const what = kind === "sysext" ? "system extension" : "configuration extension";
    const parent = program
      .command(kind)
      .description(`manage ${what}s (${kind === "sysext" ? "/usr and /opt" : "/etc"} overlays)`);

    addCatalogOptions(
      parent
        .command("install")
        .alias("download")
        .description(
          `fetch a ${what} into the store: from ${schemeList()}, or by NAME[@VERSION|@CONSTRAINT] from the catalogs`,
        )
        .argument(
          "<uri|name>",
          "where the image is (https://example.org/tool.sysext.raw), or a catalog name such as fwupd, fwupd@2.1.7 or 'gpg@>= 2.5, < 3'",
        )
        .option("--sha256 <hex>", "expected SHA-256 of the image, checked while it streams")
        .option("--name <file>", "store the image under this file name (must end in .raw)")
        .option(
          "--ca-cert <file>",
          "also trust this CA (PEM) for https: and oci: (repeatable)",
          collect,
        )
        .option(
          "--platform <os/arch[/variant]>",
          "oci: which platform to pull from a multi-arch index",
        )
        .option(
          "--max-size <size>",
          "refuse an image (or OCI layers) expanding past this size, e.g. 8G (default 64G; never more than the store's free space)",
        )
        .option(
          "--replace",
          "oci: let a classic image holding several .raw files replace installed ones besides its own",
        )
        .option("--version <version>", "by name: this tag or semver constraint (as NAME@VERSION)")
        .option("--dry-run", "by name: print what would be fetched; change nothing")
        .option("--keep <n>", "by name: versions to keep (default 3)", parseKeep)
        .option("--json", "print the result as JSON"),
      { install: true },
    ).action(async (target: string, opts, command: Command) => {
      const { isUriOrPath } = await import("../../operations/install-name.js");
      if (!isUriOrPath(target) && target.includes("/"))
        throw new UsageError(
          `${JSON.stringify(target)} is neither a URI, an absolute path nor a catalog name (write file:${target} for a relative path)`,
        );
      if (!isUriOrPath(target)) {
        for (const flag of ["sha256", "name", "platform", "replace"] as const)
          if (opts[flag] !== undefined)
            throw new UsageError(`--${flag} is for installing from a URI, not by catalog name`);
        const { installByName } = await import("../../operations/install-name.js");
        const result = await installByName(contextFor(command), {
          kind,
          spec: target,
          ...(await netOptionsOf(opts)),
          ...(opts.version === undefined ? {} : { version: opts.version as string }),
          ...(opts.dryRun ? { dryRun: true } : {}),
          ...(opts.keep === undefined ? {} : { keep: opts.keep as number }),
        });
        if (opts.json) printJson(result);
        else print(`${result.name} ${result.version}  ${result.reference}  (${result.action})`);
        return;
      }
      for (const flag of ["version", "dryRun", "keep", "catalog", "catalogPolicy"] as const)
        if (opts[flag] !== undefined)
          throw new UsageError(
            `--${flag.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} is for installing by catalog name, not from a URI`,
          );
      const { install } = await import("../../operations/install.js");
      const { parseSize } = await import("../../domain/sources/expansion.js");
      const result = await install(contextFor(command), {
        kind,
        uri: target.startsWith("/") ? pathToFileURL(target).href : target,
        sha256: opts.sha256,
        name: opts.name,
        caCerts: opts.caCert,
        platform: opts.platform,
        creds: opts.creds,
        insecureRegistries: opts.insecureRegistry,
        ...(opts.timeout === undefined ? {} : { timeoutMs: opts.timeout * 1000 }),
        ...(opts.maxSize === undefined ? {} : { maxBytes: parseSize(opts.maxSize as string) }),
        ...(opts.replace ? { replace: true } : {}),
      });
      if (opts.json) printJson(result);
      else for (const image of result.images) print(`${image.name}  sha256:${image.sha256}`);
    });

    registerLifecycleCommands(parent, kind);

    addProfileFlags(
      parent
        .command("list")
        .description(`list the ${what}s in the store, or those enabled in one profile`)
        .option("--verify", "also check each signature against the trusted certificates")
        .option(
          "--trust <file|dir>",
          "with --verify: also trust these certificates (repeatable)",
          collect,
        )
        .option("--json", "print the list as JSON"),
    ).action(async (opts, command: Command) => {
      const profile = chosenProfile(opts, false);
      const { list } = await import("../../operations/list.js");
      const result = await list(contextFor(command), {
        kind,
        ...(profile ? { profile } : {}),
        verify: !!opts.verify,
        trust: opts.trust ?? [],
      });
      if (opts.json) return printJson(result);
      if (result.images.length === 0) {
        process.stderr.write(
          profile ? `no ${what}s enabled in the ${profile} profile\n` : `no ${what}s installed\n`,
        );
        return;
      }
      print(
        renderTable(result.images, [
          { header: "NAME", value: (i) => i.name + (i.present ? "" : " (missing)") },
          { header: "VERSION", value: (i) => i.version ?? "-" },
          { header: "FORMAT", value: (i) => i.format ?? "-" },
          { header: "SIGNED", value: (i) => (i.signed === undefined ? "-" : yesNo(i.signed)) },
          ...(opts.verify
            ? [
                {
                  header: "TRUST",
                  value: (i: ListedImage) =>
                    i.trust ? (i.trust.trusted ? "trusted" : i.trust.outcome) : "-",
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
        ]),
      );
    });

    for (const verb of ["enable", "disable"] as const) {
      const command = addProfileFlags(
        parent
          .command(verb)
          .description(
            verb === "enable"
              ? `enable a ${what} for a boot profile (--now: merge it now if the node runs that profile)`
              : `disable a ${what} for a boot profile (--now: unmerge it now)`,
          )
          .argument("<name>", "image name, with or without .raw / .sysext.raw / .confext.raw")
          .option(
            "--now",
            verb === "enable"
              ? "also link it into /run and refresh"
              : "also unlink it from /run and refresh",
          )
          .option("--regex", "treat NAME as a regular expression (must match exactly one image)")
          .addOption(refreshOption())
          .option("--json", "print the result as JSON"),
      );
      if (verb === "enable") {
        command
          .option(
            "--policy <policy>",
            "image policy: signed, verity, any or systemd's syntax (default: the node's)",
          )
          .option("--trust <file|dir>", "also trust these certificates (repeatable)", collect);
      }
      command.action(async (name: string, opts, cmd: Command) => {
        const profile = chosenProfile(opts, true) as Profile;
        const ctx = contextFor(cmd);
        const args = {
          kind,
          name,
          profile,
          now: !!opts.now,
          regex: !!opts.regex,
          refresh: opts.refresh as RefreshMode,
        };
        const result =
          verb === "enable"
            ? await (
                await import("../../operations/enable.js")
              ).enable(ctx, { ...args, policy: opts.policy, trust: opts.trust })
            : await (await import("../../operations/disable.js")).disable(ctx, args);
        if (opts.json) printJson(result);
      });
    }

    parent
      .command("remove")
      .description(`delete a ${what} and its links in every profile (--now: unmerge it now)`)
      .argument("<name>", "image name, with or without .raw / .sysext.raw / .confext.raw")
      .option("--now", "also unlink it from /run and refresh")
      .option("--regex", "treat NAME as a regular expression (must match exactly one image)")
      .addOption(refreshOption())
      .option("--json", "print the result as JSON")
      .action(async (name: string, opts, command: Command) => {
        const { remove } = await import("../../operations/remove.js");
        const result = await remove(contextFor(command), {
          kind,
          name,
          now: !!opts.now,
          regex: !!opts.regex,
          refresh: opts.refresh as RefreshMode,
        });
        if (opts.json) printJson(result);
      });

    parent
      .command("status")
      .description(`show what is merged, enabled and linked for ${what}s, and every mismatch`)
      .option("--json", "print the status as JSON")
      .action(async (opts, command: Command) => {
        const { status } = await import("../../operations/status.js");
        const result = await status(contextFor(command), { kinds: [kind] });
        if (opts.json) printJson(result);
        else print(renderStatus(result));
      });
  }
}
