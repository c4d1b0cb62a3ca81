// `extctl sysext install oci://...` of a 512 MiB artifact from a local docker-registry (token auth)
// against curl of the same blob URL with the same kind of token, side by side (bench/lib.ts rows).
// Run: node --import tsx bench/oci.ts  (BENCH_OCI_MIB to change the size, BENCH_RUNS for runs).
import { createHash, randomBytes } from "node:crypto";
import { mkdir, open, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import type { TestContext } from "node:test";
import { pushArtifact } from "../src/domain/sources/oci/push.js";
import { createContext } from "../src/util/context.js";
import type { Logger } from "../src/util/log.js";
import { startRegistry } from "../test/helpers/registry.js";
import { benchDir, emitSkipped, extctl, sideBySide } from "./lib.js";

const MIB = Number(process.env.BENCH_OCI_MIB) || 512;
const NAME = `oci install ${MIB} MiB`;
const GOAL = 1.15;
const CREDS = "bench:bench";
const silent: Logger = { verbosity: "quiet", warn() {}, info() {}, debug() {} };

async function sha256File(file: string): Promise<string> {
  const hash = createHash("sha256");
  const handle = await open(file);
  try {
    for await (const chunk of handle.createReadStream()) hash.update(chunk as Buffer);
  } finally {
    await handle.close();
  }
  return `sha256:${hash.digest("hex")}`;
}

const cleanups: (() => unknown)[] = [];
const t = { after: (fn: () => unknown) => cleanups.push(fn) } as unknown as TestContext;
const dir = await benchDir("extctl-bench-oci-");
try {
  let registry;
  try {
    registry = await startRegistry(t, { kind: "token", users: { bench: "bench" } });
  } catch (e) {
    emitSkipped(NAME, "curl", GOAL, `cannot start docker-registry: ${(e as Error).message}`);
    process.exit(0);
  }
  const file = path.join(dir, "bench.sysext.raw");
  const handle = await open(file, "w");
  const block = randomBytes(1024 * 1024);
  for (let i = 0; i < MIB; i++) {
    block.writeUInt32LE(i, 0);
    // A squashfs magic up front: install stores only what dissects as an image (issue 12).
    if (i === 0) block.write("hsqs", 0, "latin1");
    await handle.write(block);
  }
  await handle.close();
  const reference = `oci://${registry.host}/bench/ext:1`;
  const pushed = await pushArtifact(createContext({ log: silent, env: {} }), {
    file,
    reference,
    insecureRegistries: [registry.host],
    creds: CREDS,
  });
  await rm(file);
  const blobUrl = `${registry.url}/v2/bench/ext/blobs/${pushed.layer.digest}`;

  // curl gets the token extctl would get (pull scope on the repository), fetched fresh before
  // each run and outside its timing: the tokens live five minutes.
  const challenge = await fetch(`${registry.url}/v2/`);
  const realm = /realm="([^"]+)"/.exec(challenge.headers.get("www-authenticate") ?? "")?.[1];
  const tokenUrl = `${realm}?service=extctl-test-registry&scope=repository:bench/ext:pull`;
  const headerFile = path.join(dir, "auth-header");
  const freshToken = async () => {
    const res = await fetch(tokenUrl, {
      headers: { authorization: `Basic ${Buffer.from(CREDS).toString("base64")}` },
    });
    const { token } = (await res.json()) as { token: string };
    await writeFile(headerFile, `Authorization: Bearer ${token}\n`);
  };

  const root = path.join(dir, "root");
  await mkdir(root, { recursive: true });
  const stored = path.join(root, "var/lib/kairos/extensions/bench.sysext.raw");
  const out = path.join(dir, "curl-out.raw");
  const ours = {
    argv: extctl(
      "--root",
      root,
      "sysext",
      "install",
      reference,
      "--insecure-registry",
      registry.host,
      "--creds",
      CREDS,
    ),
    before: () => rm(stored, { force: true }),
  };
  const curlArgs = ["-sS", "--fail", "-H", `@${headerFile}`, "-o", out, blobUrl];
  const beforeCurl = async () => {
    await rm(out, { force: true });
    await freshToken();
  };
  await sideBySide({
    name: NAME,
    goal: GOAL,
    peerName: "curl",
    extctl: ours,
    peer: { argv: ["curl", ...curlArgs], before: beforeCurl },
    note: "docker-registry with token auth; extctl gets its token, checks size and digest and fsyncs; curl only writes",
  });
  await sideBySide({
    name: `${NAME} (durable)`,
    goal: GOAL,
    peerName: "curl + sync FILE",
    extctl: ours,
    peer: {
      argv: ["sh", "-c", 'curl "$@" && sync "$0"', out, ...curlArgs],
      before: beforeCurl,
    },
    note: "both end with the file on disk (fsync)",
  });
  // The same work as extctl with the best C tools: the digest computed while the bytes pass
  // (openssl, which uses the CPU's SHA instructions as Node does; coreutils sha256sum does not), then the file made durable.
  await sideBySide({
    name: `${NAME} (same work)`,
    goal: GOAL,
    peerName: "curl | tee FILE | openssl dgst; sync FILE",
    extctl: ours,
    peer: {
      argv: [
        "bash",
        "-c",
        'set -o pipefail; curl -sS --fail -H "@$1" "$2" | tee "$0" | openssl dgst -sha256 >/dev/null && sync "$0"',
        out,
        headerFile,
        blobUrl,
      ],
      before: beforeCurl,
    },
    note: "both hash while the bytes pass and end with the file on disk",
  });
  // Outside the timing: what the last run stored is the pushed blob.
  if ((await sha256File(stored)) !== pushed.layer.digest) {
    throw new Error(`the stored file is not the blob ${pushed.layer.digest}`);
  }
} finally {
  for (const fn of cleanups.reverse()) await fn();
}
