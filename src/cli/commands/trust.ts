// `extctl trust list|import-efi`: the certificates image signatures are checked against, the
// policy in force, and the import of the firmware's Secure Boot keys.
import type { Command } from "commander";
import {
  addFlags,
  boolFlag,
  contextFor,
  defined,
  flagsOf,
  jsonFlag,
  listFlag,
  textFlag,
  type FlagSpec,
} from "../options.js";
import { print, printJson, renderTable } from "../render.js";
import { writeStderr } from "../../util/stdio.js";

const LIST_FLAGS = {
  trust: listFlag(
    "--trust <file-or-dir>",
    "also trust this certificate file or directory (repeatable)",
    [],
  ),
  policy: textFlag("--policy <policy>", "show this policy instead of the node's"),
  cmdline: textFlag(
    "--cmdline <file>",
    "read the kernel command line from this file (default: $SYSTEMD_PROC_CMDLINE, else ROOT/proc/cmdline)",
  ),
  json: jsonFlag("print as JSON"),
} as const satisfies FlagSpec;

const IMPORT_EFI_FLAGS = {
  efivars: textFlag(
    "--efivars <dir>",
    "efivarfs directory (default ROOT/sys/firmware/efi/efivars)",
  ),
  includeKek: boolFlag(
    "--include-kek",
    "also trust KEK certificates (wider trust: KEK authorises db changes, it signs nothing that boots)",
  ),
  includePk: boolFlag(
    "--include-pk",
    "also trust PK certificates (wider trust: the platform owner's key, it signs nothing that boots)",
  ),
  json: jsonFlag("print as JSON"),
} as const satisfies FlagSpec;

export function registerTrustCommand(program: Command): void {
  const trust = program.command("trust").description("trusted certificates for image signatures");
  addFlags(
    trust
      .command("list")
      .description(
        "list the trusted certificates (verity.d under the root, --trust) and the image policy in force",
      ),
    LIST_FLAGS,
  ).action(async (_opts: unknown, command: Command) => {
    const opts = flagsOf(command, LIST_FLAGS);
    const { listTrust } = await import("../../operations/trust.js");
    const result = await listTrust(
      contextFor(command),
      defined({
        trust: opts.trust,
        policy: opts.policy,
        cmdlineFile: opts.cmdline,
      }),
    );
    if (opts.json) {
      printJson(result);
      return;
    }
    print(
      renderTable(result.certificates, [
        { header: "SUBJECT", value: (c) => c.subject },
        { header: "FINGERPRINT (SHA-256)", value: (c) => c.fingerprint },
        { header: "NOT AFTER", value: (c) => c.notAfter.slice(0, 10) },
        { header: "FILE", value: (c) => c.path },
      ]),
    );
    print(`Policy: ${result.policy.name} (${result.policy.text}) from ${result.policy.source}`);
    for (const w of result.warnings) writeStderr(`warning: ${w}\n`);
  });
  addFlags(
    trust
      .command("import-efi")
      .description(
        "write the X.509 certificates of the db EFI variable (what Secure Boot trusts to boot) to ROOT/run/verity.d",
      ),
    IMPORT_EFI_FLAGS,
  ).action(async (_opts: unknown, command: Command) => {
    const opts = flagsOf(command, IMPORT_EFI_FLAGS);
    const { importEfiTrust } = await import("../../operations/trust.js");
    const result = await importEfiTrust(
      contextFor(command),
      defined({ efivars: opts.efivars, includeKek: opts.includeKek, includePk: opts.includePk }),
    );
    if (opts.json) printJson(result);
    else
      print(
        renderTable(result.imported, [
          { header: "VARIABLE", value: (k) => k.variable },
          { header: "FILE", value: (k) => k.path },
          { header: "OWNER", value: (k) => k.owner },
        ]),
      );
  });
}
