// The compatibility check against the real systemd-sysext (252 on the host, the lane's in a lane): for a matrix of release files, extctl
// says "merges" exactly when systemd really merges the image (read from .systemd-sysext/extensions).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { execFileSync, spawnSync } from "node:child_process";
import { createContext } from "../../src/util/context.js";
import { MemoryLogger } from "../../src/util/log.js";
import { checkImage } from "../../src/operations/check.js";
import { hostArchitecture } from "../../src/domain/image/partition-types.js";
import { requirePeers, run } from "../helpers/peers.js";
import { tempDir, tempRoot } from "../helpers/tmp.js";
import { systemdVersion } from "../helpers/lane.js";

const DEBIAN = 'ID=debian\nVERSION_ID="12"\n';
const OTHER_ARCH = hostArchitecture() === "arm64" ? "x86-64" : "arm64";

interface Case {
  title: string;
  /** Image file name in /var/lib/extensions. */
  file?: string;
  /** Release file name suffix (extension-release.X); undefined: no release file. */
  releaseName?: string;
  release?: string;
  strictXattr?: string;
  osReleaseInImage?: boolean;
  host?: string;
}

const CASES: Case[] = [
  { title: "ID and VERSION_ID match", release: DEBIAN },
  { title: "ID mismatch", release: 'ID=fedora\nVERSION_ID="12"\n' },
  { title: "ID=_any", release: "ID=_any\n" },
  { title: "VERSION_ID mismatch", release: "ID=debian\nVERSION_ID=11\n" },
  { title: "no VERSION_ID in the image", release: "ID=debian\n" },
  { title: "host without VERSION_ID", release: "ID=debian\nVERSION_ID=99\n", host: "ID=debian\n" },
  {
    title: "SYSEXT_LEVEL on both sides",
    release: "ID=debian\nSYSEXT_LEVEL=1.0\nVERSION_ID=1\n",
    host: DEBIAN + "SYSEXT_LEVEL=1.0\n",
  },
  {
    title: "SYSEXT_LEVEL mismatch",
    release: "ID=debian\nSYSEXT_LEVEL=2.0\nVERSION_ID=12\n",
    host: DEBIAN + "SYSEXT_LEVEL=1.0\n",
  },
  { title: "SYSEXT_LEVEL only in the image", release: "ID=debian\nSYSEXT_LEVEL=1.0\n" },
  { title: "ARCHITECTURE of the host", release: `ID=_any\nARCHITECTURE=${hostArchitecture()}\n` },
  { title: "ARCHITECTURE of another machine", release: `ID=_any\nARCHITECTURE=${OTHER_ARCH}\n` },
  { title: "ARCHITECTURE=_any", release: "ID=debian\nVERSION_ID=12\nARCHITECTURE=_any\n" },
  { title: "SYSEXT_SCOPE initrd only", release: "ID=_any\nSYSEXT_SCOPE=initrd\n" },
  { title: "SYSEXT_SCOPE quoted list", release: 'ID=_any\nSYSEXT_SCOPE="initrd system"\n' },
  {
    title: "quoting, comments and spaces",
    release: "# comment\n  ID='debian'\nVERSION_ID=\"12\"   \n; other comment\n",
  },
  { title: "escaped quotes do not match", release: 'ID=debian\nVERSION_ID="1\\"2"\n' },
  { title: "empty release file", release: "" },
  { title: "no ID", release: 'VERSION_ID="12"\n' },
  { title: "no release file" },
  { title: "release file for another name", releaseName: "other", release: DEBIAN },
  {
    title: "another name, strict=false xattr",
    releaseName: "other",
    release: DEBIAN,
    strictXattr: "false",
  },
  {
    title: "another name, strict=true xattr",
    releaseName: "other",
    release: DEBIAN,
    strictXattr: "1",
  },
  { title: "os-release inside the image", release: DEBIAN, osReleaseInImage: true },
  {
    title:
      "a NAME.sysext.raw file (252-254 call it NAME.sysext, 255+ NAME): release for the short name",
    file: "img.sysext.raw",
    releaseName: "img",
    release: DEBIAN,
  },
  {
    title:
      "a NAME.sysext.raw file (252-254 call it NAME.sysext, 255+ NAME): release for the long name",
    file: "img.sysext.raw",
    releaseName: "img.sysext",
    release: DEBIAN,
  },
];

