// Installing extension images from a registry: ORAS-style artifacts (one raw layer) and classic
// images (FROM scratch + COPY x.raw /) whose layers are applied in order, raw files only.
import { createHash } from "node:crypto";
import { lstat, open, rename, rm, type FileHandle } from "node:fs/promises";
import path from "node:path";
import type { Readable } from "node:stream";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { fsyncDir, tempPathBeside } from "../../../util/atomic.js";
import type { Context } from "../../../util/context.js";
import { ExtctlError, errnoCode, fsError } from "../../../util/errors.js";
import type { Progress } from "../../../util/progress.js";
import type { FetchRequest, FetchedImage } from "../types.js";
import { expansionError, sizeLimitError, storeRoom, type StoreRoom } from "../expansion.js";
import { checkIsImage } from "../image-check.js";
import { DEFAULT_STALL_TIMEOUT_MS } from "../stall-guard.js";
import { escapeText, shortName, quoteName, unsafeNameReason } from "../../store/names.js";
import { layerCompression, layerDecompressor } from "../../oci/layer.js";
import { FROM_REGISTRY, type Descriptor, type ImageManifest } from "../../oci/manifest.js";
import { hostPlatform, parsePlatform, type Platform } from "../../oci/platform.js";
import {
  formatReference,
  manifestSelector,
  parseReference,
  type Reference,
} from "../../oci/reference.js";
import { resolveImage, type ManifestStore, type ResolvedImage } from "../../oci/resolve.js";
import { hides, whiteoutOf } from "../../oci/whiteout.js";
import { TITLE_ANNOTATION, artifactKind, isPlainRawName } from "./artifact.js";
import type { RegistryClient } from "./client.js";
import { fromPullSources } from "./pull-sources.js";
import type { PullSource } from "./registries-conf.js";

const INSTALL_PLATFORM_HINT = "pick one of those with --platform os/arch[/variant]";

/** The image `ref` names on this registry, for the wanted platform. */
function resolveOnRegistry(
  client: RegistryClient,
  ref: Reference,
  wanted: Platform,
  platformHint = INSTALL_PLATFORM_HINT,
): Promise<ResolvedImage> {
  const store: ManifestStore = {
    origin: FROM_REGISTRY,
    manifest: (target) => client.getManifest(typeof target === "string" ? target : target.digest),
  };
  return resolveImage(store, manifestSelector(ref), wanted, {
    name: formatReference(ref),
    platformHint,
  });
}

export function wantedPlatform(text: string | undefined): Platform {
  return text === undefined || text === "" ? hostPlatform() : parsePlatform(text);
}

/** A file written into the store under a temp name, renamed into place only at the very end. */
interface Staged {
  name: string;
  temp: string;
  size: number;
  sha256: string;
  layer: number;
}

class Staging {
  readonly files = new Map<string, Staged>();
  private readonly temps = new Set<string>();

  constructor(private readonly storeDir: string) {}

  newTemp(name: string): string {
    const temp = tempPathBeside(path.join(this.storeDir, name), "oci");
    this.temps.add(temp);
    return temp;
  }

  async drop(name: string): Promise<void> {
    const staged = this.files.get(name);
    if (!staged) return;
    this.files.delete(name);
    this.temps.delete(staged.temp);
    await rm(staged.temp, { force: true });
  }

  async cleanup(): Promise<void> {
    for (const temp of this.temps) await rm(temp, { force: true }).catch(() => {});
    this.temps.clear();
    this.files.clear();
  }

