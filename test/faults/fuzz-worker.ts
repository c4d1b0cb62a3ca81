// The fuzzer itself (run by fuzz.test.ts in a child process so that a hang or a memory blow-up is
// caught from outside): mutates valid seeds and feeds every parser that exists in src/.
//
// Entry points expected (each is skipped, and said so, while its module does not exist yet):
//   image/os-release parseOsRelease(text)       store/names resolveName(query, names, {where})
//   sources/uri schemeOf/filePathOf/httpFileName/checkStoreName(text)
//   oci/reference parseReference(text)  oci/manifest parseImageManifest/parseIndex
//   image/gpt readGpt(ByteSource)                image/squashfs/reader openSquashfs(ByteSource)
//   image/erofs/reader openErofs(ByteSource)     trust/verity-superblock parseVeritySuperblock(buf)
//   trust/signature parseSignaturePartition(buf) trust/efi parseSignatureLists(buf)
//   apply/schema parseApplySpec(text, file)      sources/http1 bulkGet (over a local socket)
// A parser may reject any input with an ExtctlError; anything else thrown is a crash.
import { execFileSync } from "node:child_process";
import { randomBytes, randomInt } from "node:crypto";
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";

const BUDGET_MS = Number(process.env.FUZZ_MS_PER_TARGET) || 1500;
const SRC = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../../src");

type Input = Buffer;
interface Target {
  name: string;
  module: string;
  seeds: () => Input[];
  call: (mod: Record<string, unknown>, input: Input) => unknown;
  /** Rejections that are not crashes, besides ExtctlError (e.g. coded network errors). */
  rejects?: (e: unknown) => boolean;
}

const scratch = mkdtempSync(path.join(os.tmpdir(), "extctl-fuzz-"));
process.on("exit", () => rmSync(scratch, { recursive: true, force: true }));

