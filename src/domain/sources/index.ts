// Hands a fetch to the source registered for the URI's scheme (source-registry.ts). Sources are
// loaded on demand: a file: install never loads undici, and nothing here is loaded by list or status.
import type { Context } from "../../util/context.js";
import { canonicalSourceUri } from "./source-registry.js";
import { sourceOf } from "./uri.js";
import type { FetchRequest, FetchedImage } from "./types.js";

export type SourceRequest = FetchRequest;

export async function fetchIntoStore(
  ctx: Context,
  request: SourceRequest,
): Promise<FetchedImage[]> {
  const uri = canonicalSourceUri(request.uri);
  const descriptor = sourceOf(uri);
  const { kind, storeDir } = request;
  const handed: SourceRequest = { uri, kind, storeDir };
  // Only what the source declared: an option it would ignore is dropped here, not passed along.
  for (const option of descriptor.options) {
    if (option in request) Object.assign(handed, { [option]: request[option] });
  }
  return (await descriptor.load()).fetch(ctx, handed);
}
