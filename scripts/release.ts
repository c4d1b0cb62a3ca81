// `npm run release [-- --sign-key KEY --sign-cert CERT]`: writes dist/release/ for a node's image
// builder to pin and check: the one file per architecture (extctl-linux-amd64, -arm64, made by
// scripts/package-sea.ts on the pinned Node.js), a CycloneDX SBOM of what they carry (every npm
// package esbuild bundled and the Node.js runtime, with the registry's hashes), SHA256SUMS over
// all of them and, given a key and certificate, SHA256SUMS.p7s (detached CMS, DER), which
// `openssl cms -verify -binary -inform DER -in SHA256SUMS.p7s -content SHA256SUMS -CAfile CERT`
// accepts.
//
// `--no-code-cache`: the files carry no V8 code cache (see below; they start slower).
//
// Reproducible: no time stamps anywhere (the SBOM's serial number is derived from the files it
// describes, the signature carries no signed attributes, so no signing time), so two runs from
// the same commit, lockfile and runtime give the same bytes (with an RSA key; ECDSA signs with a
// random nonce, so then only SHA256SUMS.p7s differs) but for V8's code caches, which V8 does not
// write byte-stable from run to run; with --no-code-cache the whole release is byte-equal.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmod, copyFile, mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { pinnedRuntime, RELEASE_ARCH, NODE_ARCHES } from "./node-runtime.js";
import { packageSea } from "./package-sea.js";

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const OUT = path.join(REPO, "dist/release");
const SBOM = "extctl.cdx.json";

interface Lock {
  packages: Record<string, { version?: string; integrity?: string; resolved?: string }>;
}

/** An SRI string (sha512-BASE64) as CycloneDX's hash entry. */
function sriHash(integrity: string | undefined): Array<{ alg: string; content: string }> {
  const m = /^sha512-(.+)$/.exec(integrity ?? "");
  return m?.[1] ? [{ alg: "SHA-512", content: Buffer.from(m[1], "base64").toString("hex") }] : [];
}

function purlOf(name: string, version: string): string {
  return `pkg:npm/${name.startsWith("@") ? `%40${name.slice(1)}` : name}@${version}`;
}

function sha256(bytes: Buffer): string {
  return createHash("sha256").update(bytes).digest("hex");
}

function option(argv: readonly string[], flag: string): string | undefined {
  const i = argv.indexOf(flag);
  if (i < 0) return undefined;
  const value = argv[i + 1];
  if (!value) throw new Error(`${flag} needs a file`);
  return path.resolve(value);
}

