// Benchmark: install of a 512 MiB artifact from a local docker-registry (token auth) against curl
// fetching the same blob URL with the same token, side by side; prints the median ratio and RSS.
// extctl fsyncs what it stores and curl does not, so curl is timed both alone and followed by
// `sync FILE`. Run: node --import tsx bench/oci.ts [--size-mib N] [--runs N] [--dir DIR]
import { execFile, spawnSync } from "node:child_process";
import { promisify } from "node:util";
import { createHash, randomBytes } from "node:crypto";
import { mkdir, mkdtemp, open, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { TestContext } from "node:test";
import { pushArtifact } from "../src/domain/sources/oci/push.js";
import { createContext } from "../src/util/context.js";
import type { Logger } from "../src/util/log.js";
import { startRegistry } from "../test/helpers/registry.js";

const silent: Logger = { verbosity: "quiet", warn() {}, info() {}, debug() {} };

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

function argText(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 ? (process.argv[i + 1] ?? fallback) : fallback;
}

/**
 * One install in a fresh process running the built dist/ (as the CLI would), so tsx's on-the-fly
 * compiling is neither timed nor counted in the peak RSS.
 */
const CHILD = `
const [uri, storeDir, host, creds, dist] = process.argv.slice(1);
const { ociSource } = await import(dist + "/domain/sources/oci/index.js");
const { createContext } = await import(dist + "/util/context.js");
const log = { verbosity: "quiet", warn() {}, info() {}, debug() {} };
const ctx = createContext({ log, env: {} });
await ociSource.fetch(ctx, { uri, kind: "sysext", storeDir, insecureRegistries: [host], creds });
process.stdout.write(JSON.stringify({ maxRssKiB: process.resourceUsage().maxRSS }) + "\\n");
`;

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

async function main(): Promise<void> {
  const sizeMiB = arg("--size-mib", 512);
  const runs = arg("--runs", 5);
  const cleanups: (() => unknown)[] = [];
  const t = { after: (fn: () => unknown) => cleanups.push(fn) } as unknown as TestContext;
  const work = await mkdtemp(path.join(argText("--dir", tmpdir()), "extctl-bench-oci-"));
  cleanups.push(() => rm(work, { recursive: true, force: true }));
  try {
    const creds = "bench:bench";
    const registry = await startRegistry(t, { kind: "token", users: { bench: "bench" } });
    const file = path.join(work, "bench.sysext.raw");
    const handle = await open(file, "w");
    const block = randomBytes(1024 * 1024);
    for (let i = 0; i < sizeMiB; i++) {
      block.writeUInt32LE(i, 0);
      await handle.write(block);
    }
    await handle.close();
    const ctx = createContext({ log: silent, env: {} });
    const pushed = await pushArtifact(ctx, {
      file,
      reference: `oci://${registry.host}/bench/ext:1`,
      insecureRegistries: [registry.host],
      creds,
    });
    await rm(file);
    const blobUrl = `${registry.url}/v2/bench/ext/blobs/${pushed.layer.digest}`;

    // The same token curl and extctl would get: pull scope on the repository.
    const challenge = await fetch(`${registry.url}/v2/`);
    const realm = /realm="([^"]+)"/.exec(challenge.headers.get("www-authenticate") ?? "")?.[1];
    const tokenUrl = `${realm}?service=extctl-test-registry&scope=repository:bench/ext:pull`;
    const tokenRes = await fetch(tokenUrl, {
      headers: { authorization: `Basic ${Buffer.from(creds).toString("base64")}` },
    });
    const { token } = (await tokenRes.json()) as { token: string };

    const curlMs: number[] = [];
    const curlSyncMs: number[] = [];
    const oursMs: number[] = [];
    const rss: number[] = [];
    for (let i = 0; i < runs; i++) {
      const out = path.join(work, "curl.raw");
      const start = process.hrtime.bigint();
      const curl = spawnSync(
        "curl",
        ["-sSf", "-H", `Authorization: Bearer ${token}`, "-o", out, blobUrl],
        { stdio: ["ignore", "ignore", "pipe"] },
      );
      curlMs.push(Number(process.hrtime.bigint() - start) / 1e6);
      if (curl.status !== 0) throw new Error(`curl failed: ${curl.stderr.toString()}`);
      spawnSync("sync", [out]);
      curlSyncMs.push(Number(process.hrtime.bigint() - start) / 1e6);
      await rm(out);

      const storeDir = path.join(work, `store-${i}`);
      await mkdir(storeDir);
      // Asynchronously: the token server lives in this process and must keep answering.
      let stdout: string;
      let ms: number;
      try {
        const started = process.hrtime.bigint();
        ({ stdout } = await promisify(execFile)(
          process.execPath,
          [
            "--input-type=module",
            "-e",
            CHILD,
            `oci://${registry.host}/bench/ext:1`,
            storeDir,
            registry.host,
            creds,
            path.resolve("dist"),
          ],
          { encoding: "utf8", maxBuffer: 1024 * 1024 },
        ));
        ms = Number(process.hrtime.bigint() - started) / 1e6;
      } catch (e) {
        throw new Error(`install failed: ${(e as { stderr?: string }).stderr ?? String(e)}`);
      }
      const { maxRssKiB } = JSON.parse(stdout.trim().split("\n").at(-1) as string) as {
        maxRssKiB: number;
      };
      oursMs.push(ms);
      rss.push(maxRssKiB / 1024);
      if (i === 0) {
        // Check once, outside the timing, that the stored file is the pushed blob.
        const hash = createHash("sha256");
        const fh = await open(path.join(storeDir, "bench.sysext.raw"));
        for await (const chunk of fh.createReadStream()) hash.update(chunk as Buffer);
        if (`sha256:${hash.digest("hex")}` !== pushed.layer.digest) throw new Error("bad bytes");
      }
      await rm(storeDir, { recursive: true });
      console.log(
        `run ${i + 1}: curl ${curlMs[i]?.toFixed(0)} ms (+sync ${curlSyncMs[i]?.toFixed(0)} ms), extctl ${ms.toFixed(0)} ms (whole process, digest checked), peak RSS ${(maxRssKiB / 1024).toFixed(0)} MiB`,
      );
    }
    const ratio = median(oursMs) / median(curlMs);
    const ratioSync = median(oursMs) / median(curlSyncMs);
    const mibps = (ms: number) => (sizeMiB / (ms / 1000)).toFixed(0);
    console.log(
      `\noci install of ${sizeMiB} MiB: extctl median ${median(oursMs).toFixed(0)} ms (${mibps(median(oursMs))} MiB/s), ` +
        `curl median ${median(curlMs).toFixed(0)} ms (${mibps(median(curlMs))} MiB/s)`,
    );
    console.log(`ratio extctl/curl: ${ratio.toFixed(3)} (goal <= 1.15)`);
    console.log(
      `ratio extctl/(curl + sync FILE): ${ratioSync.toFixed(3)} (both durable on disk; curl+sync median ${median(curlSyncMs).toFixed(0)} ms)`,
    );
    console.log(`peak RSS: ${Math.max(...rss).toFixed(0)} MiB (goal <= 150 MiB)`);
  } finally {
    for (const fn of cleanups.reverse()) await fn();
  }
}

await main();
