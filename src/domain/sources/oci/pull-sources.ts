// Where a pull is served from: registries.conf's mirrors for the reference in order, then the
// origin, each with its own client. Used by every pull (install, catalogs), so they all honour
// mirrors, `blocked` and `insecure` the same way.
import type { Context } from "../../../util/context.js";
import { ExtctlError } from "../../../util/errors.js";
import { formatReference, type Reference } from "../../oci/reference.js";
import { RegistryClient, type ClientOptions } from "./client.js";
import { loadRegistriesConf, pullSources, type PullSource } from "./registries-conf.js";

/** What a pull takes from the caller besides the reference. */
export interface PullRequest {
  creds?: string;
  caCerts?: string[];
  insecureRegistries?: string[];
  timeoutMs?: number;
}

function clientOptions(request: PullRequest): ClientOptions {
  const options: ClientOptions = { actions: ["pull"] };
  if (request.creds !== undefined) options.creds = request.creds;
  if (request.caCerts !== undefined) options.caCerts = request.caCerts;
  if (request.insecureRegistries !== undefined)
    options.insecureRegistries = request.insecureRegistries;
  if (request.timeoutMs !== undefined) options.timeoutMs = request.timeoutMs;
  return options;
}

/** A mirror is tried once and quickly: the next source is a better bet than a long wait. */
const MIRROR_RETRIES = 1;

/** Failures of the place bytes came from, after which the next source may do better. */
const SOURCE_FAILURES = new Set(["registry", "tls", "not-found", "checksum", "download"]);

function describeSource(source: PullSource): string {
  return `${source.mirror ? "the mirror" : "the origin"} ${formatReference(source.ref, { scheme: false })}`;
}

/**
 * Runs `attempt` against each place registries.conf says `ref` may be pulled from (its mirrors
 * in order, then the origin), until one succeeds. A mirror that cannot be reached, lacks the
 * image or serves bytes that fail their digest falls through to the next source; the origin's
 * failure is the error. Credentials given on the command line go only to the reference's own
 * host; a mirror's come from the usual lookup for its host. On success the caller owns the
 * client; on failure it is closed here.
 */
export async function fromPullSources<T>(
  ctx: Context,
  ref: Reference,
  request: PullRequest,
  attempt: (client: RegistryClient, source: PullSource) => Promise<T>,
): Promise<{ value: T; client: RegistryClient }> {
  const registries = await loadRegistriesConf(ctx);
  const sources = pullSources(registries, ref);
  for (const [i, source] of sources.entries()) {
    const last = i === sources.length - 1;
    const options: ClientOptions = {
      ...clientOptions(request),
      registries,
      insecure: source.insecure,
    };
    if (source.ref.registry !== ref.registry) delete options.creds;
    if (source.mirror) options.maxRetries = MIRROR_RETRIES;
    let client: RegistryClient | undefined;
    try {
      client = await RegistryClient.create(ctx, source.ref, options);
      const value = await attempt(client, source);
      if (sources.length > 1 || source.ref !== ref) {
        ctx.log.debug(
          `${formatReference(ref)}: served by ${describeSource(source)} (${source.where})`,
        );
      }
      return { value, client };
    } catch (e) {
      await client?.close();
      const fallsThrough = e instanceof ExtctlError && SOURCE_FAILURES.has(e.code);
      if (last || !fallsThrough) throw e;
      const message = `${describeSource(source)} failed: ${e.message}; trying the next source`;
      if (e.code === "checksum") ctx.log.warn(message);
      else ctx.log.debug(message);
    }
  }
  throw new ExtctlError("internal", "registries.conf gave no source to pull from");
}
