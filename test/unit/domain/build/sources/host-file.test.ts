// The staging copy of a host file: only the inode the walk saw is copied, never what a symlink
// or a swapped parent directory points at after the walk.
import assert from "node:assert/strict";
import { lstat, mkdir, readFile, rename, stat, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import {
  copyVerifiedHostFile,
  type HostIdentity,
} from "../../../../../src/domain/build/sources/host-file.js";
import { ExtctlError } from "../../../../../src/util/errors.js";
import { tempDir } from "../../../../helpers/tmp.js";

async function identity(file: string): Promise<HostIdentity> {
  const st = await lstat(file);
  return { dev: st.dev, ino: st.ino, size: st.size };
}

function changedError(pattern: RegExp) {
  return (e: unknown) => e instanceof ExtctlError && e.code === "build" && pattern.test(e.message);
}

test("an unchanged file is copied with its bytes and mode", async (t) => {
  const dir = await tempDir(t);
  const src = path.join(dir, "tool");
  await writeFile(src, "hello\n", { mode: 0o750 });
  await copyVerifiedHostFile(src, await identity(src), path.join(dir, "copy"));
  assert.equal(await readFile(path.join(dir, "copy"), "utf8"), "hello\n");
  assert.equal((await stat(path.join(dir, "copy"))).mode & 0o7777, 0o750);
});

test("a file swapped for a symlink after the walk is refused, naming the path", async (t) => {
  const dir = await tempDir(t);
  const secret = path.join(dir, "secret");
  await writeFile(secret, "root-only bytes\n", { mode: 0o600 });
  const src = path.join(dir, "src-file");
  await writeFile(src, "innocent\n");
  const seen = await identity(src);
  await rename(src, `${src}.old`);
  await symlink(secret, src);
  await assert.rejects(
    copyVerifiedHostFile(src, seen, path.join(dir, "copy")),
    changedError(/src-file was replaced by a symlink/),
  );
  await assert.rejects(stat(path.join(dir, "copy")), { code: "ENOENT" });
});

test("a parent directory swapped for a symlink is caught by the inode check", async (t) => {
  const dir = await tempDir(t);
  await mkdir(path.join(dir, "outside"));
  await writeFile(path.join(dir, "outside/f"), "secret\n");
  await mkdir(path.join(dir, "src/sub"), { recursive: true });
  const src = path.join(dir, "src/sub/f");
  await writeFile(src, "public\n");
  const seen = await identity(src);
  await rename(path.join(dir, "src/sub"), path.join(dir, "src/sub.old"));
  await symlink(path.join(dir, "outside"), path.join(dir, "src/sub"));
  await assert.rejects(
    copyVerifiedHostFile(src, seen, path.join(dir, "copy")),
    changedError(/was replaced by another file/),
  );
});

test("a file replaced by a FIFO is refused without blocking", async (t) => {
  const dir = await tempDir(t);
  const src = path.join(dir, "f");
  await writeFile(src, "x");
  const seen = await identity(src);
  await rename(src, `${src}.old`);
  const { execFileSync } = await import("node:child_process");
  execFileSync("mkfifo", [src]);
  await assert.rejects(
    copyVerifiedHostFile(src, seen, path.join(dir, "copy")),
    changedError(/no longer a regular file/),
  );
});

test("a file that changed size or disappeared is refused", async (t) => {
  const dir = await tempDir(t);
  const src = path.join(dir, "f");
  await writeFile(src, "short");
  const seen = await identity(src);
  await writeFile(src, "much longer now");
  await assert.rejects(
    copyVerifiedHostFile(src, seen, path.join(dir, "copy")),
    changedError(/changed size \(5 -> 15 bytes\)/),
  );
  await rename(src, `${src}.gone`);
  await assert.rejects(
    copyVerifiedHostFile(src, seen, path.join(dir, "copy2")),
    changedError(/disappeared/),
  );
});
