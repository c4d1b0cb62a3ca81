// The rules of util/owned-state.ts: directories made 0755 whatever the umask, an existing one
// others can write refused, and state believed only when root (or the running user) owns it and
// no one else can write it or its directory.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmod, chown, mkdir, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { distrustOf, makeDir, readOwnedState } from "../../../src/util/owned-state.js";
import { tempDir } from "../../helpers/tmp.js";

const isRoot = process.getuid?.() === 0;

test("distrustOf names another owner, group or other write, and accepts root's sticky dir only when asked", () => {
  const me = process.getuid?.() ?? 0;
  assert.equal(distrustOf({ uid: 0, mode: 0o100644 }), undefined);
  assert.equal(distrustOf({ uid: me, mode: 0o40755 }), undefined);
  assert.match(distrustOf({ uid: 4242, mode: 0o100644 }) ?? "", /owned by uid 4242/);
  assert.match(distrustOf({ uid: 0, mode: 0o100664 }) ?? "", /writable by group \(mode 0664\)/);
  assert.match(distrustOf({ uid: 0, mode: 0o40757 }) ?? "", /writable by others \(mode 0757\)/);
  assert.match(distrustOf({ uid: 0, mode: 0o41777 }) ?? "", /group and others/);
  assert.equal(distrustOf({ uid: 0, mode: 0o41777 }, { sticky: true }), undefined);
  assert.notEqual(distrustOf({ uid: 4242, mode: 0o41777 }, { sticky: true }), undefined);
});

test("makeDir makes every missing directory 0755 under umask 000 and 077", async (t) => {
  const root = await tempDir(t);
  for (const umask of [0o000, 0o077]) {
    const old = process.umask(umask);
    try {
      const leaf = path.join(root, `u${umask.toString(8)}`, "a", "b");
      await makeDir(leaf, { within: root });
      for (const d of [leaf, path.dirname(leaf), path.dirname(path.dirname(leaf))])
        assert.equal((await stat(d)).mode & 0o7777, 0o755, `${d} under umask ${umask}`);
    } finally {
      process.umask(old);
    }
  }
});

test("makeDir refuses an existing directory others can write, up to the root and not above it", async (t) => {
  const root = await tempDir(t);
  await mkdir(path.join(root, "var/lib"), { recursive: true });
  await chmod(path.join(root, "var"), 0o777);
  await assert.rejects(makeDir(path.join(root, "var/lib/kairos"), { within: root }), (e: Error) => {
    assert.match(e.message, /var \(for .*\) could have been changed by someone other than root/);
    assert.match(e.message, /writable by group and others \(mode 0777\)/);
    return true;
  });
  await chmod(path.join(root, "var"), 0o755);
  await makeDir(path.join(root, "var/lib/kairos"), { within: root });
  // A root-owned sticky dir (/run/lock) is fine as the lock's, not as a store's.
  await mkdir(path.join(root, "run/lock"), { recursive: true });
  await chmod(path.join(root, "run/lock"), 0o1777);
  await makeDir(path.join(root, "run/lock"), { within: root, stickyLeaf: true });
  await assert.rejects(makeDir(path.join(root, "run/lock"), { within: root }));
  // The root itself is the caller's (a tmp dir): not checked.
  await chmod(root, 0o777);
  await makeDir(path.join(root, "etc"), { within: root });
  await chmod(root, 0o700);
});

test("readOwnedState believes root's file in root's dir, and nothing another user could have written", async (t) => {
  if (!isRoot) return t.skip("needs root to chown");
  const dir = await tempDir(t);
  const file = path.join(dir, "state.json");
  await writeFile(file, "{}");
  await chmod(file, 0o644);
  assert.deepEqual(await readOwnedState(file, { what: "a state" }), { data: Buffer.from("{}") });
  assert.deepEqual(await readOwnedState(path.join(dir, "none"), { what: "a state" }), {
    absent: true,
  });
  await chown(file, 65534, 65534);
  const foreign = await readOwnedState(file, { what: "a state" });
  assert.ok("distrusted" in foreign && /owned by uid 65534/.test(foreign.distrusted));
  await chown(file, 0, 0);
  await chmod(file, 0o646);
  assert.ok("distrusted" in (await readOwnedState(file, { what: "a state" })));
  await chmod(file, 0o644);
  await chmod(dir, 0o777);
  const inOpenDir = await readOwnedState(file, { what: "a state" });
  assert.ok("distrusted" in inOpenDir && /lies in/.test(inOpenDir.distrusted));
});
