// `extctl apply FILE|-`: declarative extensions (alone or under `extensions:` of a Kairos
// cloud-config): plan with --dry-run, or apply; a second apply does nothing.
import type { Command } from "commander";
import { InvalidArgumentError } from "commander";
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
  refreshFlag,
  textFlag,
  TIMEOUT_FLAG,
  type FlagSpec,
} from "../options.js";
import { print, printJson } from "../render.js";

function parseKeep(v: string): number {
  const n = Number.parseInt(v, 10);
  if (!Number.isInteger(n) || n < 1 || String(n) !== v.trim())
    throw new InvalidArgumentError("must be a whole number of at least 1");
  return n;
}

const APPLY_FLAGS = {
  dryRun: boolFlag("--dry-run", "print the plan and change nothing"),
  refresh: refreshFlag("how to make systemd pick up changes for now: true entries"),
  caCert: listFlag("--ca-cert <file>", "also trust this CA (PEM) for https: and oci: (repeatable)"),
  insecureRegistry: listFlag(
    "--insecure-registry <host>",
    "oci: reach this registry over plain http (repeatable)",
  ),
  timeout: TIMEOUT_FLAG,
  creds: textFlag("--creds <user:pass>", "oci: registry credentials (catalog entries)"),
  catalogPolicy: choiceFlag(
    "--catalog-policy <policy>",
    "signed: refuse a catalog without a valid URL.p7s signature",
    ["any", "signed"],
  ),
  trust: listFlag(
    "--trust <cert>",
    "also trust this certificate for catalog and image signatures (repeatable)",
  ),
  keep: numberFlag(
    "--keep <n>",
    "versions to keep of each extension from the catalogs (default 3)",
    parseKeep,
  ),
  json: jsonFlag("print the plan or the steps done as JSON"),
} as const satisfies FlagSpec;

export function registerApplyCommand(program: Command): void {
  addFlags(
    program
      .command("apply")
      .description(
        "install, enable and prune extensions to match a YAML file (or a cloud-config's extensions:)",
      )
      .argument("<file>", "the YAML file, or - for stdin"),
    APPLY_FLAGS,
  ).action(async (file: string, _opts: unknown, command: Command) => {
    const opts = flagsOf(command, APPLY_FLAGS);
    const { apply } = await import("../../operations/apply.js");
    const result = await apply(
      contextFor(command),
      defined({
        file,
        dryRun: opts.dryRun,
        refresh: opts.refresh,
        caCerts: opts.caCert,
        insecureRegistries: opts.insecureRegistry,
        timeoutMs: millisecondsOf(opts.timeout),
        creds: opts.creds,
        catalogPolicy: opts.catalogPolicy,
        trust: opts.trust,
        keep: opts.keep,
      }),
    );
    if (opts.json) return printJson(result);
    if (result.steps.length === 0) return print("nothing to do: the node already matches the file");
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
