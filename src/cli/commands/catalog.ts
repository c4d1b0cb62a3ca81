// `extctl catalog sign|verify|publish`: make and check the detached signature (FILE.p7s) of an
// extension catalog (what --catalog-policy signed asks for), and push a catalog to a registry.
import type { Command } from "commander";
import {
  addFlags,
  contextFor,
  defined,
  millisecondsOf,
  flagsOf,
  jsonFlag,
  listFlag,
  mandatoryTextFlag,
  textFlag,
  TIMEOUT_FLAG,
  type FlagSpec,
} from "../options.js";
import { print, printJson } from "../render.js";

const SIGN_FLAGS = {
  key: mandatoryTextFlag("--key <file>", "the signing key (PEM: RSA, EC or Ed25519)"),
  cert: mandatoryTextFlag("--cert <file>", "the signer's certificate (PEM)"),
  output: textFlag("--output <file>", "where to write the signature (default FILE.p7s)"),
  json: jsonFlag(),
} as const satisfies FlagSpec;

const VERIFY_FLAGS = {
  signature: textFlag("--signature <file>", "the signature (default FILE.p7s)"),
  trust: listFlag(
    "--trust <file-or-dir>",
    "also trust this certificate file or directory (repeatable)",
    [],
  ),
  json: jsonFlag(),
} as const satisfies FlagSpec;

const PUBLISH_FLAGS = {
  signature: textFlag(
    "--signature <file>",
    "the signature to push with it (default FILE.p7s, if present)",
  ),
  creds: textFlag("--creds <user:pass>", "registry credentials"),
  caCert: listFlag("--ca-cert <file>", "trust this CA certificate (PEM) too; repeatable"),
  insecureRegistry: listFlag(
    "--insecure-registry <host>",
    "reach this registry over plain http; repeatable",
  ),
  timeout: TIMEOUT_FLAG,
  json: jsonFlag(),
} as const satisfies FlagSpec;

export function registerCatalogCommand(program: Command): void {
  const catalog = program
    .command("catalog")
    .description("sign and verify extension catalogs (releases.json)");
  addFlags(
    catalog
      .command("sign")
      .description("write a detached PKCS#7 signature (DER) over a catalog file's bytes")
      .argument("<file>", "the catalog (JSON)"),
    SIGN_FLAGS,
  ).action(async (file: string, _opts: unknown, command: Command) => {
    const opts = flagsOf(command, SIGN_FLAGS);
    const { signCatalog } = await import("../../operations/catalog.js");
    const result = await signCatalog(
      contextFor(command),
      defined({
        file,
        key: opts.key,
        cert: opts.cert,
        output: opts.output,
      }),
    );
    if (opts.json) printJson(result);
    else print(`Signed ${result.file} as "${result.signer.subject}": ${result.signature}`);
  });
  addFlags(
    catalog
      .command("verify")
      .description(
        "check a catalog file against its signature (FILE.p7s) and the trusted certificates (verity.d under the root, --trust)",
      )
      .argument("<file>", "the catalog (JSON)"),
    VERIFY_FLAGS,
  ).action(async (file: string, _opts: unknown, command: Command) => {
    const opts = flagsOf(command, VERIFY_FLAGS);
    const { verifyCatalog } = await import("../../operations/catalog.js");
    const result = await verifyCatalog(
      contextFor(command),
      defined({
        file,
        trust: opts.trust,
        signature: opts.signature,
      }),
    );
    if (opts.json) printJson(result);
    else
      print(
        `OK: ${result.file} (${result.layers} extensions) is signed by "${result.signer.subject}" (SHA-256 ${result.signer.fingerprint}, trusted from ${result.signer.source})`,
      );
  });
  addFlags(
    catalog
      .command("publish")
      .description(
        "push a catalog (and FILE.p7s when present) to an OCI registry, for oci:// catalog URLs",
      )
      .argument("<file>", "the catalog (JSON)")
      .argument("<reference>", "where to push it: oci://REGISTRY/REPOSITORY:TAG"),
    PUBLISH_FLAGS,
  ).action(async (file: string, reference: string, _opts: unknown, command: Command) => {
    const opts = flagsOf(command, PUBLISH_FLAGS);
    const { publishCatalog } = await import("../../operations/catalog.js");
    const result = await publishCatalog(
      contextFor(command),
      defined({
        file,
        reference,
        signature: opts.signature,
        creds: opts.creds,
        caCerts: opts.caCert,
        insecureRegistries: opts.insecureRegistry,
        timeoutMs: millisecondsOf(opts.timeout),
      }),
    );
    if (opts.json) printJson(result);
    else print(`${result.pinned}${result.signed ? " (signed)" : ""}`);
  });
}