function tool(cmd: string, args: string[]): boolean {
  try {
    execFileSync(cmd, args, { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

function tree(): string {
  const dir = path.join(scratch, "tree");
  mkdirSync(path.join(dir, "usr/lib/extension-release.d"), { recursive: true });
  mkdirSync(path.join(dir, "usr/share/fuzz/deep/er"), { recursive: true });
  writeFileSync(path.join(dir, "usr/lib/extension-release.d/extension-release.fuzz"), "ID=_any\n");
  writeFileSync(path.join(dir, "usr/share/fuzz/deep/er/file"), "x".repeat(9000));
  for (let i = 0; i < 20; i++) writeFileSync(path.join(dir, `usr/share/fuzz/f${i}`), `${i}\n`);
  return dir;
}

function imageSeed(make: (out: string) => boolean, name: string): Input[] {
  const out = path.join(scratch, name);
  return make(out) ? [readFileSync(out)] : [];
}

function bytes(buf: Buffer) {
  return {
    size: buf.length,
    readAt: async (offset: number, length: number) =>
      buf.subarray(Math.max(0, offset), Math.max(0, offset + length)),
  };
}

async function walkAll(fs: {
  root(): Promise<unknown>;
  list(d: unknown): Promise<unknown[]>;
  read(e: unknown): AsyncIterable<Buffer>;
}): Promise<void> {
  const pending = [await fs.root()];
  let visited = 0;
  while (pending.length > 0 && visited < 500) {
    const entry = pending.pop() as { type?: string };
    visited++;
    if (entry.type === "directory") pending.push(...(await fs.list(entry)));
    else if (entry.type === "file") for await (const _ of fs.read(entry)) void _;
  }
}

/**
 * A server on 127.0.0.1 that answers each connection with the next queued bytes and closes: a
 * fuzzed HTTP response reaches the real socket code of http1.ts, and every input ends (EOF).
 */
interface Responder {
  port: number;
  queue: Buffer[];
}
let responder: Promise<Responder> | undefined;
function startResponder(): Promise<Responder> {
  const queue: Buffer[] = [];
  const server = net.createServer((socket) => {
    socket.on("error", () => {});
    socket.once("data", () => socket.end(queue.shift() ?? Buffer.alloc(0)));
  });
  server.unref();
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () =>
      resolve({ port: (server.address() as net.AddressInfo).port, queue }),
    ),
  );
}

const text = (s: string) => Buffer.from(s);
const str = (b: Buffer) => b.toString("latin1");

const TARGETS: Target[] = [
  {
    name: "os-release",
    module: "domain/image/os-release.js",
    seeds: () => [
      text("ID=debian\nVERSION_ID=\"12\"\nSYSEXT_LEVEL=1.0\nARCHITECTURE=x86-64\n# c\nX='a b'\\\n"),
    ],
    call: (m, i) => (m.parseOsRelease as (t: string) => unknown)(str(i)),
  },
  {
    name: "name matching",
    module: "domain/store/names.js",
    seeds: () => [text("tool"), text("nvidia+cuda.sysext.raw"), text("(a|b)*.raw")],
    call: (m, i) =>
      (m.resolveName as (q: string, n: string[], o: object) => unknown)(
        str(i),
        ["tool.sysext.raw", "tool-agent.raw", "nvidia+cuda.raw", "non-fips.raw"],
        { where: "the store", regex: i.length % 2 === 0 },
      ),
  },
  {
    name: "URI parsing",
    module: "domain/sources/uri.js",
    seeds: () => [
      text("https://h.example:8443/a/b%20c.raw?x#y"),
      text("file:///x/y.raw"),
      text("oci://r/n:t"),
    ],
    call: (m, i) => {
      const s = str(i);
      for (const f of ["schemeOf", "filePathOf", "httpFileName"] as const) {
        try {
          (m[f] as (t: string) => unknown)(s);
        } catch (e) {
          if ((e as Error).name !== "ExtctlError") throw e;
        }
      }
      return (m.checkStoreName as (n: string, f: string) => unknown)(s, "fuzz");
    },
  },
  {
    name: "OCI reference",
    module: "domain/oci/reference.js",
    seeds: () => [
      text("oci://localhost:5000/a/b:tag@sha256:" + "a".repeat(64)),
      text("ghcr.io/x/y"),
    ],
    call: (m, i) => (m.parseReference as (t: string) => unknown)(str(i)),
  },
  {
    name: "OCI manifest and index",
    module: "domain/oci/manifest.js",
    seeds: () => [
      text(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          artifactType: "application/vnd.kairos.sysext.raw",
          config: {
            mediaType: "application/vnd.oci.empty.v1+json",
            digest: "sha256:" + "4".repeat(64),
            size: 2,
          },
          layers: [
            {
              mediaType: "application/octet-stream",
              digest: "sha256:" + "5".repeat(64),
              size: 10,
              annotations: { "org.opencontainers.image.title": "x.raw" },
            },
          ],
        }),
      ),
      text(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: "application/vnd.oci.image.index.v1+json",
          manifests: [
            {
              mediaType: "application/vnd.oci.image.manifest.v1+json",
              digest: "sha256:" + "6".repeat(64),
              size: 5,
              platform: { os: "linux", architecture: "amd64" },
            },
          ],
        }),
      ),
    ],
    call: (m, i) => {
      let json: unknown;
      try {
        json = JSON.parse(str(i));
      } catch {
        return; // not JSON: the client rejects it before the parser
      }
      if (typeof json !== "object" || json === null || Array.isArray(json)) return;
      const { mediaType } = json as { mediaType?: unknown };
      const mt = typeof mediaType === "string" ? mediaType : "";
      return /index|list/.test(mt)
        ? (m.parseIndex as (a: string, b: object) => unknown)(mt, json)
        : (m.parseImageManifest as (a: string, b: object) => unknown)(mt, json);
    },
  },
  {
    name: "GPT",
    module: "domain/image/gpt.js",
    seeds: () =>
      imageSeed((out) => {
        writeFileSync(out, Buffer.alloc(128 << 10));
        const table = "label: gpt\\nfirst-lba: 34\\nstart=34, size=64, type=L\\n";
        return tool("sh", ["-c", `printf '${table}' | sfdisk -q "$0"`, out]);
      }, "gpt.img"),
    call: async (m, i) => (m.readGpt as (s: object) => Promise<unknown>)(bytes(i)),
  },
  {
    name: "squashfs",
    module: "domain/image/squashfs/reader.js",
    seeds: () =>
      imageSeed(
        (out) => tool("mksquashfs", [tree(), out, "-noappend", "-all-root", "-quiet"]),
        "fs.squashfs",
      ),
    call: async (m, i) =>
      walkAll(await (m.openSquashfs as (s: object) => Promise<never>)(bytes(i))),
  },
  {
    name: "erofs",
    module: "domain/image/erofs/reader.js",
    seeds: () => imageSeed((out) => tool("mkfs.erofs", ["-zlz4", out, tree()]), "fs.erofs"),
    call: async (m, i) => walkAll(await (m.openErofs as (s: object) => Promise<never>)(bytes(i))),
  },
  {
    name: "verity superblock",
    module: "domain/trust/verity-superblock.js",
    seeds: () =>
      imageSeed((out) => {
        writeFileSync(`${out}.data`, randomBytes(64 << 10));
        return tool("veritysetup", ["format", `${out}.data`, out]);
      }, "verity.hash").map((b) => b.subarray(0, 512)),
    call: (m, i) => (m.parseVeritySuperblock as (b: Buffer, w: string) => unknown)(i, "fuzz"),
  },
  {
    name: "signature JSON",
    module: "domain/trust/signature.js",
    seeds: () => [
      text(
        JSON.stringify({
          rootHash: "ab".repeat(32),
          signature: randomBytes(64).toString("base64"),
        }),
      ),
    ],
    call: (m, i) => (m.parseSignaturePartition as (b: Buffer, w: string) => unknown)(i, "fuzz"),
  },
  {
    name: "EFI signature lists",
    module: "domain/trust/efi.js",
    seeds: () => {
      // EFI_CERT_X509_GUID a5c059a1-94e4-4aa7-87b5-ab155c2bf072, one entry: owner + "cert" bytes.
      const guid = Buffer.from("a159c0a5e494a74a87b5ab155c2bf072", "hex");
      const cert = randomBytes(40);
      const head = Buffer.alloc(28);
      guid.copy(head, 0);
      head.writeUInt32LE(28 + 16 + cert.length, 16);
      head.writeUInt32LE(0, 20);
      head.writeUInt32LE(16 + cert.length, 24);
      return [Buffer.concat([head, randomBytes(16), cert])];
    },
    call: (m, i) => (m.parseSignatureLists as (b: Buffer, w: string) => unknown)(i, "fuzz"),
  },
  {
    name: "HTTP/1.1 responses",
    module: "domain/sources/http1.js",
    seeds: () => [
      text("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX: a\r\n\r\nhello"),
      text("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 206 Partial\r\nContent-Length: 3\r\n\r\nabc"),
      text(
        "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n10\r\n" +
          "0123456789abcdef\r\n0\r\nT: 1\r\n\r\n",
      ),
      text('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n{"errors":[]}'),
    ],
    call: async (m, i) => {
      responder ??= startResponder();
      const { port, queue } = await responder;
      queue.push(i);
      const bulkGet = m.bulkGet as (r: object) => Promise<{
        body: { pipe(c: (v: Buffer) => undefined): Promise<number> };
      }>;
      const response = await bulkGet({
        url: new URL(`http://127.0.0.1:${port}/`),
        headers: {},
        timeoutMs: 2000,
        what: "fuzz",
      });
      let seen = 0;
      const n = await response.body.pipe((v) => {
        seen += v.length;
        return undefined;
      });
      if (n !== seen || seen > i.length) throw new Error(`counted ${n}, saw ${seen}`);
    },
    // Malformed or cut responses are refused with a coded error, like the socket's own.
    rejects: (e) => /^(HPE_|ECONNRESET$)/.test(String((e as { code?: unknown }).code)),
  },
  {
    name: "apply YAML",
    module: "domain/apply/schema.js",
    seeds: () => [
      text(
        "sysext:\n  - name: tool\n    uri: https://example.org/tool.sysext.raw\n    profiles: [active, common]\n",
      ),
    ],
    call: (m, i) => (m.parseApplySpec as (t: string, f: string) => unknown)(str(i), "fuzz.yaml"),
  },
];

