// The certificate authorities every TLS connection of extctl trusts (https: downloads, OCI
// registries, catalogs): the distribution's bundle (Node's bundled roots when there is none),
// NODE_EXTRA_CA_CERTS, and the user's --ca-cert files. One loader, so that a fleet's private CA
// installed on the node works for every scheme alike.
import { readFile } from "node:fs/promises";
import { rootCertificates } from "node:tls";
import { ExtctlError, errnoCode } from "../../util/errors.js";

const SYSTEM_CA_FILES = ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"];

/**
 * The distribution's bundle (Node's bundled roots when there is none) and the extra CAs.
 * Not both bundles: they hold the same Mozilla roots, and parsing each root twice cost ~20 ms
 * of every connection's TLS set-up.
 */
export async function trustedCAs(
  extra: readonly string[],
  env: NodeJS.ProcessEnv,
): Promise<string[]> {
  const cas: string[] = [];
  for (const file of SYSTEM_CA_FILES) {
    const pem = await readFile(file, "utf8").catch(() => undefined);
    if (pem) {
      cas.push(pem);
      break;
    }
  }
  if (cas.length === 0) cas.push(...rootCertificates);
  const files = [...extra];
  if (env.NODE_EXTRA_CA_CERTS) files.push(env.NODE_EXTRA_CA_CERTS);
  for (const file of files) {
    try {
      cas.push(await readFile(file, "utf8"));
    } catch (e) {
      throw new ExtctlError(
        "tls",
        `cannot read the CA certificate ${file}: ${errnoCode(e) ?? (e as Error).message}`,
        { hint: "give --ca-cert a readable PEM file" },
      );
    }
  }
  return cas;
}
