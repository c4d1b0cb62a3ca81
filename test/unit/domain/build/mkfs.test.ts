import assert from "node:assert/strict";
import { test } from "node:test";
import { createContext } from "../../../../src/util/context.js";
import { silentLogger } from "../../../../src/util/log.js";
import type { ProcessRunner, RunOptions } from "../../../../src/util/runner.js";
import { makeFilesystem, mkfsCommand } from "../../../../src/domain/build/mkfs.js";

const base = {
  stagingDir: "/s",
  output: "/o.img",
  epoch: 1700000000,
  uuid: "0c8a6d4a-52b4-4c3e-9e4a-6c7b2f0a1d11",
};

test("mkfs.erofs gets the UUID, compressor, all-root and SOURCE_DATE_EPOCH", () => {
  const c = mkfsCommand({ ...base, format: "erofs" });
  assert.equal(c.program, "mkfs.erofs");
  assert.deepEqual(c.args, ["--quiet", "-U", base.uuid, "-zlz4hc", "--all-root", "/o.img", "/s"]);
  assert.deepEqual(c.env, { SOURCE_DATE_EPOCH: "1700000000" });
  assert.deepEqual(
    mkfsCommand({ ...base, format: "erofs", compress: "none", keepOwners: true }).args,
    ["--quiet", "-U", base.uuid, "/o.img", "/s"],
  );
  assert.throws(
    () => mkfsCommand({ ...base, format: "erofs", compress: "zstd" }),
    /cannot compress with "zstd"/,
  );
});

test("mksquashfs gets a fixed mkfs time, the compressor and all-root", () => {
  const c = mkfsCommand({ ...base, format: "squashfs", compress: "zstd,19" });
  assert.deepEqual(c.args, [
    "/s",
    "/o.img",
    "-noappend",
    "-quiet",
    "-no-progress",
    "-mkfs-time",
    "1700000000",
    "-comp",
    "zstd",
    "-Xcompression-level",
    "19",
    "-all-root",
  ]);
});

function runnerThat(
  result: { exitCode: number; stderr: string } | Error,
  seen: RunOptions[] = [],
): ProcessRunner {
  return {
    async run(command, args, options = {}) {
      seen.push(options);
      if (result instanceof Error) throw result;
      return { command: [command, ...args], signal: null, stdout: "", ...result };
    },
  };
}

test("a failing mkfs becomes one sentence with its last error line", async () => {
  const ctx = createContext({
    log: silentLogger,
    runner: runnerThat({ exitCode: 1, stderr: "noise\nE: bad compression level\n" }),
  });
  await assert.rejects(
    makeFilesystem(ctx, { ...base, format: "erofs" }),
    /mkfs\.erofs failed: E: bad compression level/,
  );
});

test("a missing mkfs program says which package to install", async () => {
  const missing = Object.assign(new Error("spawn mksquashfs ENOENT"), { code: "ENOENT" });
  const ctx = createContext({ log: silentLogger, runner: runnerThat(missing) });
  await assert.rejects(
    makeFilesystem(ctx, { ...base, format: "squashfs" }),
    /mksquashfs is not installed/,
  );
});

test("mksquashfs does not inherit SOURCE_DATE_EPOCH, which it refuses next to -mkfs-time", async () => {
  const seen: RunOptions[] = [];
  const ctx = createContext({
    log: silentLogger,
    env: { SOURCE_DATE_EPOCH: "5", PATH: "/bin" },
    runner: runnerThat({ exitCode: 0, stderr: "" }, seen),
  });
  await makeFilesystem(ctx, { ...base, format: "squashfs" });
  assert.equal(seen[0]?.env?.SOURCE_DATE_EPOCH, undefined);
  assert.equal(seen[0]?.env?.PATH, "/bin");
});
