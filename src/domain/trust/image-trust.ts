// What protects one extension image and whether it holds: finds its verity data (DDI partitions
// or a bare image's sidecars), checks superblock, root hash, signature and, when asked, every
// block; then judges it against an image policy for enable and boot.
import { readBounded } from "../../util/bounded-read.js";
import type { Context } from "../../util/context.js";
import { FileSource, readExactly, type ByteSource } from "../../util/bytes.js";
import { ExtctlError, errnoCode, fsError, isExtctlError } from "../../util/errors.js";
import type { Progress } from "../../util/progress.js";
import { dissectImage, type DissectedImage } from "../image/ddi.js";
import { policyAllows, type ImagePolicy, type Protection } from "./policy.js";
import {
  parseSignaturePartition,
  verifyRootHashSignature,
  type CertificateInfo,
  type TrustedCertificate,
} from "./signature.js";
import type { TrustStore } from "./truststore.js";
import { checkVerityTree } from "./verity-tree.js";
import {
  hasVerityMagic,
  parseVeritySuperblock,
  VERITY_SUPERBLOCK_SIZE,
  type VeritySuperblock,
} from "./verity-superblock.js";
import { dissectingSystemd } from "../image/host.js";
import { ReadAheadFileSource } from "../image/read-ahead.js";

export type TrustOutcome =
  | "ok"
  | "no-verity"
  | "unsigned"
  | "untrusted-signer"
  | "bad-signature"
  | "roothash-mismatch"
  | "corrupted-block"
  | "corrupted-hash-block"
  | "ambiguous";

/** `extctl verify` exit codes, one per outcome (1 and 2 stay for errors and usage). */
export const OUTCOME_EXIT_CODES: Readonly<Record<TrustOutcome, number>> = {
  ok: 0,
  "no-verity": 10,
  unsigned: 11,
  "untrusted-signer": 12,
  "bad-signature": 13,
  "roothash-mismatch": 14,
  "corrupted-block": 15,
  "corrupted-hash-block": 16,
  ambiguous: 17,
};

export interface ImageTrust {
  /** Host path of the image. */
  image: string;
  outcome: TrustOutcome;
  /** One sentence: what was found and, when not ok, why. */
  message: string;
  kind: DissectedImage["kind"];
  designator: "root" | "usr";
  /** Where the verity hash area came from: "partition", a sidecar path, or none. */
  verity?: {
    hashSource: string;
    superblock: Omit<VeritySuperblock, "salt"> & { salt: string };
    /** The root hash the tree must have, and where it came from. */
    rootHash?: string;
    rootHashSource?: string;
    /** The root hash of the tree on disk (from its top block). */
    treeRootHash: string;
    fullyChecked: boolean;
  };
  signature?: {
    source: string;
    signer?: TrustedCertificate;
    embeddedSigner?: CertificateInfo;
  };
  corruptedBlock?: number;
  /** The protection systemd would see: what the policy is judged on. */
  protection: Protection;
  /**
   * Why what extctl checked may not be what systemd mounts (the dissection's ambiguities, and
   * sidecars systemd is not shown). Any makes the outcome "ambiguous" and is refused under a
   * policy that requires verity or a signature.
   */
  findings: string[];
}

export interface CheckImageOptions {
  full?: boolean;
  progress?: Progress;
}

/** Reads a sidecar beside a bare image (systemd strips ".raw" first), or undefined if absent. */
async function sidecar(
  imagePath: string,
  suffix: string,
  maxBytes: number,
): Promise<Buffer | undefined> {
  const base = imagePath.endsWith(".raw") ? imagePath.slice(0, -4) : imagePath;
  const file = base + suffix;
  try {
    // A sidecar is untrusted input: a regular file of bounded size, never a FIFO or a device.
    return await readBounded(file, { cap: maxBytes, what: `the ${suffix} sidecar` });
  } catch (e) {
    if (errnoCode(e) === "ENOENT") return undefined;
    if (e instanceof ExtctlError) throw e;
    throw fsError(e, `read ${file}`);
  }
}

export function sidecarPath(imagePath: string, suffix: string): string {
  return (imagePath.endsWith(".raw") ? imagePath.slice(0, -4) : imagePath) + suffix;
}

/**
 * The xattr user.verity.roothash. Node has no xattr API, so this asks `getfattr` (package
 * attr) when it is installed; without it the xattr is not seen.
 */
async function rootHashXattr(ctx: Context, imagePath: string): Promise<string | undefined> {
  try {
    const r = await ctx.runner.run(
      "getfattr",
      ["--only-values", "-n", "user.verity.roothash", "--", imagePath],
      {
        timeoutMs: 10_000,
      },
    );
    const value = r.stdout.trim();
    return r.exitCode === 0 && /^[0-9a-fA-F]{32,128}$/.test(value)
      ? value.toLowerCase()
      : undefined;
  } catch {
    return undefined;
  }
}

function hexRootHash(text: string, file: string): string {
  const value = text.trim();
  if (!/^([0-9a-fA-F]{2}){16,64}$/.test(value)) {
    throw new ExtctlError("verity", `${file} does not hold a root hash in hex`);
  }
  return value.toLowerCase();
}

