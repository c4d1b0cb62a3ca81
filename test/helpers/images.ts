// Small extension images made at test time with the real mksquashfs: a tree holding a program
// and a release file, packed as a bare squashfs (what systemd-sysext 252 merges directly).
import { chmod, mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { run } from "./peers.js";

export interface SampleImage {
  /** File name of the image, e.g. "hello.raw". */
  fileName: string;
  /** Release file content; undefined for none. */
  release?: string;
  /** Name in extension-release.NAME (default: what systemd 252 derives from fileName). */
  releaseName?: string;
  kind?: "sysext" | "confext";
  /** Extra files: node path -> content. */
  files?: Record<string, string>;
}

/** Builds the image in `dir` and returns its path. */
export async function makeSampleImage(dir: string, image: SampleImage): Promise<string> {
  const tree = path.join(dir, `tree-${image.fileName}`);
  const kind = image.kind ?? "sysext";
  const releaseName = image.releaseName ?? image.fileName.replace(/\.raw$/, "");
  const files: Record<string, string> = { ...(image.files ?? {}) };
  if (image.release !== undefined) {
    const releaseDir =
      kind === "sysext" ? "usr/lib/extension-release.d" : "etc/extension-release.d";
    files[`${releaseDir}/extension-release.${releaseName}`] = image.release;
  }
  for (const [rel, content] of Object.entries(files)) {
    const target = path.join(tree, rel);
    await mkdir(path.dirname(target), { recursive: true });
    await writeFile(target, content);
    if (rel.includes("/bin/")) await chmod(target, 0o755);
  }
  const out = path.join(dir, image.fileName);
  run("mksquashfs", [tree, out, "-noappend", "-all-root", "-quiet", "-no-progress"]);
  return out;
}

export function helloScript(message: string): string {
  return `#!/bin/sh\necho "${message}"\n`;
}
