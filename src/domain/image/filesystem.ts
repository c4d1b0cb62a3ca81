// Opens the filesystem inside an image slice with the right reader, so callers never care
// whether an extension is squashfs or erofs.
import { ExtctlError } from "../../util/errors.js";
import type { ByteSource } from "../../util/bytes.js";
import type { FilesystemType } from "./ddi.js";
import { openErofs } from "./erofs/reader.js";
import { openSquashfs } from "./squashfs/reader.js";
import type { ImageFilesystem } from "./tree.js";

export async function openFilesystem(
  source: ByteSource,
  type: FilesystemType,
): Promise<ImageFilesystem> {
  switch (type) {
    case "squashfs":
      return openSquashfs(source);
    case "erofs":
      return openErofs(source);
    default:
      throw new ExtctlError(
        "unsupported",
        `extctl cannot read ${type} filesystems yet (it reads squashfs and erofs)`,
        { hint: "build the extension as squashfs or erofs" },
      );
  }
}