  /**
   * Moves every staged file into place; refuses up front if --no-clobber forbids one, or if one
   * would replace an installed image that `mayReplace` does not allow.
   */
  async commit(
    noClobber: boolean | undefined,
    mayReplace: (name: string) => boolean = () => true,
  ): Promise<FetchedImage[]> {
    for (const name of this.files.keys()) {
      if (mayReplace(name)) continue;
      const exists = await lstat(path.join(this.storeDir, name)).then(
        () => true,
        (e: unknown) => {
          if (errnoCode(e) === "ENOENT") return false;
          throw e;
        },
      );
      if (exists) {
        throw new ExtctlError(
          "exists",
          `the image holds ${name}, which would replace the ${name} already installed; nothing was changed`,
          {
            hint: "an OCI image may replace only the image it is named after; pass --replace to replace the others too",
          },
        );
      }
    }
    if (noClobber) {
      for (const name of this.files.keys()) {
        const target = path.join(this.storeDir, name);
        const exists = await lstat(target).then(
          () => true,
          (e: unknown) => {
            if (errnoCode(e) === "ENOENT") return false;
            throw e;
          },
        );
        if (exists) {
          throw new ExtctlError("exists", `${name} is already in the store`, {
            hint: "remove it first, or install without --no-clobber to replace it",
          });
        }
      }
    }
    const out: FetchedImage[] = [];
    for (const staged of this.files.values()) {
      const target = path.join(this.storeDir, staged.name);
      try {
        await rename(staged.temp, target);
      } catch (e) {
        throw fsError(e, `move ${staged.name} into the store ${this.storeDir}`);
      }
      this.temps.delete(staged.temp);
      out.push({ name: staged.name, path: target, size: staged.size, sha256: staged.sha256 });
    }
    await fsyncDir(this.storeDir);
    return out;
  }
}

async function openTemp(temp: string): Promise<FileHandle> {
  let handle: FileHandle;
  try {
    handle = await open(temp, "wx", 0o644);
  } catch (e) {
    throw fsError(e, `create ${temp}`);
  }
  // A store file is rw-r--r-- whatever the umask (never exec, setuid or writable by others).
  await handle.chmod(0o644).catch(async (e: unknown) => {
    await handle.close();
    throw fsError(e, `create ${temp}`);
  });
  return handle;
}

/** Streams a tar entry into a temp file, hashing it; returns its size and SHA-256. */
async function writeEntry(
  entry: Readable,
  temp: string,
): Promise<{ size: number; sha256: string }> {
  const handle = await openTemp(temp);
  const hash = createHash("sha256");
  let size = 0;
  try {
    let batch: Buffer[] = [];
    let batchBytes = 0;
    for await (const chunk of entry) {
      const b = chunk as Buffer;
      hash.update(b);
      batch.push(b);
      batchBytes += b.length;
      if (batchBytes >= 1024 * 1024) {
        await handle.writev(batch);
        size += batchBytes;
        batch = [];
        batchBytes = 0;
      }
    }
    if (batchBytes > 0) await handle.writev(batch);
    size += batchBytes;
    await handle.sync();
  } finally {
    await handle.close();
  }
  return { size, sha256: hash.digest("hex") };
}

/** Splits a tar path into components, refusing anything that could land outside the store. */
export function safeEntryPath(name: string): string[] {
  if (name.startsWith("/")) {
    throw new ExtctlError(
      "format",
      `the image has an entry with an absolute path (${JSON.stringify(name)}); refusing to install it`,
      {
        hint: "rebuild the image with paths relative to its root",
      },
    );
  }
  const parts = name.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.includes("..")) {
    throw new ExtctlError(
      "format",
      `the image has an entry that climbs out with ".." (${JSON.stringify(name)}); refusing to install it`,
      {
        hint: "rebuild the image without .. in its paths",
      },
    );
  }
  return parts;
}

/** Characters no name may hold (names.ts refuses them with the reason). */
const UNPRINTABLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u;

