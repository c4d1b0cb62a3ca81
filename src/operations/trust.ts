// `extctl trust`: what the node trusts for image signatures (verity.d certificates) and the
// import of the firmware's Secure Boot keys into /run/verity.d, as immucore does at boot.
import type { Context } from "../util/context.js";
import { importEfiKeys, type EfiImport } from "../domain/trust/efi.js";
import { loadTrustStore, type TrustStore } from "../domain/trust/truststore.js";
import { resolvePolicy, type ResolvedPolicy } from "../domain/trust/policy.js";
import type { CertificateInfo } from "../domain/trust/signature.js";

export interface TrustListEntry extends CertificateInfo {
  /** Node path when under the root's verity.d, else the host path given with --trust. */
  path: string;
}

export interface TrustListResult {
  certificates: TrustListEntry[];
  warnings: string[];
  policy: { name: string; text: string; source: string };
}

export interface TrustListOptions {
  /** Certificate files or directories trusted besides the root's verity.d. */
  trust?: string[];
  /** A policy to show instead of the node's. */
  policy?: string;
  /** The kernel command line to read the node's policy from (default: the root's). */
  cmdlineFile?: string;
}

export async function listTrust(
  ctx: Context,
  options: TrustListOptions = {},
): Promise<TrustListResult> {
  const store: TrustStore = await loadTrustStore(ctx, options.trust ?? []);
  const resolved: ResolvedPolicy = await resolvePolicy(
    ctx,
    options.policy,
    options.cmdlineFile ? { cmdlineFile: options.cmdlineFile } : {},
  );
  return {
    certificates: store.certificates.map(({ der: _der, source, ...info }) => ({
      ...info,
      path: ctx.root.toNodePath(source) ?? source,
    })),
    warnings: store.warnings,
    policy: { name: resolved.policy.name, text: resolved.policy.text, source: resolved.source },
  };
}

export interface EfiImportOptions {
  /** The efivarfs directory (default: ROOT/sys/firmware/efi/efivars). */
  efivars?: string;
  /** Wider trust than the firmware's own: KEK and PK sign changes to db, not what boots. */
  includeKek?: boolean;
  includePk?: boolean;
}

export type EfiImportResult = EfiImport;

export async function importEfiTrust(
  ctx: Context,
  options: EfiImportOptions = {},
): Promise<EfiImportResult> {
  const result = await importEfiKeys(ctx, options.efivars, {
    includeKek: options.includeKek === true,
    includePk: options.includePk === true,
  });
  for (const k of result.imported) ctx.log.info(`imported ${k.variable} certificate to ${k.path}`);
  if (result.missing.length > 0)
    ctx.log.info(`no ${result.missing.join(", ")} variable found (Secure Boot keys not enrolled?)`);
  return result;
}