function mutate(seed: Buffer): Buffer {
  const out = Buffer.from(seed.length > 0 ? seed : randomBytes(16));
  const rounds = 1 + randomInt(4);
  let buf = out;
  for (let r = 0; r < rounds; r++) {
    const at = randomInt(Math.max(1, buf.length));
    switch (randomInt(7)) {
      case 0:
        buf[at] = randomInt(256);
        break;
      case 1:
        buf[at] = (buf[at] ?? 0) ^ (1 << randomInt(8));
        break;
      case 2:
        if (at + 4 <= buf.length)
          buf.writeUInt32LE([0, 1, 0x7fffffff, 0xffffffff, 0x80000000][randomInt(5)] as number, at);
        break;
      case 3:
        buf = buf.subarray(0, at);
        break;
      case 4:
        buf = Buffer.concat([buf, randomBytes(randomInt(64))]);
        break;
      case 5:
        if (at + 8 <= buf.length) buf.writeBigUInt64LE(BigInt(randomInt(2 ** 40)) * 4096n, at);
        break;
      default: {
        const from = randomInt(Math.max(1, buf.length));
        const len = randomInt(32);
        buf = Buffer.concat([
          buf.subarray(0, at),
          buf.subarray(from, from + len),
          buf.subarray(at),
        ]);
      }
    }
  }
  return buf;
}

