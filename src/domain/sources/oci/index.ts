// The `oci:` source: installs extension images from OCI registries. Only types load eagerly; the
// client (and undici) is loaded when a fetch or a pull really happens.
import type { Context } from "../../../util/context.js";
import type { FetchRequest, FetchedImage, Source } from "../types.js";

export const ociSource: Source = {
  schemes: ["oci"],
  async fetch(ctx: Context, request: FetchRequest): Promise<FetchedImage[]> {
    const { installFromRegistry } = await import("./pull.js");
    return installFromRegistry(ctx, request);
  },
};

import type { PullOptions, PulledImage } from "./pull.js";
export type { PullOptions, PulledImage, PulledLayer } from "./pull.js";
export type { PushRequest, PushResult } from "./push.js";

/** Resolves an image and hands out its layers undecompressed (for `build ... oci://REF`). */
export async function pullImageLayers(
  ctx: Context,
  reference: string,
  options: PullOptions = {},
): Promise<PulledImage> {
  const pull = await import("./pull.js");
  return pull.pullImageLayers(ctx, reference, options);
}
