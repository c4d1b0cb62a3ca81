// `extctl apply FILE|-`: declarative extensions (alone or under `extensions:` of a Kairos
// cloud-config): plan with --dry-run, or apply; a second apply does nothing.
import type { Command } from "commander";
import { InvalidArgumentError, Option } from "commander";
import type { RefreshMode } from "../../domain/activate/refresh.js";
import { collect, contextFor, TIMEOUT_OPTION } from "../options.js";
import { print, printJson } from "../render.js";

export function registerApplyCommand(program: Command): void {
  program
    .command("apply")
    .description(
      "install, enable and prune extensions to match a YAML file (or a cloud-config's extensions:)",
    )
    .argument("<file>", "the YAML file, or - for stdin")
    .option("--dry-run", "print the plan and change nothing")
    .addOption(
      new Option("--refresh <mode>", "how to make systemd pick up changes for now: true entries")
        .choices(["auto", "systemctl", "sysext", "none"])
        .default("auto"),
    )
    .option(
      "--ca-cert <file>",
      "also trust this CA (PEM) for https: and oci: (repeatable)",
      collect,
    )
    .option(
      "--insecure-registry <host>",
      "oci: reach this registry over plain http (repeatable)",
      collect,
    )
    .option(...TIMEOUT_OPTION)
    .option("--creds <user:pass>", "oci: registry credentials (catalog entries)")
    .addOption(
      new Option(
        "--catalog-policy <policy>",
        "signed: refuse a catalog without a valid URL.p7s signature",
      ).choices(["any", "signed"]),
    )
    .option(
      "--trust <cert>",
      "also trust this certificate for catalog and image signatures (repeatable)",
      collect,
    )
    .option(
      "--keep <n>",
      "versions to keep of each extension from the catalogs (default 3)",
      (v) => {
        const n = Number.parseInt(v, 10);
        if (!Number.isInteger(n) || n < 1 || String(n) !== v.trim())
          throw new InvalidArgumentError("must be a whole number of at least 1");
        return n;
      },
    )
    .option("--json", "print the plan or the steps done as JSON")
    .action(async (file: string, opts, command: Command) => {
      const { apply } = await import("../../operations/apply.js");
      const result = await apply(contextFor(command), {
        file,
        ...(opts.dryRun ? { dryRun: true } : {}),
        refresh: opts.refresh as RefreshMode,
        ...(opts.caCert ? { caCerts: opts.caCert as string[] } : {}),
        ...(opts.insecureRegistry ? { insecureRegistries: opts.insecureRegistry as string[] } : {}),
        ...(opts.timeout === undefined ? {} : { timeoutMs: (opts.timeout as number) * 1000 }),
        ...(opts.creds ? { creds: opts.creds as string } : {}),
        ...(opts.catalogPolicy ? { catalogPolicy: opts.catalogPolicy as "any" | "signed" } : {}),
        ...(opts.trust ? { trust: opts.trust as string[] } : {}),
        ...(opts.keep === undefined ? {} : { keep: opts.keep as number }),
      });
      if (opts.json) return printJson(result);
      if (result.steps.length === 0)
        return print("nothing to do: the node already matches the file");
      if (!result.changed && !result.dryRun)
        return print(
          [
            "nothing to do: the node already matches the file",
            ...result.steps.map((s) => `  ${s.description}`),
          ].join("\n"),
        );
      const head = result.dryRun ? "plan:" : "done:";
      print([head, ...result.steps.map((s, i) => `  ${i + 1}. ${s.description}`)].join("\n"));
    });
}