interface TargetResult {
  name: string;
  present: boolean;
  seeds: number;
  inputs: number;
  rejected: number;
  crashes: string[];
  maxRssMib: number;
}

const results: TargetResult[] = [];
for (const target of TARGETS) {
  const result: TargetResult = {
    name: target.name,
    present: false,
    seeds: 0,
    inputs: 0,
    rejected: 0,
    crashes: [],
    maxRssMib: 0,
  };
  results.push(result);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(path.join(SRC, target.module).replace(/\.js$/, ".ts"))) as Record<
      string,
      unknown
    >;
  } catch {
    continue;
  }
  result.present = true;
  const seeds = target.seeds();
  result.seeds = seeds.length;
  const pool = seeds.length > 0 ? seeds : [randomBytes(4096)];
  const until = Date.now() + BUDGET_MS;
  let i = 0;
  while (Date.now() < until) {
    // The first inputs are the seeds themselves (they must parse), then mutants and noise.
    const input =
      i < seeds.length
        ? (pool[i] as Buffer)
        : i % 17 === 0
          ? randomBytes(randomInt(8192))
          : mutate(pool[randomInt(pool.length)] as Buffer);
    i++;
    result.inputs++;
    try {
      await target.call(mod, input);
    } catch (e) {
      if ((e as Error)?.name === "ExtctlError" || target.rejects?.(e)) result.rejected++;
      else if (result.crashes.length < 5) {
        result.crashes.push(
          `${(e as Error)?.stack?.split("\n").slice(0, 3).join(" | ") ?? String(e)} [input ${input.subarray(0, 48).toString("hex")}... ${input.length} bytes]`,
        );
      } else result.crashes.push("(more)");
    }
    if (i % 64 === 0)
      result.maxRssMib = Math.max(result.maxRssMib, process.memoryUsage().rss / 2 ** 20);
  }
  result.crashes = result.crashes.slice(0, 6);
}
process.stdout.write(`FUZZ ${JSON.stringify(results)}\n`);
