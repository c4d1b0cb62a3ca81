// Picks the source for a URI's scheme. Sources are loaded on demand: a file: install never
// loads undici, and nothing here is loaded by list or status.
import type { Context } from "../../util/context.js";
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
    case "oci":
      return (await import("./oci/index.js")).ociSource.fetch(ctx, request);
  }
}
