// file: sources: the image is streamed from a host path into the store, keeping its mode masked
// with 0644 (Kairos's own test: 0640 stays 0640; setuid, setgid, sticky, x and w for others go).
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import path from "node:path";
import { ExtctlError, errnoCode, fsError } from "../../util/errors.js";
import type { Context } from "../../util/context.js";
import { checkStoreName, filePathOf } from "./uri.js";
import { STORE_MODE_MASK, streamToStore } from "./stream-to-store.js";
import { storeRoom } from "./expansion.js";
import type { FetchRequest, FetchedImage, Source } from "./types.js";

export interface FileFetchRequest extends FetchRequest {
  /** Store the image under this name instead of the source's file name. */
  name?: string;
}

export const fileSource: Source = {
  schemes: ["file"],
  async fetch(ctx: Context, request: FileFetchRequest): Promise<FetchedImage[]> {
    const from = filePathOf(request.uri);
    let st;
    try {
      st = await stat(from);
    } catch (e) {
      if (errnoCode(e) === "ENOENT") {
        throw new ExtctlError("not-found", `the file ${from} does not exist`, {
          hint: "check the path in the file: URI",
        });
      }
      throw fsError(e, `read ${from}`);
    }
    if (!st.isFile()) throw new ExtctlError("invalid-uri", `${from} is not a regular file`);
    const name = checkStoreName(request.name ?? path.basename(from), from);
    const progress = ctx.progress(`copying ${name}`, st.size);
    const room = await storeRoom(request.storeDir, request.maxBytes);
    const image = await streamToStore(createReadStream(from, { highWaterMark: 1 << 20 }), {
      storeDir: request.storeDir,
      name,
      mode: st.mode & STORE_MODE_MASK,
      expectedSize: st.size,
      // The size is known: checked against the free space and --max-size before a byte is written.
      maxSize: room.maxSize,
      room,
      progress,
      from,
      ...(request.sha256 === undefined ? {} : { sha256: request.sha256 }),
      mergeTarget: {
        kind: request.kind,
        root: ctx.root,
        ...(request.mergeName === undefined
          ? { warn: (message: string) => ctx.log.warn(message) }
          : { as: request.mergeName }),
      },
    });
    return [image];
  },
};
