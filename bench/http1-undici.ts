// Is http1.ts still worth keeping? One big body read by http1.ts's bulkGet (what blob downloads
// use) against undici.request (what everything else uses), both hashing every byte with SHA-256
// as a blob download does, from a server in its own process over plain http (a local registry)
// and https (throwaway CA). The ratio is undici's time over http1.ts's: issue 30 keeps http1.ts
// only while it is at least 1.5 times faster on the supported runtime.
import { spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { once } from "node:events";
import { Agent, request } from "undici";
import { bulkGet } from "../src/domain/sources/http1.js";
import { makeTestCertificates } from "../test/helpers/https-server.js";
import { benchDir, benchRuns, emitBench, median, round } from "./lib.js";

const MIB = Number(process.env.BENCH_HTTP1_MIB) || 512;
const GOAL = 1.5;

// The server: one body of MIB MiB from memory, so only the clients differ between runs.
const SERVER = `
const http = require("node:http"), https = require("node:https"), fs = require("node:fs");
const body = Buffer.alloc(${MIB} << 20, 7);
const handler = (_req, res) => {
  res.writeHead(200, { "content-type": "application/octet-stream", "content-length": body.length });
  res.end(body);
};
const [cert, key] = process.argv.slice(1);
const servers = [http.createServer(handler), https.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) }, handler)];
let ready = 0;
for (const s of servers) s.listen(0, "127.0.0.1", () => {
  if (++ready === 2) process.stdout.write(JSON.stringify(servers.map((x) => x.address().port)) + "\\n");
});
`;

async function startServer(
  cert: string,
  key: string,
): Promise<{ child: ChildProcess; ports: number[] }> {
  const child = spawn(process.execPath, ["-e", SERVER, cert, key], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const [line] = (await once(child.stdout, "data")) as [Buffer];
  return { child, ports: JSON.parse(line.toString()) as number[] };
}

async function viaHttp1(url: URL, ca: string[]): Promise<string> {
  const hash = createHash("sha256");
  const res = await bulkGet({ url, headers: {}, ca, timeoutMs: 30_000, what: "bench" });
  await res.body.pipe((view) => {
    hash.update(view);
    return undefined;
  });
  return hash.digest("hex");
}

async function viaUndici(url: URL, dispatcher: Agent): Promise<string> {
  const hash = createHash("sha256");
  const res = await request(url, { dispatcher });
  for await (const chunk of res.body) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

async function time(fn: () => Promise<string>): Promise<{ s: number; digest: string }> {
  const start = process.hrtime.bigint();
  const digest = await fn();
  return { s: Number(process.hrtime.bigint() - start) / 1e9, digest };
}

const dir = await benchDir("extctl-bench-http1-");
const certs = await makeTestCertificates(path.join(dir, "certs"));
const ca = [await readFile(certs.caCert, "utf8")];
const { child, ports } = await startServer(certs.serverCert, certs.serverKey);
const runs = benchRuns(5);
try {
  for (const [scheme, port] of [
    ["http", ports[0]],
    ["https", ports[1]],
  ] as const) {
    const url = new URL(`${scheme}://127.0.0.1:${port}/blob`);
    const agent = new Agent({ connect: { ca, rejectUnauthorized: true }, maxResponseSize: -1 });
    const ours: number[] = [];
    const theirs: number[] = [];
    // One warm-up each, then alternate so neither gets the warmer machine.
    await viaHttp1(url, ca);
    await viaUndici(url, agent);
    for (let i = 0; i < runs; i++) {
      const a = await time(() => viaHttp1(url, ca));
      const b = await time(() => viaUndici(url, agent));
      if (a.digest !== b.digest) throw new Error("the two clients read different bytes");
      ours.push(a.s);
      theirs.push(b.s);
    }
    await agent.close();
    const http1S = median(ours);
    const undiciS = median(theirs);
    emitBench({
      name: `http1.ts vs undici, ${MIB} MiB over ${scheme}`,
      extctl_s: round(http1S, 4),
      peer: "undici.request",
      peer_s: round(undiciS, 4),
      // Here the ratio is how many times faster http1.ts is (undici's time over ours).
      ratio: round(undiciS / http1S, 3),
      goal: GOAL,
      peak_rss_mib: round(process.memoryUsage().rss / 2 ** 20, 1),
      runs,
      note: `both hash every byte (SHA-256); server in its own process; Node ${process.version}`,
      extra: { http1_mib_s: round(MIB / http1S, 0), undici_mib_s: round(MIB / undiciS, 0) },
    });
  }
} finally {
  child.kill();
}
