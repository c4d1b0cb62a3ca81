// OCI references (`oci://registry/repo:tag`, `oci://repo@sha256:...`) parsed with the rules
// go-containerregistry and the distribution spec use, so extctl accepts what Kairos accepts.
import { ExtctlError } from "../../util/errors.js";
import { canonicalRegistryHost } from "./registry-host.js";

export const DEFAULT_REGISTRY = "docker.io";
export const DEFAULT_TAG = "latest";

export interface Reference {
  /**
   * Registry host[:port] in its canonical form (registry-host.ts: lower case, dotted IPv4, no
   * :443), so that registries.conf, credentials and --insecure-registry see one spelling;
   * docker.io when none was given.
   */
  registry: string;
  /** Repository path inside the registry, e.g. "library/alpine". */
  repository: string;
  /** Tag, when the reference names one (a bare name gets "latest"). */
  tag?: string;
  /** "sha256:<hex>" when the reference is pinned. */
  digest?: string;
}

// One path component of a repository: lowercase alphanumerics joined by ".", "_", "__" or dashes.
const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;
const MAX_REPOSITORY = 255;

function refuse(input: string, rule: string): never {
  throw new ExtctlError("invalid-uri", `invalid OCI reference "${input}": ${rule}`, {
    hint: "write it as oci://REGISTRY/REPOSITORY[:TAG][@sha256:DIGEST], e.g. oci://quay.io/org/ext:1.0",
  });
}

/** True when the first path component names a registry rather than a repository. */
function looksLikeRegistry(component: string): boolean {
  return (
    component.includes(".") ||
    component.includes(":") ||
    component.startsWith("[") ||
    component === "localhost"
  );
}

/** Parses `oci://...`, `oci:...` or a plain reference. */
export function parseReference(input: string): Reference {
  let rest = input.trim();
  if (rest.startsWith("oci://")) rest = rest.slice("oci://".length);
  else if (rest.startsWith("oci:")) rest = rest.slice("oci:".length);
  if (rest === "") refuse(input, "it is empty");
  if (/\s/.test(rest)) refuse(input, "it contains whitespace");

  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) {
      refuse(input, "a digest must be sha256: followed by 64 lowercase hex digits");
    }
  }

  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf("/");
  const colon = rest.indexOf(":", lastSlash + 1);
  if (colon >= 0) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) {
      refuse(
        input,
        "a tag is 1 to 128 letters, digits, '_', '.' or '-' and must not start with '.' or '-'",
      );
    }
  }

  const parts = rest.split("/");
  let registry = DEFAULT_REGISTRY;
  if (parts.length > 1 && looksLikeRegistry(parts[0] as string)) {
    const written = parts.shift() as string;
    const canonical = canonicalRegistryHost(written);
    if (canonical.problem !== undefined)
      refuse(input, `the registry "${written}" ${canonical.problem}`);
    registry = canonical.host;
  }
  if (parts.length === 0 || parts.some((p) => p === "")) {
    refuse(input, "the repository path has an empty component");
  }
  for (const p of parts) {
    if (!COMPONENT.test(p)) {
      refuse(
        input,
        `repository component "${p}" must be lowercase letters and digits, joined by '.', '_', '__' or '-'`,
      );
    }
  }
  if (registry === "index.docker.io" || registry === "registry-1.docker.io") {
    registry = DEFAULT_REGISTRY;
  }
  if (registry === DEFAULT_REGISTRY && parts.length === 1) parts.unshift("library");
  const repository = parts.join("/");
  if (repository.length > MAX_REPOSITORY) {
    refuse(input, `the repository path is longer than ${MAX_REPOSITORY} characters`);
  }
  if (tag === undefined && digest === undefined) tag = DEFAULT_TAG;
  const ref: Reference = { registry, repository };
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  return ref;
}

/** The host the distribution API lives on (Docker Hub serves it from another name). */
export function apiHost(registry: string): string {
  return registry === DEFAULT_REGISTRY ? "registry-1.docker.io" : registry;
}

/** What to ask the registry for: the digest when pinned, else the tag. */
export function manifestSelector(ref: Reference): string {
  return ref.digest ?? ref.tag ?? DEFAULT_TAG;
}

export function formatReference(ref: Reference, options: { scheme?: boolean } = {}): string {
  let s = `${ref.registry}/${ref.repository}`;
  if (ref.tag !== undefined) s += `:${ref.tag}`;
  if (ref.digest !== undefined) s += `@${ref.digest}`;
  return options.scheme === false ? s : `oci://${s}`;
}

/** `oci://registry/repo:tag@sha256:...`: the reference pinned to what was pushed or pulled. */
export function pinnedReference(ref: Reference, digest: string): string {
  return formatReference({ ...ref, digest });
}
