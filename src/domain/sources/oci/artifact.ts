// How extctl publishes an extension image as an ORAS-style artifact (artifact types, the title
// annotation naming its one file, the empty config), and how install recognises one.
import type { ExtensionKind } from "../../store/layout.js";
import { unsafeNameReason } from "../../store/names.js";
import { MEDIA, type Descriptor, type ImageManifest } from "../../oci/manifest.js";

export const ARTIFACT_TYPES: Readonly<Record<ExtensionKind, string>> = {
  sysext: "application/vnd.kairos.sysext.raw",
  confext: "application/vnd.kairos.confext.raw",
};

export const TITLE_ANNOTATION = "org.opencontainers.image.title";

/** The digest of `{}`, the empty config every ORAS artifact points at. */
export const EMPTY_CONFIG: Descriptor = {
  mediaType: MEDIA.ociEmpty,
  digest: "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
  size: 2,
  data: "e30=",
};

/** The extension kind an ORAS-style artifact declares, or undefined for a classic image. */
export function artifactKind(manifest: ImageManifest): ExtensionKind | undefined {
  for (const kind of ["sysext", "confext"] as const) {
    const type = ARTIFACT_TYPES[kind];
    if (manifest.artifactType === type || manifest.config.mediaType === type) return kind;
  }
  return undefined;
}

/** A file name the store may take: a safe (names.ts) `*.raw` name. */
export function isPlainRawName(name: string): boolean {
  return name.length > 4 && name.endsWith(".raw") && unsafeNameReason(name) === undefined;
}
