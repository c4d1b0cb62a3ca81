// The one-line facts `list` shows per image (version, format, signed, compatible), read from
// metadata only and never throwing for a bad image: a broken image is "not compatible, because".
import { existsSync } from "node:fs";
import path from "node:path";
import type { Context } from "../../util/context.js";
import { isExtctlError } from "../../util/errors.js";
import type { ExtensionKind } from "../store/layout.js";
import { checkCompatibility, rulesFor, type HostFacts } from "./compat.js";
import { dissectingSystemd, hostFacts } from "./host.js";
import { formatName, imageFacts, openImage, sidecarPaths } from "./image.js";
import type { ReleaseFields } from "./os-release.js";
import { chooseLinkName } from "./link-name.js";

export interface ImageSummary {
  version?: string;
  format: string;
  signed: boolean;
  compatible: boolean;
  reason?: string;
  release?: ReleaseFields;
  /** The name extctl links it under in /run so that this systemd finds its release file. */
  linkName?: string;
}

export interface SummaryOptions {
  /** systemd version whose rules apply; default: the root's, else the newest. */
  systemd?: number;
  /** Host facts to reuse across many images. */
  host?: HostFacts;
}

const hostCache = new Map<string, Promise<{ host: HostFacts; systemd: number }>>();

async function hostFor(ctx: Context): Promise<{ host: HostFacts; systemd: number }> {
  let cached = hostCache.get(ctx.root.dir);
  if (!cached) {
    cached = (async () => ({
      host: await hostFacts(ctx.root, ctx.env),
      systemd: await dissectingSystemd(ctx.root),
    }))();
    hostCache.set(ctx.root.dir, cached);
  }
  return cached;
}

/**
 * Everything outside the image that a summary depends on (the systemd version whose rules
 * apply, the root's os-release, architecture and scope), as one string: a cached summary made
 * under another string is stale.
 */
export async function summaryHostKey(ctx: Context): Promise<string> {
  const { host, systemd } = await hostFor(ctx);
  return JSON.stringify({ systemd, dissecting: await dissectingSystemd(ctx.root), host });
}

/** A summary and how it came to say "signed", for the store's summary cache. */
export interface SummaryDetail {
  summary: ImageSummary;
  /** The image itself holds a signature partition. */
  signaturePartition: boolean;
  /** A .roothash.p7s beside the image would make it signed (bare or single-partition images). */
  sidecarCounts: boolean;
}

export async function summarizeImage(
  ctx: Context,
  hostPath: string,
  kind: ExtensionKind,
  options: SummaryOptions = {},
): Promise<ImageSummary> {
  return (await summarizeImageDetail(ctx, hostPath, kind, options)).summary;
}

/** summarizeImage, with what the summary cache needs to redo the sidecar check on its own. */
export async function summarizeImageDetail(
  ctx: Context,
  hostPath: string,
  kind: ExtensionKind,
  options: SummaryOptions = {},
): Promise<SummaryDetail> {
  const failed = (summary: ImageSummary): SummaryDetail => ({
    summary,
    signaturePartition: false,
    sidecarCounts: false,
  });
  let image;
  try {
    image = await openImage(hostPath, { systemd: await dissectingSystemd(ctx.root) });
  } catch (e) {
    if (!isExtctlError(e)) throw e;
    ctx.log.debug(`${hostPath}: ${e.message}`);
    return failed({ format: "unknown", signed: false, compatible: false, reason: e.message });
  }
  try {
    const defaults = await hostFor(ctx);
    const host = options.host ?? defaults.host;
    const systemd = rulesFor(options.systemd ?? defaults.systemd);
    const choice = await chooseLinkName(image.fs, path.basename(hostPath), kind, systemd);
    const facts = await imageFacts(image, kind, systemd, choice.ok ? choice.linkName : undefined);
    const verdict = checkCompatibility(facts, host, kind, systemd);
    const release = "fields" in facts.release ? facts.release.fields : undefined;
    const upper = kind === "confext" ? "CONFEXT" : "SYSEXT";
    const version = release?.[`${upper}_VERSION_ID`] ?? release?.VERSION_ID;
    // A synchronous stat: an ENOENT from fs.promises costs an Error per unsigned image.
    const signaturePartition = image.dissected.signature !== undefined;
    const sidecarCounts = image.dissected.kind !== "ddi";
    const signed =
      signaturePartition || (sidecarCounts && existsSync(sidecarPaths(hostPath).signature));
    return {
      summary: {
        ...(version !== undefined ? { version } : {}),
        format: formatName(image.dissected),
        signed,
        compatible: verdict.compatible,
        ...(verdict.reason ? { reason: verdict.reason } : {}),
        ...(release ? { release } : {}),
        ...(choice.ok && choice.linkName !== path.basename(hostPath)
          ? { linkName: choice.linkName }
          : {}),
      },
      signaturePartition,
      sidecarCounts,
    };
  } catch (e) {
    if (!isExtctlError(e)) throw e;
    return failed({
      format: formatName(image.dissected),
      signed: false,
      compatible: false,
      reason: e.message,
    });
  } finally {
    await image.close();
  }
}
