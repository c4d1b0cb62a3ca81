// The tree the reader tests pack into squashfs and erofs images: files, dirs, symlinks,
// hardlinks, empty and several-MiB files, a sparse file, long names, xattrs and deep paths.
import { randomBytes } from "node:crypto";
import { link, mkdir, open, symlink, truncate, writeFile } from "node:fs/promises";
import path from "node:path";
import { execFileSync } from "node:child_process";

export const LONG_NAME = "l".repeat(250) + ".txt";
export const DEEP_DIR = Array.from({ length: 24 }, (_, i) => `d${i}`).join("/");
export const XATTRS: Record<string, Record<string, string>> = {
  "usr/share/doc/notes": { "user.comment": "hello", "user.big": "v".repeat(2000) },
  "usr/lib/extension-release.d/extension-release.fixture": {
    "user.extension-release.strict": "false",
  },
};

export async function makeFixtureTree(dir: string): Promise<void> {
  const p = (rel: string) => path.join(dir, rel);
  for (const d of [
    "usr/bin",
    "usr/lib/extension-release.d",
    "usr/share/doc",
    "usr/share/many",
    `usr/share/${DEEP_DIR}`,
    "opt/empty",
  ])
    await mkdir(p(d), { recursive: true });
  await writeFile(p("usr/bin/tool"), "#!/bin/sh\necho tool\n", { mode: 0o755 });
  await link(p("usr/bin/tool"), p("usr/bin/tool-hardlink"));
  await symlink("tool", p("usr/bin/tool-link"));
  await symlink("/usr/share/doc/notes", p("usr/bin/abs-link"));
  await writeFile(p("usr/lib/extension-release.d/extension-release.fixture"), "ID=_any\n");
  await writeFile(p("usr/share/doc/notes"), "some notes\n".repeat(100));
  await writeFile(p("usr/share/doc/empty"), "");
  await writeFile(p("usr/share/random.bin"), randomBytes(3 * 1024 * 1024 + 12345));
  await writeFile(p("usr/share/text.txt"), "a compressible line of text\n".repeat(150_000));
  await writeFile(p("usr/share/setuid"), "x", { mode: 0o4755 });
  const sparse = p("usr/share/sparse.img");
  await writeFile(sparse, "");
  await truncate(sparse, 5 * 1024 * 1024);
  const fh = await open(sparse, "r+");
  await fh.write(Buffer.from("island"), 0, 6, 2 * 1024 * 1024 + 7);
  await fh.close();
  await writeFile(p(`usr/share/${LONG_NAME}`), "long\n");
  await writeFile(p(`usr/share/${DEEP_DIR}/bottom`), "deep\n");
  // Enough entries that squashfs needs directory index entries for this directory.
  for (let i = 0; i < 700; i++)
    await writeFile(
      p(`usr/share/many/entry-with-a-longish-name-${String(i).padStart(4, "0")}`),
      String(i),
    );
  const script = Object.entries(XATTRS)
    .flatMap(([file, attrs]) =>
      Object.entries(attrs).map(
        ([k, v]) =>
          `os.setxattr(${JSON.stringify(p(file))}, ${JSON.stringify(k)}, ${JSON.stringify(v)}.encode())`,
      ),
    )
    .join("\n");
  execFileSync("python3", ["-c", `import os\n${script}`]);
}
