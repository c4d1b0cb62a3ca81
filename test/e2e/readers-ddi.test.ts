// A DDI made by systemd-repart 252 (squashfs + verity + signature): dissect and inspect agree
// with systemd-dissect --json=short, sfdisk --json, veritysetup dump and openssl.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { FileSource } from "../../src/util/bytes.js";
import { dissectImage } from "../../src/domain/image/ddi.js";
import { openFilesystem } from "../../src/domain/image/filesystem.js";
import { findReleaseFile } from "../../src/domain/image/release.js";
import { runExtctl } from "../helpers/cli.js";
import { requirePeers, run } from "../helpers/peers.js";
import { makeSigningCert } from "../helpers/keys.js";
import { tempDir, tempRoot } from "../helpers/tmp.js";
import type { InspectResult } from "../../src/operations/inspect.js";

interface DissectJson {
  /** systemd-dissect 252's name for the release file's lines; 257 and later say sysextRelease. */
  extensionRelease?: string[];
  sysextRelease?: string[];
  mounts: {
    designator: string;
    partition_uuid: string;
    partition_label: string;
    fstype: string;
    architecture: string;
    partno: number;
  }[];
}

interface SfdiskJson {
  partitiontable: {
    id: string;
    partitions: {
      start: number;
      size: number;
      type: string;
      uuid: string;
      name: string;
      attrs?: string;
    }[];
  };
}

async function makeRepartDdi(dir: string): Promise<{ image: string; cert: string }> {
  const defs = path.join(dir, "defs");
  const tree = path.join(dir, "tree");
  await mkdir(defs);
  await mkdir(path.join(tree, "usr/lib/extension-release.d"), { recursive: true });
  await mkdir(path.join(tree, "usr/bin"), { recursive: true });
  await writeFile(
    path.join(tree, "usr/lib/extension-release.d/extension-release.hello"),
    'ID=debian\nVERSION_ID="12"\nSYSEXT_VERSION_ID=1.2.3\n',
  );
  await writeFile(path.join(tree, "usr/bin/hello"), "#!/bin/sh\necho hello\n", { mode: 0o755 });
  await writeFile(
    path.join(defs, "10-root.conf"),
    "[Partition]\nType=root\nFormat=squashfs\nCopyFiles=/usr\nVerity=data\nVerityMatchKey=root\n",
  );
  await writeFile(
    path.join(defs, "20-verity.conf"),
    "[Partition]\nType=root-verity\nVerity=hash\nVerityMatchKey=root\n",
  );
  await writeFile(
    path.join(defs, "30-sig.conf"),
    "[Partition]\nType=root-verity-sig\nVerity=signature\nVerityMatchKey=root\n",
  );
  const { key, cert } = makeSigningCert(dir, "reader", { subject: "/CN=Reader Test/O=extctl" });
  const image = path.join(dir, "hello.raw");
  run("systemd-repart", [
    "--empty=create",
    "--size=auto",
    "--dry-run=no",
    `--definitions=${defs}`,
    `--private-key=${key}`,
    `--certificate=${cert}`,
    `--root=${tree}`,
    image,
  ]);
  return { image, cert };
}