/** Applies the layers of a classic image in order, keeping only regular `*.raw` files at `/`. */
async function extractClassic(
  ctx: Context,
  client: RegistryClient,
  manifest: ImageManifest,
  staging: Staging,
  progress: Progress,
  limits: { max: number; room: StoreRoom; expanded: number; timeoutMs: number },
): Promise<void> {
  const tarStream = await import("tar-stream");
  const skipped: string[] = [];
  let skippedCount = 0;
  const skip = (what: string) => {
    skippedCount++;
    if (skipped.length < 5) skipped.push(escapeText(what));
  };
  for (const [layerIndex, layer] of manifest.layers.entries()) {
    const compression = layerCompression(layer.mediaType);
    if (compression === undefined) {
      throw new ExtctlError(
        "unsupported",
        `layer ${layer.digest} has media type ${layer.mediaType}, which extctl cannot unpack`,
        {
          hint: "use gzip, zstd or uncompressed tar layers",
        },
      );
    }
    const blob = await client.openBlob(layer);
    const extract = tarStream.extract();
    const decompress = compression === "none" ? undefined : await layerDecompressor(compression);
    let lastProgress = Date.now();
    // One way to give up on the layer: destroying the tar end makes the pipeline settle.
    const fail = (e: Error) => (extract as unknown as { destroy(e: Error): void }).destroy(e);
    const counter = new Transform({
      transform(chunk: Buffer, _e, done) {
        progress.tick(chunk.length);
        lastProgress = Date.now();
        done(null, chunk);
      },
    });
    // Counts what the layer expands to: past the limit it is a bomb, not an image.
    const expanded = new Transform({
      transform(chunk: Buffer, _e, done) {
        limits.expanded += chunk.length;
        lastProgress = Date.now();
        if (limits.expanded > limits.max)
          done(expansionError(`layer ${layer.digest}`, limits.room));
        else done(null, chunk);
      },
    });
    // Neither the download nor the decompressor may sit still longer than --timeout.
    const watchdog = setInterval(
      () => {
        if (Date.now() - lastProgress > limits.timeoutMs)
          fail(
            new ExtctlError(
              "download",
              `layer ${layer.digest} made no progress for ${limits.timeoutMs / 1000} s; giving up`,
              { hint: "the registry or the layer stalled; try again, or raise --timeout" },
            ),
          );
      },
      Math.max(50, Math.min(1000, limits.timeoutMs / 4)),
    );
    const stages: (NodeJS.ReadableStream | NodeJS.WritableStream)[] = [blob, counter];
    if (decompress) stages.push(decompress);
    stages.push(expanded, extract);
    const done = (pipeline as (streams: readonly unknown[]) => Promise<void>)(stages);
    done.catch(() => {});
    try {
      for await (const entry of extract) {
        const header = entry.header;
        const parts = safeEntryPath(header.name);
        const name = parts[0];
        if (parts.length !== 1 || name === undefined) {
          if (parts.length > 0) skip(parts.join("/"));
          entry.resume();
          continue;
        }
        const whiteout = whiteoutOf(name);
        if (whiteout) {
          // Only what lower layers left: this layer's own files stay, whatever the order.
          for (const staged of [...staging.files.values()]) {
            if (staged.layer < layerIndex && hides(whiteout, staged.name)) {
              await staging.drop(staged.name);
            }
          }
        } else if (
          name.endsWith(".raw") &&
          (header.type === "file" || header.type === "contiguous-file")
        ) {
          if (UNPRINTABLE.test(name)) {
            throw new ExtctlError(
              "format",
              `the image holds a file named ${quoteName(name)}: ${unsafeNameReason(name)}; refusing to install it`,
              { hint: "image file names must be printable" },
            );
          }
          if (!isPlainRawName(name)) {
            skip(name);
          } else {
            await staging.drop(name);
            const temp = staging.newTemp(name);
            const { size, sha256 } = await writeEntry(entry as unknown as Readable, temp);
            staging.files.set(name, { name, temp, size, sha256, layer: layerIndex });
            continue;
          }
        } else {
          skip(header.type === "directory" ? `${name}/` : name);
        }
        entry.resume();
      }
      await done;
    } catch (e) {
      // Settle the pipeline before looking at it: a bad first entry stops the tar reader
      // without an error of its own, and a pipeline left pending made Node exit 13, silently.
      fail(e instanceof Error ? e : new Error(String(e)));
      blob.destroy();
      // A digest mismatch surfaces from the pipeline; prefer it over what tar made of the bytes.
      const cause = await done.then(
        () => e,
        (pipelineError: unknown) => (pipelineError instanceof ExtctlError ? pipelineError : e),
      );
      if (cause instanceof ExtctlError) throw cause;
      throw new ExtctlError(
        "format",
        `layer ${layer.digest} is not a valid ${compression === "none" ? "" : compression + " "}tar archive: ${(cause as Error).message ?? String(cause)}`,
        {
          cause,
        },
      );
    } finally {
      clearInterval(watchdog);
    }
  }
  if (skippedCount > 0) {
    ctx.log.info(
      `skipped ${skippedCount} entr${skippedCount === 1 ? "y" : "ies"} that are not *.raw files at / (${skipped.join(", ")}${skippedCount > skipped.length ? ", ..." : ""})`,
    );
  }
}