/**
 * Checks one image. Structural problems (not an image, truncated hash area) throw an
 * ExtctlError; every trust verdict is an outcome in the result.
 */
export async function checkImageTrust(
  ctx: Context,
  imagePath: string,
  trust: TrustStore,
  options: CheckImageOptions = {},
): Promise<ImageTrust> {
  let file: FileSource | ReadAheadFileSource;
  try {
    // Without --full the check reads a few KiB of metadata (GPT, signature, superblock, the top
    // of the tree), from the page cache: synchronous chunked reads spare each its thread-pool
    // round trip. A full check streams the whole image, which must not block the event loop.
    file = options.full ? await FileSource.open(imagePath) : ReadAheadFileSource.open(imagePath);
  } catch (e) {
    throw fsError(e, `open the image ${imagePath}`);
  }
  try {
    const found = await checkOpenImage(ctx, imagePath, file, trust, options);
    return withFindings(found);
  } finally {
    await file.close();
  }
}

/** An image with findings is "ambiguous": the check did not cover what systemd mounts. */
function withFindings(t: ImageTrust): ImageTrust {
  if (t.findings.length === 0) return t;
  return {
    ...t,
    // A hard failure (corruption, bad signature...) keeps its own code; a pass does not stand.
    outcome: t.outcome === "ok" || t.outcome === "unsigned" ? "ambiguous" : t.outcome,
    message: `${t.message}; but ${t.findings.join("; ")}`,
    protection: "unprotected",
  };
}

