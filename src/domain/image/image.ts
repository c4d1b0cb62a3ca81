// An extension image opened for reading: its file, what dissect found, and its filesystem;
// plus the image-side facts the compatibility check needs.
import path from "node:path";
import { ExtctlError, fsError } from "../../util/errors.js";
import type { ExtensionKind } from "../store/layout.js";
import { imageName, type ImageFacts, type SystemdRules } from "./compat.js";
import { dissectImage, type DissectedImage } from "./ddi.js";
import { openFilesystem } from "./filesystem.js";
import { mountedAtUsr } from "./usr-mount.js";
import { ReadAheadFileSource } from "./read-ahead.js";
import { findReleaseFile } from "./release.js";
import { hasFeature } from "./systemd-versions.js";
import { lookup, type ImageFilesystem } from "./tree.js";

export interface OpenedImage {
  path: string;
  file: ReadAheadFileSource;
  dissected: DissectedImage;
  fs: ImageFilesystem;
  close(): Promise<void>;
}

/** Opens the image as systemd `options.systemd` (default: the newest) would dissect it. */
export async function openImage(
  hostPath: string,
  options: { systemd?: number; embeddedVerity?: boolean } = {},
): Promise<OpenedImage> {
  let file: ReadAheadFileSource;
  try {
    file = ReadAheadFileSource.open(hostPath);
  } catch (e) {
    throw fsError(e, `open the image ${hostPath}`);
  }
  try {
    const dissected = await dissectImage(file, {
      ...(options.systemd === undefined ? {} : { systemd: options.systemd }),
      ...(options.embeddedVerity === undefined ? {} : { embeddedVerity: options.embeddedVerity }),
    });
    const opened = await openFilesystem(dissected.data.source, dissected.filesystem);
    // A usr-only DDI: systemd mounts the partition at /usr (issue 24, item 6).
    const fs = dissected.designator === "usr" ? mountedAtUsr(opened) : opened;
    return { path: hostPath, file, dissected, fs, close: () => file.close() };
  } catch (e) {
    await file.close();
    if (e instanceof ExtctlError)
      throw new ExtctlError(e.code, `${path.basename(hostPath)}: ${e.message}`, {
        cause: e,
        ...(e.hint ? { hint: e.hint } : {}),
      });
    throw e;
  }
}

export const HIERARCHIES: Record<ExtensionKind, string[]> = {
  sysext: ["usr", "opt"],
  confext: ["etc"],
};

/** Gathers what the compatibility check needs to know about an image. */
export async function imageFacts(
  image: Pick<OpenedImage, "path" | "fs" | "dissected">,
  kind: ExtensionKind,
  systemd: SystemdRules,
  /** The name systemd sees the file under, when it is not the file's own (a version file). */
  fileName = path.basename(image.path),
): Promise<ImageFacts> {
  const name = imageName(fileName, kind, systemd);
  const release = await findReleaseFile(image.fs, name, kind, {
    versionedNameFallback: hasFeature(systemd, "versionedNameFallback"),
  });
  const osRelease = await lookup(image.fs, "/usr/lib/os-release", { follow: true });
  const top = await image.fs.list(await image.fs.root());
  const allowed = HIERARCHIES[kind];
  return {
    fileName,
    release,
    hasOsRelease: osRelease !== undefined,
    outsideHierarchies: top.filter((e) => !allowed.includes(e.name)).map((e) => `/${e.name}`),
    ...(image.dissected.foreignArchitecture && image.dissected.architecture
      ? { foreignArchitecture: image.dissected.architecture }
      : {}),
  };
}

/** "ddi/erofs", "squashfs", "single-partition/squashfs". */
export function formatName(d: DissectedImage): string {
  return d.kind === "bare-fs" ? d.filesystem : `${d.kind}/${d.filesystem}`;
}

/** Sidecar files systemd looks for next to a bare image: NAME.roothash, .verity, .roothash.p7s. */
export function sidecarPaths(hostPath: string): {
  roothash: string;
  verity: string;
  signature: string;
  usrhash: string;
  usrSignature: string;
} {
  const base = hostPath.endsWith(".raw") ? hostPath.slice(0, -4) : hostPath;
  return {
    roothash: `${base}.roothash`,
    verity: `${base}.verity`,
    signature: `${base}.roothash.p7s`,
    usrhash: `${base}.usrhash`,
    usrSignature: `${base}.usrhash.p7s`,
  };
}
