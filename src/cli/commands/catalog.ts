// `extctl catalog sign|verify`: make and check the detached signature (FILE.p7s) of an extension
// catalog, the one `install NAME` and `upgrade` check with --catalog-policy signed.
import type { Command } from "commander";
import { collect, contextFor } from "../options.js";
import { print, printJson } from "../render.js";

export function registerCatalogCommand(program: Command): void {
  const catalog = program
    .command("catalog")
    .description("sign and verify extension catalogs (releases.json)");
  catalog
    .command("sign")
    .description("write a detached PKCS#7 signature (DER) over a catalog file's bytes")
    .argument("<file>", "the catalog (JSON)")
    .requiredOption("--key <file>", "the signing key (PEM: RSA, EC or Ed25519)")
    .requiredOption("--cert <file>", "the signer's certificate (PEM)")
    .option("--output <file>", "where to write the signature (default FILE.p7s)")
    .option("--json", "print the result as JSON")
    .action(
      async (
        file: string,
        opts: { key: string; cert: string; output?: string; json?: boolean },
        command: Command,
      ) => {
        const { signCatalog } = await import("../../operations/catalog.js");
        const result = await signCatalog(contextFor(command), {
          file,
          key: opts.key,
          cert: opts.cert,
          ...(opts.output === undefined ? {} : { output: opts.output }),
        });
        if (opts.json) printJson(result);
        else print(`Signed ${result.file} as "${result.signer.subject}": ${result.signature}`);
      },
    );
  catalog
    .command("verify")
    .description(
      "check a catalog file against its signature (FILE.p7s) and the trusted certificates (verity.d under the root, --trust)",
    )
    .argument("<file>", "the catalog (JSON)")
    .option("--signature <file>", "the signature (default FILE.p7s)")
    .option(
      "--trust <file-or-dir>",
      "also trust this certificate file or directory (repeatable)",
      collect,
      [],
    )
    .option("--json", "print the result as JSON")
    .action(
      async (
        file: string,
        opts: { signature?: string; trust: string[]; json?: boolean },
        command: Command,
      ) => {
        const { verifyCatalog } = await import("../../operations/catalog.js");
        const result = await verifyCatalog(contextFor(command), {
          file,
          trust: opts.trust,
          ...(opts.signature === undefined ? {} : { signature: opts.signature }),
        });
        if (opts.json) printJson(result);
        else
          print(
            `OK: ${result.file} (${result.layers} extensions) is signed by "${result.signer.subject}" (SHA-256 ${result.signer.fingerprint}, trusted from ${result.signer.source})`,
          );
      },
    );
}
