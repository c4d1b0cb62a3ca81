// https install of one big image from a local HTTPS server (throwaway CA) against `curl` of the same
// URL; extctl also hashes (SHA-256) and fsyncs while it streams, curl only writes.
import { randomFillSync } from "node:crypto";
import { open, mkdir, rm } from "node:fs/promises";
import path from "node:path";
import { startHttpsServer } from "../test/helpers/https-server.js";
import { benchDir, emitSkipped, extctl, sideBySide } from "./lib.js";

const MIB = Number(process.env.BENCH_HTTPS_MIB) || 256;
const NAME = `https install ${MIB} MiB`;
const GOAL = 1.5;

async function makeFile(file: string, mib: number): Promise<void> {
  const handle = await open(file, "w");
  const chunk = Buffer.alloc(1 << 20);
  try {
    for (let i = 0; i < mib; i++) {
      randomFillSync(chunk);
      // A squashfs magic up front: install stores only what dissects as an image (issue 12).
      if (i === 0) chunk.write("hsqs", 0, "latin1");
      await handle.write(chunk);
    }
  } finally {
    await handle.close();
  }
}

const dir = await benchDir("extctl-bench-https-");
let server;
try {
  server = await startHttpsServer({ dir: path.join(dir, "certs") });
} catch (e) {
  emitSkipped(NAME, "curl", GOAL, `cannot start the HTTPS server: ${(e as Error).message}`);
  process.exit(0);
}
try {
  const file = path.join(dir, "big.sysext.raw");
  await makeFile(file, MIB);
  server.addFile("big.sysext.raw", file);
  const root = path.join(dir, "root");
  const out = path.join(dir, "curl-out.raw");
  await mkdir(root, { recursive: true });
  const url = server.url("big.sysext.raw");
  await sideBySide({
    name: NAME,
    goal: GOAL,
    peerName: "curl",
    extctl: {
      argv: extctl("--root", root, "sysext", "install", url, "--ca-cert", server.caCert),
      before: () =>
        rm(path.join(root, "var/lib/kairos/extensions/big.sysext.raw"), { force: true }),
    },
    peer: {
      argv: ["curl", "-sS", "--fail", "--cacert", server.caCert, "-o", out, url],
      before: () => rm(out, { force: true }),
    },
    runs: Number(process.env.BENCH_RUNS) || 5,
    note: "same server, same file; extctl hashes and fsyncs as it writes, curl does neither",
  });
  // The same download made durable: curl, then fsync of the file (coreutils `sync FILE`).
  await sideBySide({
    name: `${NAME} (durable)`,
    goal: GOAL,
    peerName: "curl + sync FILE",
    extctl: {
      argv: extctl("--root", root, "sysext", "install", url, "--ca-cert", server.caCert),
      before: () =>
        rm(path.join(root, "var/lib/kairos/extensions/big.sysext.raw"), { force: true }),
    },
    peer: {
      argv: ["sh", "-c", 'curl -sS --fail --cacert "$1" -o "$2" "$3" && sync "$2"', "sh"].concat([
        server.caCert,
        out,
        url,
      ]),
      before: () => rm(out, { force: true }),
    },
    runs: Number(process.env.BENCH_RUNS) || 5,
    note: "both end with the file on disk (fsync)",
  });
} finally {
  await server.stop();
}