async function checkOpenImage(
  ctx: Context,
  imagePath: string,
  file: ByteSource,
  trust: TrustStore,
  options: CheckImageOptions,
): Promise<ImageTrust> {
  const image = await dissectImage(file, { systemd: await dissectingSystemd(ctx.root) });
  const designator = image.designator ?? "root";
  const findings = [...image.ambiguities];
  const base = { image: imagePath, kind: image.kind, designator, findings };

  // Find the hash area, the expected root hash and the signature.
  let hashArea: ByteSource | undefined;
  let hashSource = "";
  let sidecarHandle: FileSource | undefined;
  let rootHash: string | undefined;
  let rootHashSource: string | undefined;
  let signatureDer: Buffer | undefined;
  let signatureSource = "";
  const what = imagePath;
  if (image.verity) {
    hashArea = image.verity.source;
    hashSource = "partition";
    if (image.signature) {
      const bytes = await readExactly(
        image.signature.source,
        0,
        Math.min(image.signature.size, 4 * 1024 * 1024 + 1),
        "the signature partition",
      );
      const parsed = parseSignaturePartition(bytes, what);
      rootHash = parsed.rootHash;
      rootHashSource = "signature partition";
      signatureDer = parsed.signature;
      signatureSource = "signature partition";
      if (
        image.rootHashFromUuids &&
        image.rootHashFromUuids.length === rootHash.length &&
        image.rootHashFromUuids !== rootHash
      ) {
        return {
          ...base,
          outcome: "roothash-mismatch",
          message: `${what}: the signature's root hash ${rootHash} does not match the partition UUIDs (${image.rootHashFromUuids})`,
          protection: "verity",
        };
      }
    } else if (image.rootHashFromUuids) {
      rootHash = image.rootHashFromUuids;
      rootHashSource = "partition UUIDs";
    }
  } else if (image.kind === "bare-fs" && ctx.env.SYSTEMD_DISSECT_VERITY_SIDECAR !== "0") {
    const hashPath = sidecarPath(imagePath, ".verity");
    try {
      sidecarHandle = await FileSource.open(hashPath);
      hashArea = sidecarHandle;
      hashSource = hashPath;
    } catch (e) {
      if (errnoCode(e) !== "ENOENT") throw fsError(e, `open ${hashPath}`);
    }
    if (hashArea) {
      // systemd-sysext/confext are shown /run/extensions/NAME.raw (a symlink) and look for
      // NAME.verity next to that path (verity_settings_load on the image path); extctl links
      // only the image, so systemd mounts the bare data without verity.
      findings.push(
        `systemd is shown only the image through /run/extensions and never sets up verity from ${hashPath}; it mounts the bare data unchecked`,
      );
      const text = await sidecar(imagePath, ".roothash", 1024);
      if (text) {
        rootHash = hexRootHash(text.toString("latin1"), sidecarPath(imagePath, ".roothash"));
        rootHashSource = sidecarPath(imagePath, ".roothash");
      } else {
        const x = await rootHashXattr(ctx, imagePath);
        if (x) {
          rootHash = x;
          rootHashSource = "xattr user.verity.roothash";
        }
      }
      signatureDer = await sidecar(imagePath, ".roothash.p7s", 1024 * 1024);
      signatureSource = sidecarPath(imagePath, ".roothash.p7s");
    }
  }
  try {
    if (!hashArea) {
      return {
        ...base,
        outcome: "no-verity",
        message: `${what} has no dm-verity data (no verity partition${image.kind === "bare-fs" ? ` and no ${sidecarPath(imagePath, ".verity")}` : ""})`,
        protection: "unprotected",
      };
    }
    const head = await readExactly(
      hashArea,
      0,
      VERITY_SUPERBLOCK_SIZE,
      `the verity hash area of ${what}`,
    );
    if (!hasVerityMagic(head)) {
      throw new ExtctlError(
        "verity",
        `${what}: the verity hash area (${hashSource}) has no superblock`,
        {
          hint: "systemd needs a superblock; format it with `veritysetup format` without --no-superblock",
        },
      );
    }
    const sb = parseVeritySuperblock(head, what);
    // The data partition or bare image; a sidecar-less DDI checks its data partition.
    const data = image.data.source;
    const tree = await checkVerityTree(data, hashArea, sb, rootHash ?? "0".repeat(64), {
      full: false,
    });
    const treeRootHash = tree.ok
      ? tree.rootHash
      : tree.reason === "roothash-mismatch"
        ? tree.rootHash
        : "";
    const verity: NonNullable<ImageTrust["verity"]> = {
      hashSource,
      superblock: { ...sb, salt: sb.salt.toString("hex") },
      treeRootHash,
      fullyChecked: false,
      ...(rootHash ? { rootHash, rootHashSource: rootHashSource as string } : {}),
    };
    const withVerity = { ...base, verity };
    if (rootHash !== undefined && treeRootHash !== rootHash) {
      return {
        ...withVerity,
        outcome: "roothash-mismatch",
        message: `${what}: the hash tree's root hash ${treeRootHash} differs from the ${rootHashSource}'s ${rootHash}`,
        protection: "unprotected",
      };
    }
    const anchored = rootHash ?? treeRootHash;

    let result: ImageTrust;
    if (!signatureDer) {
      result = {
        ...withVerity,
        outcome: "unsigned",
        message: `${what} has dm-verity (root hash ${anchored}) but no signature`,
        protection: "verity",
      };
    } else {
      const check = await verifyRootHashSignature(anchored, signatureDer, trust.certificates, what);
      if (check.ok) {
        result = {
          ...withVerity,
          outcome: "ok",
          message: `${what} is signed by "${check.signer.subject}" (SHA-256 ${check.signer.fingerprint}, ${check.signer.source}, valid ${check.signer.notBefore} to ${check.signer.notAfter})`,
          signature: { source: signatureSource, signer: check.signer },
          protection: "signed",
        };
      } else {
        result = {
          ...withVerity,
          outcome: check.reason,
          message: check.message,
          signature: {
            source: signatureSource,
            ...(check.signer ? { signer: check.signer } : {}),
            ...(check.embeddedSigner ? { embeddedSigner: check.embeddedSigner } : {}),
          },
          protection: "verity",
        };
        if (check.reason === "bad-signature") return result;
      }
    }
    if (options.full) {
      options.progress?.setTotal(sb.dataBlocks * sb.dataBlockSize);
      const full = await checkVerityTree(data, hashArea, sb, anchored, {
        full: true,
        ...(options.progress ? { progress: options.progress } : {}),
      });
      verity.fullyChecked = true;
      if (!full.ok) {
        const outcome = full.reason;
        return {
          ...result,
          outcome,
          message: `${what}: ${full.message}`,
          protection: "unprotected",
          ...(full.reason === "corrupted-block" ? { corruptedBlock: full.block } : {}),
        };
      }
    }
    return result;
  } finally {
    await sidecarHandle?.close();
  }
}

export interface ImageEvaluation {
  ok: boolean;
  outcome: TrustOutcome | "error";
  /** Why it is refused, or what made it acceptable. */
  reason: string;
  trust?: ImageTrust;
}

/**
 * Judges one image against `policy` for enable and boot. Never throws for a bad image: a
 * broken or unreadable one is `{ ok: false, outcome: "error" }`, so callers can go on with the
 * others.
 */
export async function evaluateImage(
  ctx: Context,
  hostPath: string,
  policy: ImagePolicy,
  trustStore: TrustStore,
  options: CheckImageOptions = {},
): Promise<ImageEvaluation> {
  let trust: ImageTrust;
  try {
    trust = await checkImageTrust(ctx, hostPath, trustStore, options);
  } catch (e) {
    if (!isExtctlError(e)) throw e;
    if (policy.name === "any" || policy.root.has("unprotected")) {
      // systemd would not look at verity at all under an open policy; only readability counts.
      return { ok: true, outcome: "error", reason: `not checked: ${e.message}` };
    }
    return { ok: false, outcome: "error", reason: e.message };
  }
  const allowed = policyAllows(policy, trust.designator, trust.protection);
  if (allowed) {
    return { ok: true, outcome: trust.outcome, reason: trust.message, trust };
  }
  const needs = policy.name === "custom" ? `policy ${policy.text}` : `policy "${policy.name}"`;
  return {
    ok: false,
    outcome: trust.outcome,
    reason: `${trust.message}; the ${needs} refuses it`,
    trust,
  };
}