test("a systemd-repart DDI: partitions, architecture, release file, verity and signer match the real tools", async (t) => {
  if (
    !requirePeers(
      t,
      ["systemd-repart", "systemd-dissect", "sfdisk", "veritysetup", "openssl", "mksquashfs"],
      { root: true },
    )
  )
    return;
  const dir = await tempDir(t);
  const { image, cert } = await makeRepartDdi(dir);
  const dissectJson = JSON.parse(run("systemd-dissect", ["--json=short", image])) as DissectJson;
  const sfdisk = (JSON.parse(run("sfdisk", ["--json", image])) as SfdiskJson).partitiontable;

  const src = await FileSource.open(image);
  t.after(() => src.close());
  const d = await dissectImage(src, { architecture: "x86-64" });
  assert.equal(d.kind, "ddi");
  assert.equal(d.filesystem, "squashfs");
  assert.equal(d.gpt?.diskGuid, sfdisk.id.toLowerCase());
  assert.equal(d.partitions.length, sfdisk.partitions.length);
  for (const [i, want] of sfdisk.partitions.entries()) {
    const got = d.partitions[i]!;
    assert.equal(got.offset, want.start * 512);
    assert.equal(got.size, want.size * 512);
    assert.equal(got.typeGuid, want.type.toLowerCase());
    assert.equal(got.uniqueGuid, want.uuid.toLowerCase());
    assert.equal(got.name, want.name);
    assert.equal(got.readOnly, (want.attrs ?? "").includes("60"));
  }
  for (const m of dissectJson.mounts) {
    const got = d.partitions.find((p) => p.index === m.partno);
    assert.ok(got, `partition ${m.partno}`);
    assert.equal(got.uniqueGuid, m.partition_uuid);
    assert.equal(got.name, m.partition_label);
    assert.equal(got.architecture, m.architecture);
    assert.equal(got.designator, m.designator);
  }
  assert.equal(
    d.data.partition?.index,
    dissectJson.mounts.find((m) => m.designator === "root")?.partno,
  );
  assert.equal(d.architecture, dissectJson.mounts[0]?.architecture);

  const fs = await openFilesystem(d.data.source, d.filesystem);
  const release = await findReleaseFile(fs, "hello", "sysext");
  assert.equal(release.found, "exact");
  const wantFields = Object.fromEntries(
    (dissectJson.extensionRelease ?? dissectJson.sysextRelease ?? []).map((l) => [
      l.slice(0, l.indexOf("=")),
      l.slice(l.indexOf("=") + 1),
    ]),
  );
  assert.deepEqual("fields" in release ? release.fields : {}, wantFields);

  // The CLI: verity from the superblock equals veritysetup dump; signer equals the certificate.
  const inspected = await runExtctl(["inspect", "--json", image]);
  assert.equal(inspected.code, 0, inspected.stderr);
  const r = JSON.parse(inspected.stdout) as InspectResult;
  const verityPart = d.verity!.partition!;
  const dump = run("veritysetup", ["dump", image, `--hash-offset=${verityPart.offset}`]);
  const field = (name: string) => new RegExp(`^${name}:\\s*(\\S+)`, "m").exec(dump)?.[1];
  assert.equal(r.verity?.salt, field("Salt"));
  assert.equal(r.verity?.uuid, field("UUID"));
  assert.equal(r.verity?.hashAlgorithm, field("Hash algorithm"));
  assert.equal(String(r.verity?.dataBlocks), field("Data blocks"));
  assert.equal(String(r.verity?.dataBlockSize), field("Data block size"));
  assert.equal(
    r.verity?.rootHash,
    r.signature?.rootHash,
    "root hash from the UUIDs equals the signed one",
  );
  const fingerprint = run("openssl", ["x509", "-in", cert, "-noout", "-fingerprint", "-sha256"])
    .split("=")[1]!
    .trim()
    .replace(/:/g, "")
    .toLowerCase();
  assert.equal(r.signature?.signer?.fingerprint, fingerprint);
  assert.equal(r.signature?.certificateFingerprint, fingerprint);
  assert.match(r.signature?.signer?.subject ?? "", /CN=Reader Test/);
  // The host does not trust the signer; with --trust CERT it does.
  assert.equal(r.signature?.status, "untrusted-signer");
  const trusted = await runExtctl(["inspect", "--json", "--trust", cert, image]);
  assert.equal(trusted.code, 0, trusted.stderr);
  const rt = JSON.parse(trusted.stdout) as InspectResult;
  assert.equal(rt.signature?.status, "trusted");
  assert.match(rt.signature?.trust ?? "", /CN=Reader Test/);
  assert.equal(r.release?.fields.SYSEXT_VERSION_ID, "1.2.3");
  assert.ok(r.bytesRead < r.size / 4, `inspect read ${r.bytesRead} of ${r.size} bytes`);

  // check: the Debian 12 temp root matches ID and VERSION_ID; a Fedora root does not.
  const root = await tempRoot(t);
  const ok = await runExtctl(["--root", root, "check", "--systemd", "252", image]);
  assert.equal(ok.code, 0, ok.stdout + ok.stderr);
  assert.match(ok.stdout, /^MERGES/);
  const fedora = await tempRoot(t, "ID=fedora\nVERSION_ID=40\n");
  const refused = await runExtctl(["--root", fedora, "check", "--json", image]);
  assert.equal(refused.code, 1);
  const verdict = JSON.parse(refused.stdout) as {
    compatible: boolean;
    rules: { rule: string; status: string }[];
  };
  assert.equal(verdict.compatible, false);
  assert.equal(verdict.rules.find((x) => x.rule === "id-match")?.status, "fail");
});