async function main(argv: readonly string[]): Promise<void> {
  const key = option(argv, "--sign-key");
  const cert = option(argv, "--sign-cert");
  if ((key === undefined) !== (cert === undefined))
    throw new Error("--sign-key and --sign-cert go together");
  const pkg = JSON.parse(await readFile(path.join(REPO, "package.json"), "utf8")) as {
    version: string;
    license: string;
  };
  const lock = JSON.parse(await readFile(path.join(REPO, "package-lock.json"), "utf8")) as Lock;
  const runtime = await pinnedRuntime();

  await rm(OUT, { recursive: true, force: true });
  await mkdir(OUT, { recursive: true });
  const files: string[] = [];
  const packages = new Map<string, { name: string; version: string; dir: string }>();
  for (const arch of NODE_ARCHES) {
    const made = await packageSea([
      "--arch",
      arch,
      ...(argv.includes("--no-code-cache") ? ["--no-code-cache"] : []),
    ]);
    const name = `extctl-linux-${RELEASE_ARCH[arch]}`;
    await copyFile(made.file, path.join(OUT, name));
    await chmod(path.join(OUT, name), 0o755);
    files.push(name);
    for (const p of made.packages) packages.set(`${p.name}@${p.version}`, p);
  }

  // The SBOM: CycloneDX 1.5, one component per bundled npm package (as package-lock.json pins
  // it) and one per Node.js runtime package; the files themselves by their SHA-256.
  const fileHashes: Record<string, string> = {};
  for (const name of files) fileHashes[name] = sha256(await readFile(path.join(OUT, name)));
  const serial = sha256(Buffer.from(JSON.stringify(fileHashes)));
  const components = [
    ...NODE_ARCHES.map((arch) => ({
      type: "platform",
      "bom-ref": `node-linux-${arch}@${runtime.version}`,
      name: "node",
      version: runtime.version,
      description: `Node.js v${runtime.version} for linux-${RELEASE_ARCH[arch]} (npm package node-linux-${arch}), the runtime extctl-linux-${RELEASE_ARCH[arch]} embeds`,
      licenses: [{ license: { id: "MIT" } }],
      purl: purlOf(`node-linux-${arch}`, runtime.version),
      hashes: sriHash(runtime.integrity[arch]),
    })),
    ...(await Promise.all(
      [...packages.values()]
        .sort((a, b) => a.name.localeCompare(b.name) || a.version.localeCompare(b.version))
        .map(async (p) => {
          const meta = JSON.parse(
            await readFile(path.join(REPO, p.dir, "package.json"), "utf8"),
          ) as { license?: string };
          return {
            type: "library",
            "bom-ref": `${p.name}@${p.version}`,
            name: p.name,
            version: p.version,
            ...(meta.license ? { licenses: [{ license: { id: meta.license } }] } : {}),
            purl: purlOf(p.name, p.version),
            hashes: sriHash(lock.packages[p.dir]?.integrity),
          };
        }),
    )),
  ];
  const sbom = {
    bomFormat: "CycloneDX",
    specVersion: "1.5",
    serialNumber: `urn:uuid:${serial.slice(0, 8)}-${serial.slice(8, 12)}-5${serial.slice(13, 16)}-a${serial.slice(17, 20)}-${serial.slice(20, 32)}`,
    version: 1,
    metadata: {
      component: {
        type: "application",
        "bom-ref": `extctl@${pkg.version}`,
        name: "extctl",
        version: pkg.version,
        licenses: [{ license: { id: pkg.license } }],
      },
    },
    components: [
      ...files.map((name) => ({
        type: "file",
        "bom-ref": name,
        name,
        version: pkg.version,
        hashes: [{ alg: "SHA-256", content: fileHashes[name] }],
      })),
      ...components,
    ],
    dependencies: files.map((name) => ({
      ref: name,
      dependsOn: components
        .filter(
          (c) =>
            c.type === "library" || c["bom-ref"].includes(name.endsWith("arm64") ? "arm64" : "x64"),
        )
        .map((c) => c["bom-ref"]),
    })),
  };
  await writeFile(path.join(OUT, SBOM), `${JSON.stringify(sbom, null, 2)}\n`, { mode: 0o644 });
  files.push(SBOM);

  fileHashes[SBOM] = sha256(await readFile(path.join(OUT, SBOM)));

  // The man pages (docs/man, made from the command tree by `npm run man`) go beside the files:
  // an image builder copies man/*.8 to /usr/share/man/man8, which the units' Documentation= name.
  await mkdir(path.join(OUT, "man"), { recursive: true, mode: 0o755 });
  for (const page of (await readdir(path.join(REPO, "docs", "man")))
    .filter((f) => f.endsWith(".8"))
    .sort()) {
    const name = `man/${page}`;
    await copyFile(path.join(REPO, "docs", "man", page), path.join(OUT, name));
    await chmod(path.join(OUT, name), 0o644);
    fileHashes[name] = sha256(await readFile(path.join(OUT, name)));
    files.push(name);
  }

  const sums = files
    .slice()
    .sort()
    .map((name) => `${fileHashes[name]}  ${name}\n`)
    .join("");
  await writeFile(path.join(OUT, "SHA256SUMS"), sums, { mode: 0o644 });
  if (key && cert) {
    execFileSync("openssl", [
      "cms",
      "-sign",
      "-binary",
      "-noattr",
      "-md",
      "sha256",
      "-in",
      path.join(OUT, "SHA256SUMS"),
      "-signer",
      cert,
      "-inkey",
      key,
      "-outform",
      "DER",
      "-out",
      path.join(OUT, "SHA256SUMS.p7s"),
    ]);
    await chmod(path.join(OUT, "SHA256SUMS.p7s"), 0o644);
  }
  process.stdout.write(`wrote ${path.relative(REPO, OUT)}/:\n${sums}`);
}

await main(process.argv.slice(2));
