// How the built CLI's output reads where people and the journal see it, on real stores: tables
// fitted to COLUMNS=60 (and whole with --full), each result printed once by upgrade and apply,
// and under a unit ($JOURNAL_STREAM naming stdout and stderr) a line per event with its
// sd-daemon priority and a one-line summary from upgrade and boot, instead of a table or JSON.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { closeSync, fstatSync, openSync, readFileSync } from "node:fs";
import { mkdir, readFile, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import { EXTCTL_BIN, runExtctl } from "../helpers/cli.js";
import { catalogFixture, ok } from "../helpers/catalog-fixture.js";
import { makeSampleImage } from "../helpers/images.js";
import { requirePeers } from "../helpers/peers.js";
import { tempDir, tempNodeRoot, tempRoot } from "../helpers/tmp.js";
import { withHttpsServer } from "../helpers/https-server.js";

const STORE = "var/lib/kairos/extensions";

/**
 * Runs extctl as a unit's ExecStart= would: stdout and stderr one stream (a file here, the
 * journal's socket there) whose device and inode $JOURNAL_STREAM names.
 */
async function runAsUnit(
  dir: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number; lines: string[] }> {
  const file = path.join(dir, `journal-${Date.now()}-${Math.random()}`);
  const fd = openSync(file, "w");
  const st = fstatSync(fd, { bigint: true });
  const code = await new Promise<number>((resolve, reject) => {
    const child = spawn(process.execPath, [EXTCTL_BIN, ...args], {
      stdio: ["ignore", fd, fd],
      env: { ...process.env, NO_COLOR: "1", JOURNAL_STREAM: `${st.dev}:${st.ino}`, ...env },
    });
    child.on("error", reject);
    child.on("close", (c) => resolve(c ?? 128));
  });
  closeSync(fd);
  const lines = readFileSync(file, "utf8").split("\n").filter(Boolean);
  return { code, lines };
}

test("tables fit COLUMNS=60 with the widest cell ellipsized; --full and --no-legend", async (t) => {
  if (!requirePeers(t, ["mksquashfs"], { root: true })) return;
  const work = await tempDir(t);
  const root = await tempRoot(t);
  const foreign = await makeSampleImage(work, {
    fileName: "a-rather-long-extension-name.raw",
    release: "ID=fedora\nVERSION_ID=40\nSYSEXT_LEVEL=1.0\n",
  });
  ok(await runExtctl(["--root", root, "sysext", "install", foreign]), "install");
  const list = (...extra: string[]) =>
    runExtctl(["--root", root, "sysext", "list", ...extra], { env: { COLUMNS: "60" } });

  const fitted = ok(await list(), "list");
  const lines = fitted.stdout.trimEnd().split("\n");
  assert.equal(lines.length, 2, fitted.stdout);
  for (const line of lines) assert.ok([...line].length <= 60, `wider than 60: ${line}`);
  assert.match(lines[1] ?? "", /…/, "the widest cell ends in an ellipsis");
  assert.match(lines[0] ?? "", /^NAME/);

  const full = ok(await list("--full"), "list --full");
  const fullRow = full.stdout.trimEnd().split("\n")[1] ?? "";
  assert.ok([...fullRow].length > 60, "--full is not cut to the width");
  assert.doesNotMatch(fullRow, /…/);
  assert.match(fullRow, /a-rather-long-extension-name\.raw/);
  assert.match(fullRow, /fedora/, "the whole reason is there");

  const bare = ok(await list("--no-legend"), "list --no-legend");
  assert.equal(bare.stdout.trimEnd().split("\n").length, 1);
  assert.doesNotMatch(bare.stdout, /^NAME/);
});

test("upgrade prints each result once; under a unit a line per event with its priority and a summary", async (t) => {
  if (!requirePeers(t, ["docker-registry", "mksquashfs", "openssl"], { root: true })) return;
  const f = await catalogFixture(t);
  const work = await tempDir(t);
  const hello = [
    await f.publishVersion("hello", "1.0.0"),
    await f.publishVersion("hello", "2.0.0"),
  ];
  const other = await f.publishVersion("other", "1.0.0");
  const catalog = (latest: string, generated: string) =>
    f.serveCatalog(
      "releases.json",
      f.catalogJson(
        {
          hello: {
            latest,
            tags: hello.map((p) => ({ version: p.version, published: p })),
          },
          other: { latest: "1.0.0", tags: [{ version: "1.0.0", published: other }] },
        },
        generated,
      ),
    );
  const url = catalog("1.0.0", "2026-01-01T00:00:00Z");
  const net = ["--catalog", url, ...f.net];
  const roots = [await tempRoot(t), await tempRoot(t)];
  for (const root of roots)
    for (const name of ["hello", "other"])
      ok(await runExtctl(["--root", root, "sysext", "install", name, ...net]), `install ${name}`);
  catalog("2.0.0", "2026-02-01T00:00:00Z");

  // In a terminal or a pipe: the table on stdout, and the upgrade is not logged again on stderr.
  const plain = ok(
    await runExtctl(["--root", roots[0] ?? "", "sysext", "upgrade", "--all", ...net]),
    "upgrade",
  );
  const mentions = `${plain.stdout}\n${plain.stderr}`
    .split("\n")
    .filter((l) => /\bhello\b/.test(l));
  assert.equal(mentions.length, 1, `hello is reported once:\n${plain.stdout}${plain.stderr}`);
  assert.match(plain.stdout, /^NAME +FROM +TO +ACTION/m);

  // Under a unit: no table, no JSON; every line has its priority.
  const unit = await runAsUnit(work, [
    "--root",
    roots[1] ?? "",
    "sysext",
    "upgrade",
    "--all",
    ...net,
  ]);
  assert.equal(unit.code, 0, unit.lines.join("\n"));
  for (const line of unit.lines) assert.match(line, /^<[3-7]>/, `no priority: ${line}`);
  assert.ok(!unit.lines.some((l) => /^<\d>(NAME|\{)/.test(l)), unit.lines.join("\n"));
  const events = unit.lines.filter((l) => /sysext hello/.test(l));
  assert.equal(events.length, 1, unit.lines.join("\n"));
  assert.match(events[0] ?? "", /^<6>sysext hello: upgraded 1\.0\.0 -> 2\.0\.0: /);
  assert.ok(!unit.lines.some((l) => /sysext other/.test(l)), "up to date is no event");
  assert.equal(unit.lines.at(-1), "<6>sysext upgrade: 1 upgraded, 1 up-to-date");

  // Nothing new: exit 3 and the summary alone.
  const again = await runAsUnit(work, [
    "--root",
    roots[1] ?? "",
    "sysext",
    "upgrade",
    "--all",
    ...net,
  ]);
  assert.equal(again.code, 3);
  assert.deepEqual(again.lines, ["<6>sysext upgrade: 2 up-to-date"]);
});

test("boot under a unit logs each link and skip with its priority, then one summary line", async (t) => {
  if (!requirePeers(t, ["mksquashfs"], { root: true })) return;
  const work = await tempDir(t);
  const root = await tempNodeRoot(t);
  await mkdir(path.join(root, STORE, "active"), { recursive: true });
  for (const [name, release] of [
    ["good", "ID=_any\n"],
    ["bad", "ID=fedora\nVERSION_ID=40\n"],
  ] as const) {
    const file = await makeSampleImage(work, { fileName: `${name}.raw`, release });
    await writeFile(path.join(root, STORE, `${name}.raw`), await readFile(file));
    await symlink(`/${STORE}/${name}.raw`, path.join(root, STORE, "active", `${name}.raw`));
  }
  const unit = await runAsUnit(work, ["--root", root, "boot", "--no-refresh"], {
    SYSTEMD_PROC_CMDLINE: "root=LABEL=COS_ACTIVE",
  });
  assert.equal(unit.code, 0, unit.lines.join("\n"));
  for (const line of unit.lines) assert.match(line, /^<[3-7]>/, `no priority: ${line}`);
  assert.ok(!unit.lines.some((l) => /KIND|NAME/.test(l)), "no table");
  assert.equal(unit.lines.filter((l) => /good\.raw/.test(l)).length, 1, unit.lines.join("\n"));
  assert.match(unit.lines.find((l) => /good\.raw/.test(l)) ?? "", /^<6>linked sysext good\.raw/);
  assert.match(
    unit.lines.find((l) => /bad\.raw/.test(l)) ?? "",
    /^<4>(warning: )?skipping sysext bad\.raw/,
  );
  assert.match(
    unit.lines.at(-1) ?? "",
    /^<4>boot: active boot, profile active then common, policy \S+: 1 image linked, 1 skipped$/,
  );
});

test("apply prints the steps it took once", async (t) => {
  if (!requirePeers(t, ["mksquashfs"], { root: true })) return;
  const work = await tempDir(t);
  const root = await tempRoot(t);
  const image = await makeSampleImage(work, { fileName: "tools.raw", release: "ID=_any\n" });
  const digest = createHash("sha256")
    .update(await readFile(image))
    .digest("hex");
  const file = path.join(work, "node.yaml");
  await writeFile(
    file,
    `extensions:\n  sysext:\n    - source: file://${image}\n      sha256: ${digest}\n      profiles: [common]\n`,
  );
  const r = ok(await runExtctl(["--root", root, "apply", file]), "apply");
  const all = `${r.stdout}\n${r.stderr}`.split("\n");
  assert.equal(all.filter((l) => /install(ed)? .*tools/.test(l)).length, 1, r.stdout + r.stderr);
  assert.equal(all.filter((l) => /enable(d)? .*tools/.test(l)).length, 1, r.stdout + r.stderr);
  assert.match(r.stdout, /^done:/);
});

test("an http:// URL aimed at a real TLS server's port is told to use https://, not to try again", async (t) => {
  if (!requirePeers(t, ["openssl"], { root: true })) return;
  const work = await tempDir(t);
  const root = await tempRoot(t);
  const server = await withHttpsServer(t, { dir: path.join(work, "certs") });
  server.addFile("x.raw", Buffer.alloc(4096));
  const https = server.url("x.raw");
  const http = `http://${https.slice("https://".length)}`;
  const r = await runExtctl(["--root", root, "sysext", "install", http, "--timeout", "5"]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`use ${https.replace(/[.?]/g, "\\$&")}`));
  assert.doesNotMatch(r.stderr, /^\s+try again$/m);
});
