// `upgrade --for-os`: the os-release of another OS, given as the file or as its root directory.
import assert from "node:assert/strict";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import { readOsReleaseAt } from "../../../../src/domain/image/os-release-file.js";
import { tempDir } from "../../../helpers/tmp.js";

test("the file itself, or a tree's etc/os-release before its usr/lib/os-release", async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, "os-release");
  await writeFile(file, 'ID=kairos\nVERSION_ID="3.4"\n');
  assert.deepEqual(await readOsReleaseAt(file), { ID: "kairos", VERSION_ID: "3.4" });

  const tree = path.join(dir, "tree");
  await mkdir(path.join(tree, "usr/lib"), { recursive: true });
  await writeFile(path.join(tree, "usr/lib/os-release"), "ID=usrlib\n");
  assert.equal((await readOsReleaseAt(tree)).ID, "usrlib");
  await mkdir(path.join(tree, "etc"));
  await writeFile(path.join(tree, "etc/os-release"), "ID=etc\n");
  assert.equal((await readOsReleaseAt(tree)).ID, "etc");
});

test("a tree without an os-release, or an os-release without ID, is a usage error", async (t) => {
  const dir = await tempDir(t);
  await assert.rejects(readOsReleaseAt(dir), (e: unknown) => {
    assert.ok(e instanceof Error);
    assert.match(e.message, /no etc\/os-release or usr\/lib\/os-release there/);
    assert.equal((e as { exitCode?: number }).exitCode, 2);
    return true;
  });
  const noId = path.join(dir, "os-release");
  await writeFile(noId, "NAME=Something\n");
  await assert.rejects(readOsReleaseAt(noId), /the os-release has no ID/);
});
