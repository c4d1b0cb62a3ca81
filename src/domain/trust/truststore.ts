// The certificates a node trusts for root hash signatures: `*.crt` in the verity.d directories
// systemd's userspace check reads (under the root), plus files or directories given with --trust.
// A node certificate counts only when root owns it and its directory and no one else can write
// them (util/owned-state.ts): one planted by another user would let that user sign images.
import { X509Certificate } from "node:crypto";
import { readdir, stat } from "node:fs/promises";
import path from "node:path";
import type { Context } from "../../util/context.js";
import { errnoCode } from "../../util/errors.js";
import { readBounded } from "../../util/bounded-read.js";
import { dirDistrust, distrustOf } from "../../util/owned-state.js";
import { describeCertificate, type TrustedCertificate } from "./signature.js";

/** In systemd's order: a file name in an earlier directory masks the same name in later ones. */
export const VERITY_TRUST_DIRS = [
  "/etc/verity.d",
  "/run/verity.d",
  "/usr/local/lib/verity.d",
  "/usr/lib/verity.d",
] as const;

const MAX_CERT_FILE = 1024 * 1024;
const MAX_FILES_PER_DIR = 4096;

export interface TrustStore {
  certificates: TrustedCertificate[];
  /** Files that could not be read as certificates, with the reason. */
  warnings: string[];
}

/** Every certificate in a PEM (several allowed) or DER buffer. */
export function certificatesIn(bytes: Buffer): Buffer[] {
  const text = bytes.toString("latin1");
  if (text.includes("-----BEGIN CERTIFICATE-----")) {
    const blocks =
      text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
    return blocks.map((b) => new X509Certificate(b).raw);
  }
  return [new X509Certificate(bytes).raw];
}

/**
 * `noFollow`: the path was resolved inside the root, so a symlink left in it is refused.
 * `distrusted`: given for a node certificate, which is skipped (and told there) unless root
 * owns it and no one else can write it.
 */
async function readCertFile(
  file: string,
  warnings: string[],
  noFollow = false,
  distrusted?: (why: string) => void,
): Promise<TrustedCertificate[]> {
  let bytes: Buffer;
  let why: string | undefined;
  try {
    bytes = await readBounded(file, {
      cap: MAX_CERT_FILE,
      noFollow,
      what: "a certificate",
      ...(distrusted ? { inspect: (st) => (why = distrustOf(st)) } : {}),
    });
  } catch (e) {
    warnings.push(`${file}: skipped, ${(e as Error).message}`);
    return [];
  }
  if (why !== undefined && distrusted) {
    warnings.push(`${file}: skipped, ${why}`);
    distrusted(`not trusting the certificate ${file}: ${why}`);
    return [];
  }
  try {
    const ders = certificatesIn(bytes);
    return ders.map((der) => ({ ...describeCertificate(der), der, source: file }));
  } catch (e) {
    warnings.push(`${file}: skipped, not a PEM or DER certificate (${(e as Error).message})`);
    return [];
  }
}

async function listDir(dir: string, accept: (name: string) => boolean): Promise<string[]> {
  try {
    const names = (await readdir(dir)).filter(accept).sort();
    return names.slice(0, MAX_FILES_PER_DIR);
  } catch (e) {
    if (errnoCode(e) === "ENOENT" || errnoCode(e) === "ENOTDIR") return [];
    throw e;
  }
}

/**
 * Loads the node's trust store and the extra `--trust` paths (host paths, not under the
 * root: they are what the operator points at). Duplicates by fingerprint are dropped.
 */
export async function loadTrustStore(
  ctx: Context,
  extra: readonly string[] = [],
): Promise<TrustStore> {
  const warnings: string[] = [];
  const found: TrustedCertificate[] = [];
  const seenNames = new Set<string>();
  for (const dir of VERITY_TRUST_DIRS) {
    const hostDir = await ctx.root.readPath(dir);
    const names = await listDir(hostDir, (n) => n.endsWith(".crt"));
    const dirWhy = names.length > 0 ? await dirDistrust(hostDir) : undefined;
    for (const name of names) {
      if (seenNames.has(name)) continue;
      seenNames.add(name);
      // Each file is resolved inside the root: a link to /etc/shadow reads ROOT/etc/shadow.
      const file = await ctx.root.readPath(`${dir}/${name}`);
      if (dirWhy !== undefined) {
        warnings.push(`${file}: skipped, ${hostDir}: ${dirWhy}`);
        ctx.log.warn(`not trusting the certificate ${file}: its directory ${dirWhy}`);
        continue;
      }
      found.push(
        ...(await readCertFile(file, warnings, !ctx.root.isHostRoot, (m) => ctx.log.warn(m))),
      );
    }
  }
  for (const item of extra) {
    let isDir = false;
    try {
      isDir = (await stat(item)).isDirectory();
    } catch {
      warnings.push(`${item}: skipped, no such file or directory`);
      continue;
    }
    const files = isDir
      ? (await listDir(item, (n) => /\.(crt|pem|der|cer)$/.test(n))).map((n) => path.join(item, n))
      : [item];
    for (const file of files) found.push(...(await readCertFile(file, warnings)));
  }
  const byFingerprint = new Map<string, TrustedCertificate>();
  for (const cert of found)
    if (!byFingerprint.has(cert.fingerprint)) byFingerprint.set(cert.fingerprint, cert);
  for (const w of warnings) ctx.log.debug(`trust store: ${w}`);
  return { certificates: [...byFingerprint.values()], warnings };
}
