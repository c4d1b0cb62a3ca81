// `extctl catalog sign|verify|publish`: detached PKCS#7 signatures over a catalog file's exact
// bytes as loadCatalogs checks them (FILE.p7s beside it), and catalogs pushed to a registry.
import path from "node:path";
import type { Context } from "../util/context.js";
import { ExtctlError, fsError } from "../util/errors.js";
import { readBounded, readBoundedOptional, READ_CAPS } from "../util/bounded-read.js";
import { writeFileAtomic } from "../util/atomic.js";
import {
  MAX_CATALOG_BYTES,
  MAX_CATALOG_SIGNATURE_BYTES,
  SIGNATURE_SUFFIX,
  parseCatalog,
} from "../domain/catalog/catalog.js";
import { CATALOG_SIGNATURE } from "../domain/catalog/fetch.js";
import { pushOciCatalog, type RegistryOptions } from "../domain/catalog/oci.js";
import { loadTrustStore } from "../domain/trust/truststore.js";
import {
  certificateDer,
  describeCertificate,
  signDetached,
  verifyDetachedSignature,
  type CertificateInfo,
} from "../domain/trust/signature.js";

async function readHostFile(file: string, cap: number, what: string): Promise<Buffer> {
  try {
    return await readBounded(file, { cap, what });
  } catch (e) {
    throw fsError(e, `read ${file} (${what})`);
  }
}

/**
 * Reads a catalog file and checks that it is one. A publisher (sign, publish) gets every bad
 * entry as an error, since nobody should ship one; a reader (verify) gets them as warnings, as
 * a node that loads the catalog does.
 */
async function readCatalogFile(
  file: string,
  onWarnings: "refuse" | ((warning: string) => void),
): Promise<{ bytes: Buffer; layers: number }> {
  const bytes = await readHostFile(file, MAX_CATALOG_BYTES, "a catalog");
  const catalog = parseCatalog(bytes, file);
  if (onWarnings === "refuse" && catalog.warnings.length > 0) {
    throw new ExtctlError(
      "catalog",
      `the catalog ${file} is invalid: ${catalog.warnings.join("; ")}`,
      {
        hint: "fix those entries before the catalog is signed or published",
      },
    );
  }
  if (onWarnings !== "refuse") for (const w of catalog.warnings) onWarnings(`${file}: ${w}`);
  return { bytes, layers: catalog.layers.length };
}

export interface CatalogSignResult {
  file: string;
  signature: string;
  signer: CertificateInfo;
}

export interface CatalogSignOptions {
  file: string;
  /** PEM private key and certificate of the signer. */
  key: string;
  cert: string;
  /** Where the signature goes (default FILE.p7s). */
  output?: string;
}

/** Signs the catalog FILE with KEY/CERT (PEM); writes FILE.p7s (or `output`), DER. */
export async function signCatalog(
  _ctx: Context,
  options: CatalogSignOptions,
): Promise<CatalogSignResult> {
  const { bytes } = await readCatalogFile(options.file, "refuse");
  const key = await readHostFile(options.key, READ_CAPS.certificate, "a private key");
  const cert = await readHostFile(options.cert, READ_CAPS.certificate, "a certificate");
  const { signature } = await signDetached(bytes, key, cert);
  const output = options.output ?? options.file + SIGNATURE_SUFFIX;
  try {
    await writeFileAtomic(output, signature);
  } catch (e) {
    throw fsError(e, `write ${output}`);
  }
  return {
    file: options.file,
    signature: output,
    signer: describeCertificate(certificateDer(cert)),
  };
}

export interface CatalogVerifyResult {
  file: string;
  signature: string;
  /** Extensions the catalog lists. */
  layers: number;
  signer: CertificateInfo & { source: string };
}

export interface CatalogVerifyOptions {
  file: string;
  /** The signature (default FILE.p7s). */
  signature?: string;
  /** Certificate files or directories trusted besides the root's verity.d. */
  trust?: string[];
}

/**
 * Checks the catalog FILE against its signature (FILE.p7s, or `signature`) and the trust store
 * (verity.d under the root, plus `trust`). A missing or failing signature is an error.
 */
export async function verifyCatalog(
  ctx: Context,
  options: CatalogVerifyOptions,
): Promise<CatalogVerifyResult> {
  const { bytes, layers } = await readCatalogFile(options.file, (w) => ctx.log.warn(w));
  const signatureFile = options.signature ?? options.file + SIGNATURE_SUFFIX;
  const der = await readBoundedOptional(signatureFile, {
    cap: MAX_CATALOG_SIGNATURE_BYTES,
    what: "a catalog signature",
  });
  if (der === undefined) {
    throw new ExtctlError(
      "untrusted",
      `the catalog ${options.file} has no signature ${signatureFile}`,
      {
        hint: CATALOG_SIGNATURE.hint,
      },
    );
  }
  const store = await loadTrustStore(ctx, options.trust ?? []);
  for (const w of store.warnings) ctx.log.warn(`trust store: ${w}`);
  const check = await verifyDetachedSignature(
    bytes,
    der,
    store.certificates,
    `the catalog ${options.file}`,
    CATALOG_SIGNATURE,
  );
  if (!check.ok) {
    throw new ExtctlError(
      check.reason === "untrusted-signer" ? "untrusted" : "signature",
      check.message,
      {
        hint:
          check.reason === "untrusted-signer"
            ? "trust the signer with --trust CERT, or put it in /etc/verity.d"
            : "the catalog or its signature was changed after signing",
      },
    );
  }
  const { der: _der, ...signer } = check.signer;
  return { file: options.file, signature: signatureFile, layers, signer };
}

export interface CatalogPublishResult {
  file: string;
  /** oci://registry/repo:tag@sha256:... */
  pinned: string;
  signed: boolean;
}

export interface CatalogPublishOptions extends RegistryOptions {
  file: string;
  /** oci://registry/repository:tag */
  reference: string;
  /** The signature pushed with it (default FILE.p7s when present). */
  signature?: string;
}

/**
 * Pushes the catalog FILE, with FILE.p7s when there is one (or `signature`), to an oci:
 * reference, as the artifact loadCatalogs reads from oci: URLs.
 */
export async function publishCatalog(
  ctx: Context,
  options: CatalogPublishOptions,
): Promise<CatalogPublishResult> {
  const { bytes } = await readCatalogFile(options.file, "refuse");
  const signatureFile = options.signature ?? options.file + SIGNATURE_SUFFIX;
  const signature = await readBoundedOptional(signatureFile, {
    cap: MAX_CATALOG_SIGNATURE_BYTES,
    what: "a catalog signature",
  });
  if (signature === undefined && options.signature !== undefined) {
    throw new ExtctlError("not-found", `the signature ${signatureFile} does not exist`);
  }
  const title = path.basename(options.file).endsWith(".json")
    ? path.basename(options.file)
    : "releases.json";
  const { pinned } = await pushOciCatalog(
    ctx,
    options.reference,
    { bytes, title, ...(signature ? { signature } : {}) },
    {
      ...(options.creds === undefined ? {} : { creds: options.creds }),
      ...(options.caCerts ? { caCerts: options.caCerts } : {}),
      ...(options.insecureRegistries ? { insecureRegistries: options.insecureRegistries } : {}),
      ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
    },
  );
  return { file: options.file, pinned, signed: signature !== undefined };
}
