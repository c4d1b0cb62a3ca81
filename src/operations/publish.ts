// `extctl publish`: pushes an extension image to an OCI registry as an ORAS-compatible artifact
// and returns the digest-pinned reference a fleet can install from.
import type { Context } from "../util/context.js";
import type { PushRequest, PushResult } from "../domain/sources/oci/index.js";

export type PublishOptions = Omit<PushRequest, "file"> & {
  /** The image file to push. */
  image: string;
};
export type PublishResult = PushResult;

export async function publish(ctx: Context, options: PublishOptions): Promise<PublishResult> {
  const { pushArtifact } = await import("../domain/sources/oci/push.js");
  const { image, ...request } = options;
  const result = await pushArtifact(ctx, { ...request, file: image });
  const how = {
    uploaded: "uploaded",
    mounted: "mounted from another repository",
    existed: "already there",
  }[result.layer.outcome];
  ctx.log.info(
    `published ${result.name} (${result.kind}${result.platform ? `, ${result.platform}` : ""}); layer ${how}`,
  );
  return result;
}
