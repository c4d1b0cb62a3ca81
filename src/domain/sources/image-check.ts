// An install may only put extension images in the store (issue 12): what arrived must be a GPT
// DDI or a bare filesystem systemd knows, judged by the same dissection `inspect` uses, before it
// is renamed into place. Anything else (a decompression bomb of zeros, a tarball) is refused.
import { FileSource } from "../../util/bytes.js";
import { ExtctlError, fsError } from "../../util/errors.js";
import { dissectImage } from "../image/ddi.js";
import { FILESYSTEM_NAMES } from "../image/filesystem-registry.js";
import { quoteName } from "../store/names.js";
import type { ExtensionKind } from "../store/layout.js";
import type { Root } from "../../util/root.js";
import { requireLinkName } from "../image/link-name.js";

/** Where an image is going: its kind and the root whose systemd must be able to merge it. */
export interface MergeTarget {
  kind: ExtensionKind;
  root: Root;
  /** The store file name it will be known by, when not the one it arrives under. */
  as?: string;
  /**
   * Given, an image whose release file fits no name is stored with this warning instead of
   * refused (an install from a URI: the operator may rename it, or enable refuses it later).
   */
  warn?: (message: string) => void;
}

/**
 * Throws a clear error unless the file at `file` (to be stored as `name`) is an image and, given
 * `target`, one whose release file fits a name the root's systemd can give it (link-name.ts).
 */
export async function checkIsImage(
  file: string,
  name: string,
  from: string,
  target?: MergeTarget,
): Promise<void> {
  await checkIsDissectable(file, name, from);
  if (!target) return;
  try {
    await requireLinkName(
      target.root,
      file,
      target.as ?? name,
      target.kind,
      target.warn !== undefined,
    );
  } catch (e) {
    if (!target.warn || !(e instanceof ExtctlError) || e.code !== "incompatible") throw e;
    target.warn(
      `${e.message}; stored anyway (${e.hint ?? "rename it"}), enable refuses it as it is`,
    );
  }
}

async function checkIsDissectable(file: string, name: string, from: string): Promise<void> {
  let source: FileSource;
  try {
    source = await FileSource.open(file);
  } catch (e) {
    throw fsError(e, `read ${file}`);
  }
  try {
    // Whether it is an image at all: any systemd's reading will do (the newest, else 252's);
    // which partitions a node's systemd uses is judged where it is enabled or booted.
    await dissectImage(source).catch((e: unknown) => {
      if (!(e instanceof ExtctlError)) throw e;
      return dissectImage(source, { systemd: 252 }).catch(() => Promise.reject(e));
    });
  } catch (e) {
    if (!(e instanceof ExtctlError)) throw e;
    throw new ExtctlError(
      "format",
      `${quoteName(name)} from ${from} is not an extension image (${e.message}); nothing was stored`,
      {
        hint: `an extension image is a GPT disk image (DDI) or a bare filesystem (${FILESYSTEM_NAMES})`,
        cause: e,
      },
    );
  } finally {
    await source.close();
  }
}
