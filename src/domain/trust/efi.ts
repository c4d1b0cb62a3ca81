// Firmware keys as trust anchors on a trusted boot: the X.509 entries of the db EFI variable
// (EFI_SIGNATURE_LIST), and of KEK and PK only when asked, written as PEM files to /run/verity.d.
import path from "node:path";
import type { Context } from "../../util/context.js";
import { writeFileInRoot } from "../../util/atomic.js";
import { readBoundedOptional } from "../../util/bounded-read.js";
import { ExtctlError, fsError } from "../../util/errors.js";

export const EFI_GLOBAL_VARIABLE = "8be4df61-93ca-11d2-aa0d-00e098032b8c";
export const EFI_IMAGE_SECURITY_DATABASE = "d719b2cb-3d3a-4596-a3bc-dad00e67656f";
export const EFI_CERT_X509 = "a5c059a1-94e4-4aa7-87b5-ab155c2bf072";
export const EFI_CERT_SHA256 = "c1c41626-504c-4092-aca9-41f936934328";

/**
 * The variables that can be read, with the file prefix their certificates get. Only db signs what
 * boots (the kernel's .platform keyring holds db alone); PK and KEK authorise changes to db and
 * KEK, so trusting them is wider trust, taken only on request (EfiImportScope).
 */
export const EFI_KEY_VARIABLES = [
  { variable: "PK", guid: EFI_GLOBAL_VARIABLE, prefix: "PK" },
  { variable: "KEK", guid: EFI_GLOBAL_VARIABLE, prefix: "KEK" },
  { variable: "db", guid: EFI_IMAGE_SECURITY_DATABASE, prefix: "DB" },
] as const;

const MAX_ENTRIES = 4096;
const MAX_VARIABLE_SIZE = 4 * 1024 * 1024;

export interface EfiSignature {
  /** Type GUID of the list it came from. */
  type: string;
  owner: string;
  data: Buffer;
}

/** A GUID as EFI stores it (first three fields little-endian) in text form. */
export function formatGuid(raw: Buffer): string {
  const h = (b: Buffer) => b.toString("hex");
  const le = (b: Buffer) => h(Buffer.from(b).reverse());
  return `${le(raw.subarray(0, 4))}-${le(raw.subarray(4, 6))}-${le(raw.subarray(6, 8))}-${h(raw.subarray(8, 10))}-${h(raw.subarray(10, 16))}`;
}

/**
 * Parses concatenated EFI_SIGNATURE_LISTs (the variable's data, after the 4-byte attribute
 * word). Every size is checked against the bytes there are; `what` names the variable.
 */
export function parseSignatureLists(data: Buffer, what: string): EfiSignature[] {
  const fail = (why: string) =>
    new ExtctlError("format", `${what}: the EFI signature list is invalid: ${why}`, {
      hint: "check the firmware's key database; extctl reads only well-formed EFI_SIGNATURE_LISTs",
    });
  const out: EfiSignature[] = [];
  let at = 0;
  while (at < data.length) {
    if (data.length - at < 28) throw fail(`${data.length - at} stray bytes at offset ${at}`);
    const type = formatGuid(data.subarray(at, at + 16));
    const listSize = data.readUInt32LE(at + 16);
    const headerSize = data.readUInt32LE(at + 20);
    const signatureSize = data.readUInt32LE(at + 24);
    if (listSize < 28 || listSize > data.length - at)
      throw fail(`list size ${listSize} at offset ${at}`);
    if (signatureSize < 16) throw fail(`signature size ${signatureSize} at offset ${at}`);
    const body = listSize - 28 - headerSize;
    if (body < 0 || body % signatureSize !== 0) {
      throw fail(`list at offset ${at} does not hold whole signatures`);
    }
    for (let s = at + 28 + headerSize; s < at + listSize; s += signatureSize) {
      if (out.length >= MAX_ENTRIES) throw fail(`more than ${MAX_ENTRIES} entries`);
      out.push({
        type,
        owner: formatGuid(data.subarray(s, s + 16)),
        data: Buffer.from(data.subarray(s + 16, s + signatureSize)),
      });
    }
    at += listSize;
  }
  return out;
}

function toPem(der: Buffer): string {
  const lines = der.toString("base64").match(/.{1,64}/g) ?? [];
  return `-----BEGIN CERTIFICATE-----\n${lines.join("\n")}\n-----END CERTIFICATE-----\n`;
}

export interface ImportedKey {
  variable: string;
  /** Node path written. */
  path: string;
  owner: string;
}

export interface EfiImport {
  imported: ImportedKey[];
  /** Variables that were absent (no Secure Boot keys enrolled). */
  missing: string[];
  /** Entries that are not X.509 certificates (e.g. SHA-256 hashes in db), skipped. */
  skipped: number;
}

/** Which variables beyond db to import: each is wider trust than what the firmware boots. */
export interface EfiImportScope {
  includeKek?: boolean;
  includePk?: boolean;
}

/** The variables an import reads: db, plus KEK and PK when the scope names them. */
export function efiVariablesFor(scope: EfiImportScope = {}): string[] {
  return EFI_KEY_VARIABLES.filter(
    (k) =>
      k.variable === "db" ||
      (k.variable === "KEK" && scope.includeKek === true) ||
      (k.variable === "PK" && scope.includePk === true),
  ).map((k) => k.variable);
}

/**
 * Reads db (and KEK, PK when `scope` says so) from `efivarsDir` (a host path, default the root's
 * /sys/firmware/efi/efivars) and writes ROOT/run/verity.d/{DB,KEK,PK}N.crt, N counting from 0
 * in each variable.
 */
export async function importEfiKeys(
  ctx: Context,
  efivarsDir?: string,
  scope: EfiImportScope = {},
): Promise<EfiImport> {
  // The root's efivars are resolved inside it; a --efivars dir is the operator's own host path.
  const dir = efivarsDir ?? (await ctx.root.readPath("/sys/firmware/efi/efivars"));
  const noFollow = efivarsDir === undefined && !ctx.root.isHostRoot;
  const result: EfiImport = { imported: [], missing: [], skipped: 0 };
  const outDir = "/run/verity.d";
  const wanted = new Set(efiVariablesFor(scope));
  for (const key of EFI_KEY_VARIABLES) {
    if (!wanted.has(key.variable)) continue;
    const file = path.join(dir, `${key.variable}-${key.guid}`);
    // A device or FIFO in place of the variable, or one larger than any key database, is
    // refused before it is read whole.
    const raw = await readBoundedOptional(file, {
      cap: MAX_VARIABLE_SIZE,
      noFollow,
      what: "an EFI key database",
    });
    if (raw === undefined) {
      result.missing.push(key.variable);
      continue;
    }
    if (raw.length < 4) {
      result.missing.push(key.variable);
      continue;
    }
    const entries = parseSignatureLists(raw.subarray(4), file);
    let n = 0;
    for (const entry of entries) {
      if (entry.type !== EFI_CERT_X509) {
        result.skipped++;
        continue;
      }
      const nodePath = `${outDir}/${key.prefix}${n++}.crt`;
      try {
        await writeFileInRoot(ctx.root, nodePath, toPem(entry.data));
      } catch (e) {
        throw fsError(e, `write ${ctx.root.path(nodePath)}`);
      }
      result.imported.push({ variable: key.variable, path: nodePath, owner: entry.owner });
    }
  }
  return result;
}
