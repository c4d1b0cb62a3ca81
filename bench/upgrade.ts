// `extctl sysext upgrade --all` of 20 extensions installed by name from a catalog (issue 14):
// (a) with nothing new in the catalog, against `extctl sysext list` of the same store (upgrade
// must not download or re-verify what it has: what is left is reading one catalog);
// (b) with 20 new versions, against 20 `extctl sysext install oci://…@sha256:…` of the same
// images (one process resolving, pulling, checking and switching 20, against 20 processes).
// Images are published with `extctl publish` to a local docker-registry; the catalog is a file:
// URL in the Kairos format (inside the root, named by the root's etc/extctl/catalogs). BENCH_RUNS for runs, BENCH_UPGRADE_COUNT for the number (20).
import { execFileSync } from "node:child_process";
import { mkdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import type { TestContext } from "node:test";
import { catalogFixture, type Published } from "../test/helpers/catalog-fixture.js";
import { benchDir, benchRoot, emitSkipped, extctl, has, measure, sideBySide } from "./lib.js";

const COUNT = Number(process.env.BENCH_UPGRADE_COUNT) || 20;
const GOAL = 1.2;
const NOTHING = `upgrade --all, ${COUNT} installed, nothing new`;
const NEW = `upgrade --all, ${COUNT} new versions`;

const cleanups: (() => unknown)[] = [];
const t = { after: (fn: () => unknown) => cleanups.push(fn) } as unknown as TestContext;

async function main(): Promise<void> {
  const missing = ["docker-registry", "mksquashfs", "openssl"].filter((c) => !has(c));
  if (missing.length > 0 || process.getuid?.() !== 0) {
    const why = missing.length > 0 ? `${missing.join(", ")} missing` : "needs root";
    emitSkipped(NOTHING, "extctl sysext list", GOAL, why);
    emitSkipped(NEW, `${COUNT} x extctl sysext install oci:`, GOAL, why);
    return;
  }
  const dir = await benchDir("extctl-bench-upgrade-");
  const f = await catalogFixture(t);
  const names = Array.from({ length: COUNT }, (_, i) => `tool${String(i).padStart(2, "0")}`);
  const old: Published[] = [];
  const fresh: Published[] = [];
  for (const name of names) {
    old.push(await f.publishVersion(name, "1.0.0"));
    fresh.push(await f.publishVersion(name, "1.1.0"));
  }
  // The root's own catalog list names a file: catalog inside the root (and every copy of it):
  // URLs in ROOT/etc/extctl/catalogs are node paths, --catalog ones host paths.
  const template = path.join(dir, "template");
  const catalogFile = path.join(template, "etc/extctl/releases.json");
  const catalogUrl = "file:///etc/extctl/releases.json";
  const writeCatalog = (offered: Published[][]) =>
    writeFile(
      catalogFile,
      f.catalogJson(
        Object.fromEntries(
          names.map((name, i) => {
            const tags = offered.map((o) => o[i] as Published);
            return [
              name,
              {
                latest: (tags.at(-1) as Published).version,
                tags: tags.map((p) => ({ version: p.version, published: p })),
              },
            ];
          }),
        ),
      ),
    );
  const net = ["--insecure-registry", f.registry.host];
  const newRoot = (where: string) => benchRoot(where, ["etc", "run"]);

  // The store: every extension installed by name at 1.0.0 and enabled in active.
  await newRoot(template);
  await mkdir(path.dirname(catalogFile), { recursive: true });
  await writeFile(path.join(template, "etc/extctl/catalogs"), `${catalogUrl}\n`);
  await writeCatalog([old]);
  for (const name of names) {
    for (const args of [
      ["install", `${name}@^1.0`, ...net],
      ["enable", name, "--active"],
    ]) {
      const r = await measure({ argv: extctl("--root", template, "sysext", ...args) });
      if (r.code !== 0) throw new Error(r.stderr);
    }
  }

  // (a) Nothing new: upgrade reads the catalog and finds every extension current.
  const upgradeArgs = extctl("--root", template, "sysext", "upgrade", "--all", "--json", ...net);
  const check = await measure({ argv: upgradeArgs, allowFailure: true });
  if (check.code !== 3)
    throw new Error(`upgrade with nothing new exited ${check.code}: ${check.stderr}`);
  await sideBySide({
    name: NOTHING,
    goal: GOAL,
    peerName: "extctl sysext list (same store)",
    extctl: { argv: upgradeArgs, allowFailure: true },
    peer: { argv: extctl("--root", template, "sysext", "list") },
    note: "exit 3 (nothing to do); file: catalog; no download, no re-verification of kept versions",
  });

  // (b) 20 new versions: each run starts from a copy of the 1.0.0 store (copied untimed).
  await writeCatalog([old, fresh]);
  const work = path.join(dir, "work");
  const copy = async () => {
    await rm(work, { recursive: true, force: true });
    execFileSync("cp", ["-a", template, work]);
  };
  const peerRoot = path.join(dir, "peer");
  const script = names
    .map(
      (_, i) =>
        `${extctl("--root", peerRoot, "sysext", "install", `oci://${(fresh[i] as Published).reference}`, "--insecure-registry", f.registry.host).join(" ")} || exit 1`,
    )
    .join("\n");
  const scriptFile = path.join(dir, "installs.sh");
  await writeFile(scriptFile, `set -e\n${script}\n`);
  await sideBySide({
    name: NEW,
    goal: GOAL,
    peerName: `${COUNT} x extctl sysext install oci:…@sha256 (fresh root)`,
    extctl: {
      argv: extctl("--root", work, "sysext", "upgrade", "--all", "--json", ...net),
      before: copy,
    },
    peer: {
      argv: ["sh", scriptFile],
      before: async () => {
        await newRoot(peerRoot);
      },
    },
    note: "one process resolves, pulls, checks and switches every extension; the peer is one install process per image",
  });
}

try {
  await main();
} finally {
  for (const fn of cleanups.reverse()) await fn();
}