async function downloadArtifact(
  client: RegistryClient,
  manifest: ImageManifest,
  staging: Staging,
  progress: Progress,
  ref: Reference,
): Promise<void> {
  if (manifest.layers.length !== 1) {
    throw new ExtctlError(
      "format",
      `the artifact ${formatReference(ref)} has ${manifest.layers.length} layers; an extension artifact has exactly one`,
    );
  }
  const layer = manifest.layers[0] as Descriptor;
  const title = layer.annotations?.[TITLE_ANNOTATION];
  if (title === undefined || !isPlainRawName(title)) {
    throw new ExtctlError(
      "format",
      title === undefined
        ? `the artifact ${formatReference(ref)} has no ${TITLE_ANNOTATION} annotation to name its file`
        : `the artifact ${formatReference(ref)} names its file ${quoteName(title)}, which is not a safe *.raw file name (${unsafeNameReason(title) ?? "it does not end in .raw"})`,
      { hint: "publish it with a title like name.sysext.raw (extctl publish does this)" },
    );
  }
  const temp = staging.newTemp(title);
  const handle = await openTemp(temp);
  try {
    await client.downloadBlob(layer, handle, (n) => progress.tick(n));
    await handle.sync();
  } finally {
    await handle.close();
  }
  staging.files.set(title, {
    name: title,
    temp,
    size: layer.size,
    sha256: layer.digest.slice("sha256:".length),
    layer: 0,
  });
}

/** Installs what an `oci://` reference names into the store; the `oci` Source's fetch. */
export async function installFromRegistry(
  ctx: Context,
  request: FetchRequest,
): Promise<FetchedImage[]> {
  const ref = parseReference(request.uri);
  const wanted = wantedPlatform(request.platform);
  const { value } = await fromPullSources(ctx, ref, request, (client, source) =>
    installFrom(ctx, client, source, ref, wanted, request),
  );
  return value;
}

/** One try of installFromRegistry against one source; the client is closed at the end. */
async function installFrom(
  ctx: Context,
  client: RegistryClient,
  source: PullSource,
  ref: Reference,
  wanted: Platform,
  request: FetchRequest,
): Promise<FetchedImage[]> {
  const staging = new Staging(request.storeDir);
  let progress: Progress | undefined;
  try {
    const resolved = await resolveOnRegistry(client, source.ref, wanted);
    const { manifest } = resolved;
    const kind = artifactKind(manifest);
    ctx.log.debug(
      `${formatReference(ref)} -> ${resolved.digest}${kind ? ` (${kind} artifact)` : " (image)"}`,
    );
    if (kind !== undefined && kind !== request.kind) {
      throw new ExtctlError(
        "incompatible",
        `${formatReference(ref)} is a ${kind} artifact, not a ${request.kind}`,
        {
          hint: `install it with extctl ${kind} install`,
        },
      );
    }
    const total = manifest.layers.reduce((sum, l) => sum + l.size, 0);
    progress = ctx.progress(`${ref.repository}:${ref.tag ?? ref.digest?.slice(7, 19)}`, total);
    const room = await storeRoom(request.storeDir, request.maxBytes);
    const max = room.limit;
    if (kind !== undefined) {
      // The blob's size is the manifest's word, checked while it downloads; refuse it up front.
      if (total > max) throw sizeLimitError(formatReference(ref), room, total);
      await downloadArtifact(client, manifest, staging, progress, ref);
    } else {
      const limits = {
        max,
        room,
        expanded: 0,
        timeoutMs: request.timeoutMs ?? DEFAULT_STALL_TIMEOUT_MS,
      };
      await extractClassic(ctx, client, manifest, staging, progress, limits);
    }
    progress.stop();
    if (staging.files.size === 0) {
      throw new ExtctlError("not-found", `${formatReference(ref)} holds no *.raw file at /`, {
        hint: "an extension image carries its x.sysext.raw or x.confext.raw at the image root (FROM scratch + COPY x.sysext.raw /)",
      });
    }
    if (request.sha256 !== undefined) {
      if (staging.files.size !== 1) {
        throw new ExtctlError(
          "usage",
          `${formatReference(ref)} holds ${staging.files.size} raw files, so a single --sha256 cannot check them`,
        );
      }
      const only = [...staging.files.values()][0] as Staged;
      if (only.sha256 !== request.sha256.toLowerCase()) {
        throw new ExtctlError(
          "checksum",
          `${only.name} has SHA-256 ${only.sha256}, not ${request.sha256} as expected`,
        );
      }
    }
    for (const staged of staging.files.values())
      await checkIsImage(staged.temp, staged.name, formatReference(ref), {
        kind: request.kind,
        root: ctx.root,
        ...(request.mergeName === undefined
          ? { warn: (message: string) => ctx.log.warn(message) }
          : { as: request.mergeName }),
      });
    // A classic image may carry extra .raw files: besides its only file, or the one named after
    // the repository (exts/tool -> tool.sysext.raw), it may not replace installed ones silently.
    const own = ref.repository.split("/").at(-1) ?? "";
    const mayReplace = (name: string) =>
      request.replace === true ||
      kind !== undefined ||
      staging.files.size === 1 ||
      shortName(name) === own;
    return await staging.commit(request.noClobber, mayReplace);
  } catch (e) {
    progress?.stop();
    await staging.cleanup();
    throw e;
  } finally {
    await client.close();
  }
}

