// Registry authentication: where credentials come from (--creds, the containers and docker auth
// files) and how a 401 challenge (Bearer with realm/service/scope, or Basic) becomes a header.
import { readFile } from "node:fs/promises";
import path from "node:path";
import { ExtctlError } from "../../../util/errors.js";
import { DEFAULT_REGISTRY } from "../../oci/reference.js";
import { canonicalRegistryPath } from "../../oci/registry-host.js";

export interface Credentials {
  username: string;
  password: string;
  /** Where they came from, for messages ("--creds", "/root/.docker/config.json"). */
  origin: string;
}

export interface Challenge {
  /** Lower case: "bearer", "basic" or a scheme extctl does not speak. */
  scheme: string;
  params: Record<string, string>;
}

const MAX_AUTH_FILE = 1024 * 1024;

export function parseCreds(text: string): Credentials {
  const colon = text.indexOf(":");
  if (colon <= 0) {
    throw new ExtctlError("usage", "--creds must be USER:PASS (the user name must not be empty)");
  }
  return { username: text.slice(0, colon), password: text.slice(colon + 1), origin: "--creds" };
}

/** Parses a WWW-Authenticate header: `Bearer realm="...",service="...",scope="..."`. */
export function parseChallenge(header: string): Challenge | undefined {
  const m = /^\s*([A-Za-z][A-Za-z0-9_-]*)\s*(.*)$/s.exec(header);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  const re = /([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?\s*/gy;
  const rest = m[2] as string;
  re.lastIndex = 0;
  let p: RegExpExecArray | null;
  while (re.lastIndex < rest.length && (p = re.exec(rest)) !== null) {
    params[(p[1] as string).toLowerCase()] =
      p[2] !== undefined ? p[2].replace(/\\(.)/g, "$1") : (p[3] ?? "");
  }
  return { scheme: (m[1] as string).toLowerCase(), params };
}

/** Keys (canonical, see authKey) for one registry, most specific (repository-scoped) first. */
function candidateKeys(registry: string, repository: string): string[] {
  const keys: string[] = [];
  const parts = repository.split("/");
  for (let i = parts.length; i > 0; i--) keys.push(`${registry}/${parts.slice(0, i).join("/")}`);
  keys.push(registry);
  if (registry === DEFAULT_REGISTRY) keys.push("index.docker.io", "registry-1.docker.io");
  return keys;
}

/**
 * An auth file's key as host[/repository] with the host canonical (registry-host.ts), the way
 * references are: `https://LOCALHOST:05001/v2/` and `localhost:5001` are one registry.
 * Undefined for a key whose host cannot be normalised (it names no registry extctl talks to).
 */
function authKey(key: string): string | undefined {
  const bare = key
    .replace(/^https?:\/\//i, "")
    .replace(/\/v[12]\/?$/, "")
    .replace(/\/+$/, "");
  return canonicalRegistryPath(bare);
}

interface AuthEntry {
  auth?: unknown;
  username?: unknown;
  password?: unknown;
}

function decodeEntry(entry: AuthEntry, origin: string): Credentials | undefined {
  if (typeof entry.username === "string" && typeof entry.password === "string") {
    return { username: entry.username, password: entry.password, origin };
  }
  if (typeof entry.auth === "string" && entry.auth !== "") {
    const text = Buffer.from(entry.auth, "base64").toString("utf8");
    const colon = text.indexOf(":");
    if (colon > 0)
      return { username: text.slice(0, colon), password: text.slice(colon + 1), origin };
  }
  return undefined;
}

/** The auth files to read, in the order podman/skopeo and docker read them. */
export function authFiles(env: NodeJS.ProcessEnv): string[] {
  const files: string[] = [];
  if (env.REGISTRY_AUTH_FILE) files.push(env.REGISTRY_AUTH_FILE);
  if (env.XDG_RUNTIME_DIR) files.push(path.join(env.XDG_RUNTIME_DIR, "containers/auth.json"));
  const dockerDir = env.DOCKER_CONFIG ?? (env.HOME ? path.join(env.HOME, ".docker") : undefined);
  if (dockerDir) files.push(path.join(dockerDir, "config.json"));
  return files;
}

/** Finds stored credentials for a repository; files that are missing are skipped quietly. */
export async function lookupCredentials(
  registry: string,
  repository: string,
  env: NodeJS.ProcessEnv,
  warn: (message: string) => void = () => {},
): Promise<Credentials | undefined> {
  for (const file of authFiles(env)) {
    let text: string;
    try {
      const buf = await readFile(file);
      if (buf.length > MAX_AUTH_FILE) {
        warn(`ignoring ${file}: it is larger than ${MAX_AUTH_FILE} bytes`);
        continue;
      }
      text = buf.toString("utf8");
    } catch {
      continue;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      warn(`ignoring ${file}: it is not valid JSON`);
      continue;
    }
    const auths = (parsed as { auths?: unknown } | null)?.auths;
    if (typeof auths !== "object" || auths === null) continue;
    // Several spellings of one registry (host, https://host/v2/...): the first in the file wins.
    const table = new Map<string, AuthEntry>();
    for (const [key, entry] of Object.entries(auths as Record<string, AuthEntry>)) {
      const canonical = authKey(key);
      if (canonical !== undefined && !table.has(canonical)) table.set(canonical, entry);
    }
    for (const key of candidateKeys(registry, repository)) {
      const entry = table.get(key);
      if (entry && typeof entry === "object") {
        const creds = decodeEntry(entry, file);
        if (creds) return creds;
      }
    }
  }
  return undefined;
}

export function basicHeader(creds: Credentials): string {
  return `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString("base64")}`;
}

export interface Token {
  header: string;
  /** Epoch milliseconds after which the token must not be sent again. */
  expiresAt: number;
}

/** Reads a token server's JSON answer; tokens without expires_in live 60 s (distribution spec). */
export function parseTokenResponse(json: unknown, now = Date.now()): Token {
  const body = json as {
    token?: unknown;
    access_token?: unknown;
    expires_in?: unknown;
    issued_at?: unknown;
  };
  const token = typeof body?.token === "string" ? body.token : body?.access_token;
  if (typeof token !== "string" || token === "") {
    throw new ExtctlError("registry", "the registry's token server answered without a token");
  }
  const lifetime =
    typeof body.expires_in === "number" && body.expires_in > 0 ? body.expires_in : 60;
  let issued = now;
  if (typeof body.issued_at === "string") {
    const t = Date.parse(body.issued_at);
    // A token server with a skewed clock must not make us keep a token past its life.
    if (Number.isFinite(t) && t < now) issued = t;
  }
  // Renew a little early so a token does not expire between check and use.
  return { header: `Bearer ${token}`, expiresAt: issued + lifetime * 1000 - 5000 };
}
