// Picks the source for a URI's scheme. Sources are loaded on demand: a file: install never
// loads undici, and nothing here is loaded by list or status.
import type { Context } from "../../util/context.js";
import { ExtctlError } from "../../util/errors.js";
import { schemeOf } from "./uri.js";
import type { FetchRequest, FetchedImage } from "./types.js";

export interface SourceRequest extends FetchRequest {
  name?: string;
}

export async function fetchIntoStore(
  ctx: Context,
  request: SourceRequest,
): Promise<FetchedImage[]> {
  const scheme = schemeOf(request.uri);
  switch (scheme) {
    case "file":
      return (await import("./file.js")).fileSource.fetch(ctx, request);
    case "http":
    case "https":
      return (await import("./http.js")).httpSource.fetch(ctx, request);
    case "oci": {
      validateOciReference(request.uri);
      throw new ExtctlError("unsupported", "installing from oci: registries is not supported yet", {
        hint: "download the .raw file and install it from file: or https:",
      });
    }
  }
}

/** A first check of an oci: reference, so an invalid one is refused before any network. */
export function validateOciReference(uri: string): void {
  const ref = uri.replace(/^oci:(\/\/)?/, "");
  const valid =
    /^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::\d+)?(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$/;
  if (!valid.test(ref)) {
    throw new ExtctlError("invalid-uri", `${JSON.stringify(uri)} is not a valid OCI reference`, {
      hint: "use oci://registry/repository:tag or oci://registry/repository@sha256:DIGEST",
    });
  }
}