function mergedNames(root: string): string[] {
  // systemd-sysext needs a mount namespace whose mounts it can propagate (peers.md); it merges,
  // we read what merged, and unmerge again so nothing stays mounted.
  const script = `mount -t tmpfs tmpfs /run && systemd-sysext --root="$1" merge >/dev/null 2>&1; cat "$1/usr/.systemd-sysext/extensions" 2>/dev/null; systemd-sysext --root="$1" unmerge >/dev/null 2>&1; umount /run; true`;
  const r = spawnSync(
    "unshare",
    ["-m", "--propagation", "shared", "sh", "-c", script, "sh", root],
    { encoding: "utf8" },
  );
  if (r.status !== 0) throw new Error(`merge failed to run: ${r.stderr}`);
  return r.stdout.split("\n").filter(Boolean);
}

test(`check agrees with systemd-sysext ${systemdVersion() || 252}'s real merge over a matrix of release files`, async (t) => {
  if (!requirePeers(t, ["systemd-sysext", "mksquashfs", "unshare", "python3"], { root: true }))
    return;
  const version = /systemd (\d+)/.exec(
    execFileSync("systemd-sysext", ["--version"], { encoding: "utf8" }),
  )?.[1];
  const dir = await tempDir(t);
  const outcomes = { merged: 0, refused: 0 };
  for (const [i, c] of CASES.entries()) {
    await t.test(c.title, async () => {
      const file = c.file ?? `case${i}.raw`;
      const name = file.replace(/\.raw$/, "");
      // The name systemd lists the merged image under: 255 and later drop .sysext as well.
      const listed = Number(version ?? 252) >= 255 ? file.replace(/(\.sysext)?\.raw$/, "") : name;
      const tree = path.join(dir, `tree${i}`);
      await mkdir(path.join(tree, "usr/lib/extension-release.d"), { recursive: true });
      await mkdir(path.join(tree, "usr/share/case"), { recursive: true });
      await writeFile(path.join(tree, "usr/share/case/marker"), c.title);
      if (c.release !== undefined) {
        const rel = path.join(
          tree,
          `usr/lib/extension-release.d/extension-release.${c.releaseName ?? name}`,
        );
        await writeFile(rel, c.release);
        if (c.strictXattr !== undefined)
          execFileSync("python3", [
            "-c",
            "import os,sys; os.setxattr(sys.argv[1], b'user.extension-release.strict', sys.argv[2].encode())",
            rel,
            c.strictXattr,
          ]);
      }
      if (c.osReleaseInImage) await writeFile(path.join(tree, "usr/lib/os-release"), DEBIAN);
      const root = await tempRoot(t, c.host ?? DEBIAN);
      await mkdir(path.join(root, "var/lib/extensions"), { recursive: true });
      const image = path.join(root, "var/lib/extensions", file);
      run("mksquashfs", [tree, image, "-noappend", "-all-root", "-quiet", "-no-progress"]);
      await rm(tree, { recursive: true });

      const ctx = createContext({ root, log: new MemoryLogger() });
      const verdict = await checkImage(ctx, { image, systemd: Number(version ?? 252) });
      // check judges the image under the name extctl links it as (252-254: NAME.raw for a
      // NAME.sysext.raw whose release file says NAME); systemd is shown it under that name too.
      let shown = listed;
      if (verdict.linkName !== file) {
        await rename(image, path.join(root, "var/lib/extensions", verdict.linkName));
        shown = verdict.linkName.replace(/\.raw$/, "");
      }
      const merged = mergedNames(root).includes(shown);
      outcomes[merged ? "merged" : "refused"]++;
      assert.equal(
        verdict.compatible,
        merged,
        `systemd ${version} ${merged ? "merged" : "refused"} it; extctl said ${verdict.compatible ? "merges" : `refused: ${verdict.reason}`}`,
      );
      // The merge is undone: the image's files are not left in the root.
      await assert.rejects(readFile(path.join(root, "usr/share/case/marker")));
    });
  }
  // The matrix must exercise both outcomes, or it proves nothing.
  assert.ok(outcomes.merged >= 8 && outcomes.refused >= 8, JSON.stringify(outcomes));
});
