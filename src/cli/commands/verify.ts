// `extctl verify IMAGE`: dm-verity, root hash and signature checks of one image; the exit code
// names the outcome (0 ok, 10 no verity, 11 unsigned, 12 untrusted signer, 13 bad signature,
// 14 root hash mismatch, 15 corrupted data block, 16 corrupted hash block, 17 ambiguous).
import type { Command } from "commander";
import type { VerifyResult } from "../../operations/verify.js";
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
import { print, printJson } from "../render.js";

function renderVerify(r: VerifyResult): string {
  const lines = [`${r.outcome === "ok" ? "OK" : r.outcome.toUpperCase()}: ${r.message}`];
  lines.push(`  image:        ${r.image} (${r.kind}, ${r.designator})`);
  if (r.verity) {
    const sb = r.verity.superblock;
    lines.push(
      `  verity:       ${r.verity.hashSource}, ${sb.algorithm}, ${sb.dataBlocks} blocks of ${sb.dataBlockSize}, hash blocks ${sb.hashBlockSize}, uuid ${sb.uuid}`,
    );
    lines.push(
      `  root hash:    ${r.verity.rootHash ?? r.verity.treeRootHash}${r.verity.rootHashSource ? ` (from ${r.verity.rootHashSource})` : " (from the tree only)"}`,
    );
    lines.push(`  data checked: ${r.verity.fullyChecked ? "every block" : "no (use --full)"}`);
  }
  const signer = r.signature?.signer ?? r.signature?.embeddedSigner;
  if (signer) {
    lines.push(`  signer:       ${signer.subject} (SHA-256 ${signer.fingerprint})`);
    lines.push(`  valid:        ${signer.notBefore} to ${signer.notAfter}`);
    lines.push(
      `  trusted:      ${r.signature?.signer ? `yes (${r.signature.signer.source})` : "no"}`,
    );
  }
  if (r.policy)
    lines.push(
      `  policy:       ${r.policy.name} (${r.policy.text}): ${r.policy.allowed ? "allowed" : "refused"}`,
    );
  return lines.join("\n");
}

const VERIFY_FLAGS = {
  full: boolFlag("--full", "hash every data block (worker threads, progress bar)"),
  trust: listFlag(
    "--trust <file-or-dir>",
    "also trust this certificate file or directory (repeatable)",
    [],
  ),
  policy: textFlag(
    "--policy <policy>",
    "signed, verity, any or a systemd image policy: exit 0 when it accepts the image",
  ),
  json: jsonFlag(),
} as const satisfies FlagSpec;

export function registerVerifyCommand(program: Command): void {
  addFlags(
    program
      .command("verify")
      .description(
        "check an image's dm-verity superblock, root hash and signature against the trusted certificates (--full: every data block). Exit codes: 0 ok, 10 no verity, 11 unsigned, 12 untrusted signer, 13 bad signature, 14 root hash mismatch, 15 corrupted data block, 16 corrupted hash block, 17 ambiguous (systemd could mount other data than what was checked)",
      )
      .argument(
        "<image>",
        "the image file (.raw DDI, or a bare image with .verity/.roothash/.roothash.p7s sidecars)",
      ),
    VERIFY_FLAGS,
  ).action(async (image: string, _opts: unknown, command: Command) => {
    const opts = flagsOf(command, VERIFY_FLAGS);
    const { verifyImage } = await import("../../operations/verify.js");
    const result = await verifyImage(
      contextFor(command),
      defined({
        image,
        full: opts.full ?? false,
        trust: opts.trust,
        policy: opts.policy,
      }),
    );
    if (opts.json) printJson(result);
    else print(renderVerify(result));
    process.exitCode = result.exitCode;
  });
}
