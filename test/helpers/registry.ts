// Real OCI registries for end-to-end tests: docker-registry on 127.0.0.1 with no auth, htpasswd
// or token auth (a token server signing ES256 JWTs), a byte-flipping proxy, and OCI layouts.
import { spawn, type ChildProcess } from "node:child_process";
import { createHash, createPrivateKey, randomBytes, sign, X509Certificate } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import http from "node:http";
import net from "node:net";
import path from "node:path";
import type { TestContext } from "node:test";
import { gzipSync } from "node:zlib";
import type { LayerCompression } from "../../src/domain/oci/layer.js";
import { run } from "./peers.js";
import { tempDir } from "./tmp.js";

export interface Registry {
  /** host:port, e.g. 127.0.0.1:40123 */
  host: string;
  url: string;
  pid: number;
  dir: string;
  /** Token requests served (token auth only). */
  tokenRequests: () => number;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
    server.on("error", reject);
  });
}

async function waitForHttp(url: string, child: ChildProcess, stderr: () => string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited: ${stderr()}`);
    try {
      const res = await fetch(url);
      await res.arrayBuffer();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`docker-registry did not answer on ${url}: ${stderr()}`);
}

/** Waits until the port accepts connections (a TLS registry, whose CA fetch() does not trust). */
async function waitForPort(port: number, child: ChildProcess, stderr: () => string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited: ${stderr()}`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, "127.0.0.1", () => {
        socket.end();
        resolve(true);
      });
      socket.on("error", () => resolve(false));
    });
    if (open) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`docker-registry did not listen on ${port}: ${stderr()}`);
}

function stopOnEnd(t: TestContext, child: ChildProcess): void {
  t.after(
    () =>
      new Promise<void>((resolve) => {
        // A registry a test stopped itself (a signal: exitCode stays null) has exited already.
        if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined)
          return resolve();
        child.once("exit", () => resolve());
        process.kill(child.pid, "SIGTERM");
      }),
  );
}

function base64url(data: Buffer | string): string {
  return Buffer.from(data).toString("base64url");
}

interface TokenServer {
  realm: string;
  certFile: string;
  requests: () => number;
}

/**
 * A token server in the shape docker-registry's auth.token expects: it signs ES256 JWTs with a
 * throwaway key whose self-signed certificate is the registry's root bundle. With `users`, a
 * request must carry one of them as Basic auth; pull and push are granted to any valid user.
 */
