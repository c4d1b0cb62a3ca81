// Turns a SOURCE argument (directory, rootfs tar, OCI layout, docker save archive) into the tree
// to build from, applying image layers as asked: the last one, all, or what is new over a base.
import { createWriteStream } from "node:fs";
import { stat } from "node:fs/promises";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import type { Context } from "../../util/context.js";
import { ExtctlError, errnoCode, fsError } from "../../util/errors.js";
import { formatPlatform, type Platform } from "../oci/platform.js";
import { applyLayers, countWhiteouts, diffOverBase } from "./layers.js";
import type { GoArch } from "./release-file.js";
import { readDirectoryTree } from "./sources/dir.js";
import { imageArchiveMembers, openImage, type ImageLayers } from "./sources/oci-layout.js";
import { archiveOfFile, readArchiveEntries, type LayerArchive } from "./sources/tar.js";
import type { FileTree, BuildEntry } from "./tree.js";

export type LayerSelection = "last" | "all";

export interface SourceOptions {
  arch: GoArch;
  layers?: LayerSelection;
  /** A second image reference: build only what SOURCE adds over it. */
  base?: string;
  /** Where registry layers are downloaded to (oci://); the caller removes it. */
  downloadDir?: string;
  /** Registry hosts reached over plain http. */
  insecureRegistries?: string[];
  /** Registry credentials "USER:PASS". */
  creds?: string;
}

export interface LoadedSource {
  tree: FileTree;
  /** Archives that layer content refs point into, by index. */
  archives: LayerArchive[];
  describe: string;
  kind: "directory" | "archive" | "image";
}

/** Builds are for Linux; --arch names the architecture, and no variant is asked for. */
function imagePlatform(arch: GoArch): Platform {
  return { os: "linux", architecture: arch };
}

const BUILD_PLATFORM_HINT = "pick another --arch or another image";

type Resolved =
  | { kind: "directory"; path: string }
  | { kind: "archive"; archive: LayerArchive }
  | { kind: "image"; image: ImageLayers };

/**
 * Downloads an image's layers from a registry into a directory (streamed, digests checked), so
 * they can be read twice like local layers. With `from` "last" only the top layer is fetched.
 */
async function pullLayers(
  ctx: Context,
  reference: string,
  options: SourceOptions,
  from: "last" | "all",
): Promise<ImageLayers> {
  const dir = options.downloadDir;
  if (dir === undefined) throw new ExtctlError("internal", "no download directory for oci://");
  const { pullImageLayers } = await import("../sources/oci/index.js");
  const image = await pullImageLayers(ctx, reference, {
    platform: formatPlatform(imagePlatform(options.arch)),
    platformHint: BUILD_PLATFORM_HINT,
    ...(options.insecureRegistries ? { insecureRegistries: options.insecureRegistries } : {}),
    ...(options.creds ? { creds: options.creds } : {}),
  });
  try {
    const first = from === "last" ? image.layers.length - 1 : 0;
    const layers: LayerArchive[] = [];
    for (const [i, layer] of image.layers.entries()) {
      const describe = `layer ${i + 1} (${layer.digest.slice(0, 19)})`;
      const file = path.join(dir, `${reference.replace(/[^\w.-]+/g, "_")}-${i}`);
      if (i < first) {
        // Never read: --layers last lists and stages the top layer only.
        layers.push({ describe, path: file, start: 0, length: 0 });
        continue;
      }
      ctx.log.info(`downloading ${describe} of ${image.reference}`);
      await pipeline(await layer.open(), createWriteStream(file, { flags: "wx" }));
      layers.push({ describe, path: file, start: 0, length: layer.size, digest: layer.digest });
    }
    return { describe: image.reference, layers };
  } finally {
    await image.close();
  }
}

async function resolve(
  ctx: Context,
  spec: string,
  options: SourceOptions,
  from: "last" | "all" = "all",
): Promise<Resolved> {
  const platform = imagePlatform(options.arch);
  if (spec.startsWith("oci://")) {
    return {
      kind: "image",
      image: await pullLayers(ctx, spec.slice("oci://".length), options, from),
    };
  }
  if (spec.startsWith("oci-layout:")) {
    return {
      kind: "image",
      image: await openImage(spec.slice("oci-layout:".length), platform, BUILD_PLATFORM_HINT),
    };
  }
  let st;
  try {
    st = await stat(spec);
  } catch (e) {
    if (errnoCode(e) === "ENOENT") {
      throw new ExtctlError("not-found", `the source ${spec} does not exist`, {
        hint: "give a directory, a tar/tar.gz/tar.zst rootfs, oci-layout:DIR[:TAG], oci://REF or a docker save archive",
      });
    }
    throw fsError(e, `read the source ${spec}`);
  }
  if (st.isDirectory()) return { kind: "directory", path: spec };
  if (await imageArchiveMembers(spec))
    return { kind: "image", image: await openImage(spec, platform, BUILD_PLATFORM_HINT) };
  return { kind: "archive", archive: await archiveOfFile(spec) };
}