export interface PulledLayer {
  mediaType: string;
  digest: string;
  size: number;
  /** The layer as the registry stores it (still compressed), failing at the end on a bad digest. */
  open(): Promise<Readable>;
}

export interface PulledImage {
  reference: string;
  /** Digest of the image manifest. */
  digest: string;
  /** The image config (JSON), or undefined for an artifact with an empty config. */
  config: Record<string, unknown> | undefined;
  configDescriptor: Descriptor;
  layers: PulledLayer[];
  close(): Promise<void>;
}

export interface PullOptions {
  platform?: string;
  /** How the caller's user picks another platform, for the error when the index lacks theirs. */
  platformHint?: string;
  creds?: string;
  caCerts?: string[];
  insecureRegistries?: string[];
}

/**
 * Resolves an image for reading its layers (a base for `build ... oci://REF`). The caller must
 * call close() when done with the layers.
 */
export async function pullImageLayers(
  ctx: Context,
  reference: string,
  options: PullOptions = {},
): Promise<PulledImage> {
  const ref = parseReference(reference);
  const { value, client } = await fromPullSources(ctx, ref, options, (client, source) =>
    resolveWithConfig(client, source, options),
  );
  const { resolved, config } = value;
  const configDesc = resolved.manifest.config;
  return {
    reference: formatReference({ ...ref, digest: resolved.digest }),
    digest: resolved.digest,
    config,
    configDescriptor: configDesc,
    layers: resolved.manifest.layers.map((layer) => ({
      mediaType: layer.mediaType,
      digest: layer.digest,
      size: layer.size,
      open: () => client.openBlob(layer),
    })),
    close: () => client.close(),
  };
}

/** The image and its config from one source. */
async function resolveWithConfig(
  client: RegistryClient,
  source: PullSource,
  options: PullOptions,
): Promise<{ resolved: ResolvedImage; config: Record<string, unknown> | undefined }> {
  const resolved = await resolveOnRegistry(
    client,
    source.ref,
    wantedPlatform(options.platform),
    options.platformHint,
  );
  const configDesc = resolved.manifest.config;
  let config: Record<string, unknown> | undefined;
  if (configDesc.mediaType.endsWith("+json") || configDesc.mediaType.endsWith(".json")) {
    const bytes = await client.readBlob(configDesc);
    try {
      const parsed = JSON.parse(bytes.toString("utf8")) as unknown;
      if (typeof parsed === "object" && parsed !== null && !Array.isArray(parsed)) {
        config = parsed as Record<string, unknown>;
      }
    } catch {
      throw new ExtctlError(
        "registry",
        `the config of ${formatReference(source.ref)} is not valid JSON`,
      );
    }
  }
  return { resolved, config };
}