async function startTokenServer(
  t: TestContext,
  dir: string,
  service: string,
  issuer: string,
  users: Record<string, string>,
  tokenLifetime: number,
): Promise<TokenServer> {
  const keyFile = path.join(dir, "token.key");
  const certFile = path.join(dir, "token.crt");
  run("openssl", [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    keyFile,
    "-out",
    certFile,
    "-days",
    "2",
    "-subj",
    "/CN=extctl-test-token-signer",
  ]);
  const key = createPrivateKey(await readFile(keyFile));
  const certDer = new X509Certificate(await readFile(certFile)).raw;
  let requests = 0;
  const server = http.createServer((req, res) => {
    requests++;
    const url = new URL(req.url ?? "/", "http://x");
    const auth = req.headers.authorization;
    let user: string | undefined;
    if (auth?.startsWith("Basic ")) {
      const [u, p] = Buffer.from(auth.slice(6), "base64").toString().split(":");
      if (u !== undefined && users[u] === p) user = u;
      else {
        res.writeHead(401).end();
        return;
      }
    }
    if (Object.keys(users).length > 0 && user === undefined) {
      res.writeHead(401).end();
      return;
    }
    const access = url.searchParams
      .getAll("scope")
      .map((s) => s.split(":"))
      .filter((p) => p.length === 3 && p[0] === "repository")
      .map(([type, name, actions]) => ({ type, name, actions: (actions as string).split(",") }));
    const now = Math.floor(Date.now() / 1000);
    const header = { alg: "ES256", typ: "JWT", x5c: [certDer.toString("base64")] };
    const claims = {
      iss: issuer,
      sub: user ?? "",
      aud: url.searchParams.get("service") ?? service,
      exp: now + tokenLifetime,
      nbf: now - 10,
      iat: now,
      jti: randomBytes(8).toString("hex"),
      access,
    };
    const input = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
    const signature = sign("sha256", Buffer.from(input), { key, dsaEncoding: "ieee-p1363" });
    res.writeHead(200, { "content-type": "application/json" });
    res.end(
      JSON.stringify({
        token: `${input}.${base64url(signature)}`,
        expires_in: tokenLifetime,
        issued_at: new Date().toISOString(),
      }),
    );
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  const port = (server.address() as net.AddressInfo).port;
  return { realm: `http://127.0.0.1:${port}/token`, certFile, requests: () => requests };
}

export type RegistryAuth =
  | { kind: "none" }
  | { kind: "htpasswd"; users: Record<string, string> }
  | { kind: "token"; users?: Record<string, string>; tokenLifetime?: number };

/** Starts docker-registry on a free 127.0.0.1 port with its own storage; stopped when `t` ends. */
export async function startRegistry(
  t: TestContext,
  auth: RegistryAuth = { kind: "none" },
  /** Serve https with this certificate and key (PEM files) instead of plain http. */
  tls?: { cert: string; key: string },
): Promise<Registry> {
  const dir = await tempDir(t, "extctl-registry-");
  const port = await freePort();
  let authYaml = "";
  let tokenRequests = () => 0;
  if (auth.kind === "htpasswd") {
    const lines = Object.entries(auth.users).map(([u, p]) =>
      run("htpasswd", ["-Bbn", u, p]).trim(),
    );
    await writeFile(path.join(dir, "htpasswd"), lines.join("\n") + "\n");
    authYaml = `auth:\n  htpasswd:\n    realm: extctl-test\n    path: ${path.join(dir, "htpasswd")}\n`;
  } else if (auth.kind === "token") {
    const token = await startTokenServer(
      t,
      dir,
      "extctl-test-registry",
      "extctl-test-issuer",
      auth.users ?? {},
      auth.tokenLifetime ?? 300,
    );
    tokenRequests = token.requests;
    authYaml =
      `auth:\n  token:\n    realm: ${token.realm}\n    service: extctl-test-registry\n` +
      `    issuer: extctl-test-issuer\n    rootcertbundle: ${token.certFile}\n`;
  }
  const config = `version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: ${path.join(dir, "data")}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:${port}
  secret: ${randomBytes(16).toString("hex")}
${tls ? `  tls:\n    certificate: ${tls.cert}\n    key: ${tls.key}\n` : ""}${authYaml}`;
  await mkdir(path.join(dir, "data"));
  await writeFile(path.join(dir, "config.yml"), config);
  const child = spawn("docker-registry", ["serve", path.join(dir, "config.yml")], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr?.on("data", (b: Buffer) => {
    if (stderr.length < 64 * 1024) stderr += b.toString();
  });
  stopOnEnd(t, child);
  const host = `127.0.0.1:${port}`;
  if (tls) await waitForPort(port, child, () => stderr);
  else await waitForHttp(`http://${host}/v2/`, child, () => stderr);
  const url = `${tls ? "https" : "http"}://${host}`;
  return { host, url, pid: child.pid as number, dir, tokenRequests };
}

/** What a tampering proxy does to a blob body: the chunk to send on, or "cut" to drop the line. */
type Tamper = (chunk: Buffer, at: number, length: number, blobGet: number) => Buffer | "cut";

export interface TamperingProxy {
  host: string;
  /** The Range header of every blob GET relayed ("" when there was none). */
  blobRanges: string[];
}

/** A plain-http proxy in front of a registry that lets `tamper` touch blob bodies on the way. */
async function startTamperingProxy(
  t: TestContext,
  target: string,
  tamper: Tamper,
): Promise<TamperingProxy> {
  const upstream = new URL(target);
  const blobRanges: string[] = [];
  const server = http.createServer((req, res) => {
    const isBlob = /\/blobs\/sha256:/.test(req.url ?? "") && req.method === "GET";
    if (isBlob) blobRanges.push(req.headers.range ?? "");
    const blobGet = blobRanges.length;
    const forward = http.request(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: upstream.host },
      },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        const length = Number(up.headers["content-length"] ?? "0");
        let seen = 0;
        up.on("data", (chunk: Buffer) => {
          const out = isBlob ? tamper(chunk, seen, length, blobGet) : chunk;
          seen += chunk.length;
          if (out === "cut") {
            up.destroy();
            res.socket?.destroy();
          } else res.write(out);
        });
        up.on("end", () => res.end());
      },
    );
    forward.on("error", () => res.destroy());
    req.pipe(forward);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  t.after(() => {
    server.closeAllConnections();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return { host: `127.0.0.1:${(server.address() as net.AddressInfo).port}`, blobRanges };
}

/**
 * A proxy in front of a registry that flips one byte in the middle of every blob body it
 * relays (manifests pass untouched), to prove corruption is caught on the way.
 */
export async function startCorruptingProxy(t: TestContext, target: string): Promise<string> {
  const proxy = await startTamperingProxy(t, target, (chunk, at, length) => {
    const flipAt = Math.floor(length / 2);
    if (flipAt < at || flipAt >= at + chunk.length) return chunk;
    const copy = Buffer.from(chunk);
    copy[flipAt - at] = (copy[flipAt - at] as number) ^ 0xff;
    return copy;
  });
  return proxy.host;
}

/**
 * A proxy that cuts the connection of the first blob GET once about half the body has passed;
 * later requests (a resume with Range) go through untouched.
 */
export function startCuttingProxy(t: TestContext, target: string): Promise<TamperingProxy> {
  return startTamperingProxy(t, target, (chunk, at, length, blobGet) =>
    blobGet === 1 && at + chunk.length > length / 2 ? "cut" : chunk,
  );
}

// ---- OCI image layouts made at test time, for skopeo to push ----

export interface LayerFile {
  name: string;
  data?: Buffer | string;
  type?: "file" | "directory" | "symlink";
  linkname?: string;
}

/** A tar archive of the given entries (names written exactly as given, even hostile ones). */
export async function makeTar(files: readonly LayerFile[]): Promise<Buffer> {
  const tar = await import("tar-stream");
  const pack = tar.pack();
  for (const f of files) {
    const type = f.type ?? "file";
    if (type === "file") {
      pack.entry({ name: f.name, mode: 0o644, mtime: new Date(0) }, Buffer.from(f.data ?? ""));
    } else if (type === "directory") {
      pack.entry({ name: f.name, type, mode: 0o755, mtime: new Date(0) });
    } else {
      pack.entry({ name: f.name, type, linkname: f.linkname ?? "", mtime: new Date(0) });
    }
  }
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

export interface ImageSpec {
  /** `blob`: the layer's bytes exactly as given (hostile ones), instead of files packed and compressed. */
  layers: { files: LayerFile[]; compression?: LayerCompression; blob?: Buffer }[];
  platform?: { os: string; architecture: string; variant?: string };
}

function digestOf(data: Buffer): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

async function writeBlob(layout: string, data: Buffer): Promise<{ digest: string; size: number }> {
  const digest = digestOf(data);
  await writeFile(path.join(layout, "blobs/sha256", digest.slice(7)), data);
  return { digest, size: data.length };
}

async function writeImage(layout: string, spec: ImageSpec) {
  const layers = [];
  const diffIds = [];
  for (const layer of spec.layers) {
    const tar = await makeTar(layer.files);
    diffIds.push(digestOf(tar));
    const compression = layer.compression ?? "gzip";
    let data = tar;
    let mediaType = "application/vnd.oci.image.layer.v1.tar";
    if (layer.blob) {
      data = layer.blob;
      if (compression !== "none") mediaType += `+${compression}`;
    } else if (compression === "gzip") {
      data = gzipSync(tar);
      mediaType += "+gzip";
    } else if (compression === "zstd") {
      const { compress } = await import("zstd-napi");
      data = compress(tar);
      mediaType += "+zstd";
    }
    layers.push({ mediaType, ...(await writeBlob(layout, data)) });
  }
  const platform = spec.platform ?? { os: "linux", architecture: "amd64" };
  const config = Buffer.from(
    JSON.stringify({
      ...platform,
      config: {},
      rootfs: { type: "layers", diff_ids: diffIds },
      history: [],
    }),
  );
  const configDesc = {
    mediaType: "application/vnd.oci.image.config.v1+json",
    ...(await writeBlob(layout, config)),
  };
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: configDesc,
      layers,
    }),
  );
  return {
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    ...(await writeBlob(layout, manifest)),
    platform,
  };
}

/**
 * Writes an OCI layout holding one image, or a multi-arch index when given several, under the
 * tag "test"; push it with skopeo (pushLayout).
 */
export async function makeLayout(t: TestContext, images: readonly ImageSpec[]): Promise<string> {
  const layout = await tempDir(t, "extctl-layout-");
  await mkdir(path.join(layout, "blobs/sha256"), { recursive: true });
  await writeFile(path.join(layout, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  const manifests = [];
  for (const spec of images) manifests.push(await writeImage(layout, spec));
  let top;
  if (manifests.length === 1) {
    const { platform: _p, ...desc } = manifests[0] as (typeof manifests)[number];
    top = desc;
  } else {
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.index.v1+json",
        manifests,
      }),
    );
    top = {
      mediaType: "application/vnd.oci.image.index.v1+json",
      ...(await writeBlob(layout, index)),
    };
  }
  await writeFile(
    path.join(layout, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{ ...top, annotations: { "org.opencontainers.image.ref.name": "test" } }],
    }),
  );
  return layout;
}

/** `skopeo copy [--all] oci:LAYOUT:test docker://HOST/REPO` over plain http. */
export function pushLayout(
  layout: string,
  dest: string,
  options: { all?: boolean; creds?: string } = {},
): void {
  const args = ["copy", "--quiet", "--dest-tls-verify=false"];
  if (options.all) args.push("--all");
  if (options.creds) args.push("--dest-creds", options.creds);
  args.push(`oci:${layout}:test`, `docker://${dest}`);
  run("skopeo", args);
}

/** `skopeo inspect --raw` of what a registry holds (over plain http). */
export function inspectRaw(ref: string, creds?: string): string {
  const args = ["inspect", "--raw", "--tls-verify=false"];
  if (creds) args.push("--creds", creds);
  args.push(`docker://${ref}`);
  return run("skopeo", args);
}
