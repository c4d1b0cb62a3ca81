// The fleet simulation (issue 28): 1,000 simulated nodes (each its own root, so its own catalog
// cache) check one static catalog on a local HTTPS server; the server's request log gives the
// requests and body bytes per node per check. Goal: one conditional request and 0 body bytes
// when the catalog is unchanged (before: a full download plus a .p7s request, 2 per node).
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { loadCatalogs } from "../src/domain/catalog/fetch.js";
import { createContext } from "../src/util/context.js";
import { MemoryLogger } from "../src/util/log.js";
import { startHttpsServer } from "../test/helpers/https-server.js";
import { bytesOf, catalogJson } from "../test/unit/domain/catalog/fixtures.js";
import { benchDir, emitBench, emitSkipped, round } from "./lib.js";

// Each simulated node sets up TLS with the system CAs as a node's process does (~0.3 s of CPU on a
// busy 2-core machine), so 1,000 nodes take minutes per check: BENCH_FLEET_NODES=1000 for the full
// fleet. The per-node figures do not depend on the count.
const NODES = Number(process.env.BENCH_FLEET_NODES) || 250;
const PARALLEL = 25;
const NAME = `fleet catalog check, ${NODES} nodes`;

if (process.getuid?.() !== 0) {
  emitSkipped(NAME, "requests/node/check", 1, "needs root (the catalog cache is root's)");
  process.exit(0);
}

const dir = await benchDir("extctl-bench-fleet-");
const server = await startHttpsServer({ dir: path.join(dir, "tls") });
try {
  const layers = Array.from({ length: 50 }, (_, i) => ({
    name: `ext${i}`,
    latest: "1.2.0",
    tags: ["1.0.0", "1.1.0", "1.2.0"],
  }));
  server.addFile("releases.json", bytesOf(catalogJson(layers)));
  const url = server.url("releases.json");
  const roots: string[] = [];
  for (let i = 0; i < NODES; i++) {
    const root = path.join(dir, `node${i}`);
    await mkdir(path.join(root, "etc"), { recursive: true });
    roots.push(root);
  }
  /** One check on every node; the requests and body bytes it cost, per node. */
  const check = async () => {
    const before = server.requests.length;
    const started = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: PARALLEL }, async () => {
        while (next < roots.length) {
          const root = roots[next++] as string;
          const ctx = createContext({ root, log: new MemoryLogger() });
          await loadCatalogs(ctx, { urls: [url], caCerts: [server.caCert] });
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    const made = server.requests.slice(before);
    return {
      seconds,
      requests: made.length / NODES,
      bytes: made.reduce((sum, r) => sum + r.bodyBytes, 0) / NODES,
      conditional: made.filter((r) => r.ifNoneMatch !== undefined).length / NODES,
      notModified: made.filter((r) => r.status === 304).length / NODES,
    };
  };
  const first = await check();
  const unchanged = await check();
  server.addFile("releases.json", bytesOf(catalogJson(layers, "2026-09-02T00:00:00Z")));
  const changed = await check();
  emitBench({
    name: NAME,
    extctl_s: round(unchanged.seconds, 3),
    peer: "first check (no kept copy)",
    peer_s: round(first.seconds, 3),
    ratio: round(unchanged.requests, 3),
    goal: 1,
    peak_rss_mib: round(process.memoryUsage().rss / 2 ** 20, 1),
    note: "ratio = requests per node per unchanged check (goal 1, conditional, 0 body bytes)",
    extra: {
      requests_per_node_first: round(first.requests, 3),
      bytes_per_node_first: round(first.bytes, 1),
      requests_per_node_unchanged: round(unchanged.requests, 3),
      conditional_per_node_unchanged: round(unchanged.conditional, 3),
      not_modified_per_node_unchanged: round(unchanged.notModified, 3),
      bytes_per_node_unchanged: round(unchanged.bytes, 1),
      requests_per_node_changed: round(changed.requests, 3),
      bytes_per_node_changed: round(changed.bytes, 1),
    },
  });
} finally {
  await server.stop();
}