export async function loadSource(
  ctx: Context,
  spec: string,
  options: SourceOptions,
): Promise<LoadedSource> {
  const from = options.base === undefined && (options.layers ?? "last") === "last" ? "last" : "all";
  const resolved = await resolve(ctx, spec, options, from);
  if (resolved.kind !== "image" && (options.base !== undefined || options.layers === "all")) {
    throw new ExtctlError("usage", "--layers and --base apply to container images only", {
      hint: "give SOURCE as oci-layout:DIR[:TAG] or a docker save archive",
    });
  }
  if (resolved.kind === "directory") {
    return {
      tree: await readDirectoryTree(resolved.path),
      archives: [],
      describe: spec,
      kind: "directory",
    };
  }
  if (resolved.kind === "archive") {
    const entries = await readArchiveEntries(resolved.archive, 0);
    const { tree } = applyLayers([{ entries, describe: resolved.archive.describe }]);
    return { tree, archives: [resolved.archive], describe: spec, kind: "archive" };
  }
  const image = resolved.image;
  if (image.layers.length === 0) {
    throw new ExtctlError("build", `the image ${image.describe} has no layers`);
  }
  const listings = new Map<number, BuildEntry[]>();
  const listing = async (i: number): Promise<BuildEntry[]> => {
    let entries = listings.get(i);
    if (!entries) {
      entries = await readArchiveEntries(image.layers[i] as LayerArchive, i);
      listings.set(i, entries);
    }
    return entries;
  };
  if (options.base !== undefined) {
    const base = await resolve(ctx, options.base, options);
    if (base.kind !== "image") {
      throw new ExtctlError("usage", `--base ${options.base} is not a container image`, {
        hint: "give the base as oci-layout:DIR[:TAG] or a docker save archive",
      });
    }
    let shared = 0;
    while (
      shared < base.image.layers.length &&
      shared < image.layers.length &&
      base.image.layers[shared]?.digest !== undefined &&
      base.image.layers[shared]?.digest === image.layers[shared]?.digest
    ) {
      shared++;
    }
    const imageLayers = [];
    for (let i = 0; i < image.layers.length; i++) {
      imageLayers.push({ entries: await listing(i), describe: image.layers[i]!.describe });
    }
    const baseLayers = [];
    for (let i = 0; i < base.image.layers.length; i++) {
      // Shared layers are read once; the base's own ones get indexes no content ref uses.
      const entries =
        i < shared
          ? await listing(i)
          : await readArchiveEntries(base.image.layers[i]!, image.layers.length + i);
      baseLayers.push({ entries, describe: base.image.layers[i]!.describe });
    }
    const tree = diffOverBase(applyLayers(imageLayers).tree, applyLayers(baseLayers).tree, shared);
    ctx.log.info(
      `building what ${image.describe} adds over ${base.image.describe} (${shared} shared ${shared === 1 ? "layer" : "layers"})`,
    );
    return { tree, archives: image.layers, describe: spec, kind: "image" };
  }
  if ((options.layers ?? "last") === "last") {
    const last = image.layers.length - 1;
    const entries = await listing(last);
    const whiteouts = countWhiteouts(entries);
    if (whiteouts > 0) {
      ctx.log.warn(
        `the last layer deletes ${whiteouts} ${whiteouts === 1 ? "path" : "paths"}, which an extension cannot do; use --layers all or --base to build the image's result`,
      );
    }
    const { tree } = applyLayers([{ entries, describe: image.layers[last]!.describe }]);
    return { tree, archives: image.layers, describe: spec, kind: "image" };
  }
  const all = [];
  for (let i = 0; i < image.layers.length; i++) {
    all.push({ entries: await listing(i), describe: image.layers[i]!.describe });
  }
  return { tree: applyLayers(all).tree, archives: image.layers, describe: spec, kind: "image" };
}
