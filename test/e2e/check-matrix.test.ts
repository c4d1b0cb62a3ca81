// The differential test of `check`: for each case an image and a root are made, `extctl check
// --json` (no --systemd: it reads the root's version) gives a verdict, and the real
// systemd-sysext/systemd-confext refresh on that root gives another; they must be the same. Runs on
// the host's systemd and in every lane (the lane's own systemd and Node).
//
// This machine has no device-mapper, so both sides run with SYSTEMD_DISSECT_VERITY_EMBEDDED=0 and
// SYSTEMD_DISSECT_VERITY_SIDECAR=0: systemd then mounts a DDI's data partition without verity, and
// the image counts as unprotected under an image policy (check honours the same variables). What
// this proves for policies is therefore: unprotected images against verity/signed/`*`/absent
// policies, given in a unit drop-in or by trusted boot; signed-vs-verity distinctions are proven
// by test/e2e/repart-ddi.test.ts against systemd-dissect --validate and by extctl's verifier.
//
// 257 and 262 still judge the policy by the partitions a DDI has (signature partition: signed)
// with that variable; 262 then sets up dm-verity anyway and fails here, so those cases are
// skipped on 262 with that reason (a fact of this kernel, not a missing peer).
//
// `systemd-sysext --root` up to 257 takes the initrd scope from the running system, not from
// ROOT/etc/initrd-release, so cases with that file also set SYSTEMD_IN_INITRD=1 for both sides;
// 262 reads ROOT/etc/initrd-release and ignores the variable (check models both).
import { describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { access, copyFile, mkdir, rename, writeFile } from "node:fs/promises";
import path from "node:path";
import { runExtctl } from "../helpers/cli.js";
import { hasCommand, requirePeers, run } from "../helpers/peers.js";
import { makeSigningCert } from "../helpers/keys.js";
import { tempDir, tempNodeRoot } from "../helpers/tmp.js";

const DEBIAN_12 = 'ID=debian\nVERSION_ID="12"\n';
const ENV = { SYSTEMD_DISSECT_VERITY_EMBEDDED: "0", SYSTEMD_DISSECT_VERITY_SIDECAR: "0" };
const KAIROS_POLICY = "root=verity+absent:usr=verity+absent";
const SIGNED_POLICY = "root=signed+absent:usr=signed+absent";

/** What systemd version runs here: systemd-sysext --version says "systemd 252 (252.39-...)". */
function systemdVersion(): number {
  const r = spawnSync("systemd-sysext", ["--version"], { encoding: "utf8" });
  const m = /systemd (\d+)/.exec(r.stdout ?? "");
  return m ? Number(m[1]) : 0;
}

interface Case {
  name: string;
  kind?: "sysext" | "confext";
  /** Image file name (default mN.raw). */
  file?: string;
  /** Release file content; undefined: none. */
  release?: string;
  /** extension-release.NAME (default: the file name minus .raw). */
  releaseName?: string;
  /** Release file marked user.extension-release.strict=<value>. */
  strictXattr?: "false" | "true";
  /** More files in the image (node path -> content), or xattr-marked extra release files. */
  files?: Record<string, string>;
  relaxedExtras?: string[];
  /** The root's usr/lib/os-release. */
  host?: string;
  /** initrd: via ROOT/etc/initrd-release (file) or SYSTEMD_IN_INITRD=1 for both (env). */
  initrd?: "file" | "env";
  /** An image policy in the unit's drop-in (ExecStart= --image-policy=). */
  unitPolicy?: string;
  /** A trusted (UKI) boot sentinel: the unit immucore writes then carries the signed policy. */
  trustedBoot?: boolean;
  /** Build with extctl build: a verity DDI, signed or not. */
  ddi?: "signed" | "unsigned";
}

const CASES: Case[] = [
  // ID and _any
  { name: "ID=_any merges anywhere", release: "ID=_any\n" },
  { name: "ID and VERSION_ID equal to the host's", release: "ID=debian\nVERSION_ID=12\n" },
  { name: "another ID", release: "ID=fedora\nVERSION_ID=12\n" },
  { name: "an empty ID", release: "ID=\nVERSION_ID=12\n" },
  { name: "no ID at all", release: "VERSION_ID=12\n" },
  { name: "quoted values are unquoted", release: "ID='debian'\nVERSION_ID=\"12\"\n" },
  // VERSION_ID
  { name: "another VERSION_ID", release: "ID=debian\nVERSION_ID=11\n" },
  { name: "no VERSION_ID while the host has one", release: "ID=debian\n" },
  { name: "an empty VERSION_ID", release: "ID=debian\nVERSION_ID=\n" },
  {
    name: "a rolling host (no VERSION_ID) takes any version",
    release: "ID=arch\nVERSION_ID=5\n",
    host: "ID=arch\n",
  },
  {
    name: "a rolling host and no VERSION_ID in the image",
    release: "ID=arch\n",
    host: "ID=arch\n",
  },
  // SYSEXT_LEVEL / CONFEXT_LEVEL
  {
    name: "SYSEXT_LEVEL equal wins over a different VERSION_ID",
    release: "ID=debian\nSYSEXT_LEVEL=1.0\nVERSION_ID=11\n",
    host: DEBIAN_12 + "SYSEXT_LEVEL=1.0\n",
  },
  {
    name: "SYSEXT_LEVEL different",
    release: "ID=debian\nSYSEXT_LEVEL=2.0\nVERSION_ID=12\n",
    host: DEBIAN_12 + "SYSEXT_LEVEL=1.0\n",
  },
  {
    name: "SYSEXT_LEVEL only in the image falls back to VERSION_ID",
    release: "ID=debian\nSYSEXT_LEVEL=1.0\nVERSION_ID=12\n",
  },
  {
    name: "SYSEXT_LEVEL only in the image and no VERSION_ID",
    release: "ID=debian\nSYSEXT_LEVEL=1.0\n",
  },
  {
    name: "a host with only SYSEXT_LEVEL and an image without one",
    release: "ID=debian\n",
    host: "ID=debian\nSYSEXT_LEVEL=1.0\n",
  },
  {
    name: "a host with only SYSEXT_LEVEL and another level",
    release: "ID=debian\nSYSEXT_LEVEL=3\n",
    host: "ID=debian\nSYSEXT_LEVEL=1.0\n",
  },
  {
    name: "an empty SYSEXT_LEVEL in the image compares VERSION_ID",
    release: "ID=debian\nSYSEXT_LEVEL=\nVERSION_ID=11\n",
    host: DEBIAN_12 + "SYSEXT_LEVEL=1.0\n",
  },
  // ID_LIKE
  {
    name: "ID in the host's ID_LIKE",
    release: "ID=debian\nVERSION_ID=24.04\n",
    host: 'ID=ubuntu\nID_LIKE=debian\nVERSION_ID="24.04"\n',
  },
  {
    name: "ID second in a list ID_LIKE",
    release: "ID=fedora\nVERSION_ID=9\n",
    host: 'ID=rocky\nID_LIKE="rhel centos fedora"\nVERSION_ID=9\n',
  },
  {
    name: "ID not in the host's ID_LIKE",
    release: "ID=suse\nVERSION_ID=24.04\n",
    host: 'ID=ubuntu\nID_LIKE=debian\nVERSION_ID="24.04"\n',
  },
  {
    name: "ID_LIKE match still compares VERSION_ID",
    release: "ID=debian\nVERSION_ID=12\n",
    host: 'ID=ubuntu\nID_LIKE=debian\nVERSION_ID="24.04"\n',
  },
  // ARCHITECTURE
  { name: "ARCHITECTURE=x86-64", release: "ID=_any\nARCHITECTURE=x86-64\n" },
  { name: "ARCHITECTURE=arm64", release: "ID=_any\nARCHITECTURE=arm64\n" },
  { name: "ARCHITECTURE=_any", release: "ID=_any\nARCHITECTURE=_any\n" },
  { name: "an empty ARCHITECTURE", release: "ID=_any\nARCHITECTURE=\n" },
  {
    name: "ARCHITECTURE is checked before ID",
    release: "ID=debian\nVERSION_ID=12\nARCHITECTURE=riscv64\n",
  },
  // SYSEXT_SCOPE / CONFEXT_SCOPE
  { name: "SYSEXT_SCOPE=system", release: "ID=_any\nSYSEXT_SCOPE=system\n" },
  { name: "SYSEXT_SCOPE=initrd on a booted system", release: "ID=_any\nSYSEXT_SCOPE=initrd\n" },
  { name: "SYSEXT_SCOPE=portable on a booted system", release: "ID=_any\nSYSEXT_SCOPE=portable\n" },
  {
    name: "SYSEXT_SCOPE=initrd in the initrd (SYSTEMD_IN_INITRD)",
    release: "ID=_any\nSYSEXT_SCOPE=initrd\n",
    initrd: "env",
  },
  {
    name: "SYSEXT_SCOPE=initrd with /etc/initrd-release",
    release: "ID=_any\nSYSEXT_SCOPE=initrd\n",
    initrd: "file",
  },
  {
    name: "the default scope (system portable) in the initrd",
    release: "ID=_any\n",
    initrd: "file",
  },
  {
    name: "SYSEXT_SCOPE lists initrd and system, in the initrd",
    release: 'ID=_any\nSYSEXT_SCOPE="initrd system"\n',
    initrd: "env",
  },
  // Empty and missing
  { name: "an empty release file", release: "" },
  { name: "a release file of comments only", release: "# nothing here\n" },
  { name: "no release file", files: { "usr/share/doc/x": "x" } },
  {
    name: "an image holding usr/lib/os-release",
    release: "ID=_any\n",
    files: { "usr/lib/os-release": "ID=debian\n" },
  },
  // Names and fallbacks
  { name: "NAME.raw with extension-release.NAME", file: "plain.raw", release: "ID=_any\n" },
  {
    name: "NAME.sysext.raw with extension-release.NAME",
    file: "tool.sysext.raw",
    release: "ID=_any\n",
    releaseName: "tool",
  },
  {
    name: "NAME.sysext.raw with extension-release.NAME.sysext",
    file: "tool2.sysext.raw",
    release: "ID=_any\n",
    releaseName: "tool2.sysext",
  },
  {
    name: "NAME_1.2.raw with extension-release.NAME",
    file: "k3s_1.2.raw",
    release: "ID=_any\n",
    releaseName: "k3s",
  },
  {
    name: "NAME+k3s.raw with extension-release.NAME",
    file: "kube+k3s.raw",
    release: "ID=_any\n",
    releaseName: "kube",
  },
  {
    name: "NAME_1.2.raw with extension-release.NAME_1.2",
    file: "vv_1.2.raw",
    release: "ID=_any\n",
    releaseName: "vv_1.2",
  },
  {
    name: "another name without the xattr",
    file: "renamed.raw",
    release: "ID=_any\n",
    releaseName: "original",
  },
  {
    name: "another name marked strict=false",
    file: "renamed2.raw",
    release: "ID=_any\n",
    releaseName: "original",
    strictXattr: "false",
  },
  {
    name: "another name marked strict=true",
    file: "renamed3.raw",
    release: "ID=_any\n",
    releaseName: "original",
    strictXattr: "true",
  },
  {
    name: "two release files marked strict=false",
    file: "renamed4.raw",
    release: "ID=_any\n",
    releaseName: "one",
    strictXattr: "false",
    relaxedExtras: ["two"],
  },
  // confext
  { name: "confext ID=_any", kind: "confext", release: "ID=_any\n" },
  {
    name: "confext NAME.confext.raw with extension-release.NAME",
    kind: "confext",
    file: "cfg.confext.raw",
    release: "ID=_any\n",
    releaseName: "cfg",
  },
  {
    name: "confext CONFEXT_LEVEL different",
    kind: "confext",
    release: "ID=debian\nCONFEXT_LEVEL=2\nVERSION_ID=12\n",
    host: DEBIAN_12 + "CONFEXT_LEVEL=1\n",
  },
  {
    name: "confext ignores SYSEXT_LEVEL",
    kind: "confext",
    release: "ID=debian\nSYSEXT_LEVEL=2\nVERSION_ID=12\n",
    host: DEBIAN_12 + "SYSEXT_LEVEL=1\n",
  },
  {
    name: "confext CONFEXT_SCOPE=initrd on a booted system",
    kind: "confext",
    release: "ID=_any\nCONFEXT_SCOPE=initrd\n",
  },
  // Image policy
  {
    name: "Kairos's verity policy refuses a bare squashfs (hello-broke)",
    release: "ID=_any\n",
    unitPolicy: KAIROS_POLICY,
  },
  {
    name: "the signed policy refuses a bare squashfs",
    release: "ID=_any\n",
    unitPolicy: SIGNED_POLICY,
  },
  { name: "policy * admits a bare squashfs", release: "ID=_any\n", unitPolicy: "*" },
  {
    name: "policy unprotected+absent admits a bare squashfs",
    release: "ID=_any\n",
    unitPolicy: "root=unprotected+absent:usr=unprotected+absent",
  },
  {
    name: "policy absent only refuses any image",
    release: "ID=_any\n",
    unitPolicy: "root=absent:usr=absent",
  },
  {
    name: "trusted boot (uki_boot_mode) refuses a bare squashfs",
    release: "ID=_any\n",
    trustedBoot: true,
  },
  { name: "no policy: a signed DDI merges", ddi: "signed" },
  { name: "no policy: an unsigned verity DDI merges", ddi: "unsigned" },
  {
    name: "the verity policy and a signed DDI without its embedded verity",
    ddi: "signed",
    unitPolicy: KAIROS_POLICY,
  },
  {
    name: "the signed policy and a signed DDI without its embedded signature",
    ddi: "signed",
    unitPolicy: SIGNED_POLICY,
  },
  {
    name: "the verity policy and an unsigned verity DDI",
    ddi: "unsigned",
    unitPolicy: KAIROS_POLICY,
  },
  { name: "policy * and a signed DDI", ddi: "signed", unitPolicy: "*" },
  {
    name: "confext: Kairos's verity policy in systemd-confext's drop-in",
    kind: "confext",
    release: "ID=_any\n",
    unitPolicy: KAIROS_POLICY,
  },
];

async function exists(p: string): Promise<boolean> {
  return access(p).then(
    () => true,
    () => false,
  );
}

function setStrict(file: string, value: string): void {
  if (hasCommand("setfattr"))
    run("setfattr", ["-n", "user.extension-release.strict", "-v", value, file]);
  else
    run("python3", [
      "-c",
      "import os,sys; os.setxattr(sys.argv[1], 'user.extension-release.strict', sys.argv[2].encode())",
      file,
      value,
    ]);
}

const releaseDir = (kind: "sysext" | "confext") =>
  kind === "confext" ? "etc/extension-release.d" : "usr/lib/extension-release.d";
const markerOf = (kind: "sysext" | "confext", id: string) =>
  kind === "confext" ? `etc/extctl-matrix/${id}` : `usr/share/extctl-matrix/${id}`;

/** Makes the case's image in `work` and returns its path. */
async function makeImage(work: string, c: Case, id: string, pki: { key: string; cert: string }) {
  const kind = c.kind ?? "sysext";
  const file = c.file ?? `${id}.raw`;
  const tree = path.join(work, `tree-${id}`);
  const write = async (rel: string, content: string) => {
    await mkdir(path.dirname(path.join(tree, rel)), { recursive: true });
    await writeFile(path.join(tree, rel), content);
  };
  await write(markerOf(kind, id), id);
  if (c.ddi) {
    const out = path.join(work, `out-${id}`);
    await mkdir(out);
    const signing = c.ddi === "signed" ? ["--private-key", pki.key, "--certificate", pki.cert] : [];
    const built = await runExtctl([
      "build",
      kind,
      id,
      tree,
      "-o",
      out,
      "--format",
      "squashfs",
      "--verity-block-size",
      "512",
      ...signing,
    ]);
    assert.equal(built.code, 0, built.stderr);
    const dest = path.join(work, file);
    await copyFile(path.join(out, `${id}.${kind}.raw`), dest);
    return dest;
  }
  for (const [rel, content] of Object.entries(c.files ?? {})) await write(rel, content);
  if (c.release !== undefined) {
    const name = c.releaseName ?? file.replace(/\.raw$/, "");
    const rel = `${releaseDir(kind)}/extension-release.${name}`;
    await write(rel, c.release);
    if (c.strictXattr) setStrict(path.join(tree, rel), c.strictXattr);
    for (const extra of c.relaxedExtras ?? []) {
      const extraRel = `${releaseDir(kind)}/extension-release.${extra}`;
      await write(extraRel, c.release);
      setStrict(path.join(tree, extraRel), "false");
    }
  }
  const out = path.join(work, file);
  run("mksquashfs", [tree, out, "-noappend", "-all-root", "-quiet", "-no-progress"]);
  return out;
}

interface Verdicts {
  check: boolean;
  systemd: boolean;
  checkReason?: string;
  systemdSays: string;
  /** systemd needed dm-verity, which this machine's kernel lacks: the case decides nothing. */
  needsDeviceMapper?: boolean;
}

async function runCase(
  t: TestContext,
  c: Case,
  id: string,
  pki: { key: string; cert: string },
): Promise<Verdicts> {
  const kind = c.kind ?? "sysext";
  const work = await tempDir(t);
  const image = await makeImage(work, c, id, pki);
  const root = await tempNodeRoot(t, c.host ?? DEBIAN_12);
  const runDir = path.join(root, kind === "confext" ? "run/confexts" : "run/extensions");
  await mkdir(runDir, { recursive: true });
  const placed = path.join(runDir, path.basename(image));
  await copyFile(image, placed);
  if (c.initrd === "file") await writeFile(path.join(root, "etc/initrd-release"), "ID=debian\n");
  const tool = kind === "confext" ? "systemd-confext" : "systemd-sysext";
  // What the unit would run: its drop-in's ExecStart (Kairos/immucore write these).
  let policyArg: string | undefined = c.unitPolicy;
  if (c.unitPolicy !== undefined) {
    const dir = path.join(root, `etc/systemd/system/${tool}.service.d`);
    await mkdir(dir, { recursive: true });
    await writeFile(
      path.join(dir, "50-image-policy.conf"),
      `[Service]\nExecStart=\nExecStart=/usr/bin/${tool} refresh --image-policy=${c.unitPolicy}\n`,
    );
  }
  if (c.trustedBoot) {
    await mkdir(path.join(root, "run/cos"), { recursive: true });
    await writeFile(path.join(root, "run/cos/uki_boot_mode"), "");
    policyArg = SIGNED_POLICY; // immucore's drop-in on a UKI boot
  }
  const env: NodeJS.ProcessEnv = { ...process.env, ...ENV };
  if (c.initrd !== undefined) env.SYSTEMD_IN_INITRD = "1";

  const checked = await runExtctl(["--root", root, "check", "--json", "--kind", kind, placed], {
    env,
  });
  assert.ok(checked.code === 0 || checked.code === 1, `check failed: ${checked.stderr}`);
  const verdict = JSON.parse(checked.stdout) as {
    compatible: boolean;
    reason?: string;
    linkName?: string;
  };
  assert.equal(verdict.compatible, checked.code === 0, "exit code and JSON agree");
  // check judges the image under the name extctl links it as (252-254 give NAME.sysext.raw the
  // name NAME.sysext, so extctl links it as NAME.raw when that is what its release file says):
  // systemd is shown the image under that name, as boot and enable --now show it.
  if (verdict.linkName !== undefined && verdict.linkName !== path.basename(placed))
    await rename(placed, path.join(runDir, verdict.linkName));

  let systemdSays = "";
  let merged = false;
  let needsDeviceMapper = false;
  if (!hasCommand(tool)) systemdSays = `${tool} is not installed`;
  else {
    const args = [
      `--root=${root}`,
      "refresh",
      ...(policyArg ? [`--image-policy=${policyArg}`] : []),
    ];
    const r = spawnSync(tool, args, { encoding: "utf8", env });
    systemdSays = `exit ${r.status}: ${(r.stderr ?? "").trim().split("\n").slice(-2).join(" / ")}`;
    needsDeviceMapper =
      /device-mapper|Cannot use device \S*-verity/.test(r.stderr ?? "") && r.status !== 0;
    merged = await exists(path.join(root, markerOf(kind, id)));
    spawnSync(tool, [`--root=${root}`, "unmerge"], { encoding: "utf8", env });
  }
  return {
    check: verdict.compatible,
    systemd: merged,
    ...(verdict.reason ? { checkReason: verdict.reason } : {}),
    systemdSays,
    ...(needsDeviceMapper ? { needsDeviceMapper } : {}),
  };
}

describe(`check agrees with the real systemd-sysext/confext (systemd ${systemdVersion()})`, () => {
  const results: { name: string; agree: boolean; merged: boolean }[] = [];
  const limited: string[] = [];

  CASES.forEach((c, i) => {
    test(c.name, async (t) => {
      if (!requirePeers(t, ["systemd-sysext", "mksquashfs", "openssl"], { root: true })) return;
      if (c.strictXattr && !hasCommand("setfattr") && !hasCommand("python3")) {
        if (process.env.CI === "true") throw new Error("setfattr (attr) or python3 is needed");
        t.skip("needs setfattr or python3 to set an xattr");
        return;
      }
      const pki = c.ddi
        ? makeSigningCert(await tempDir(t, "extctl-pki-"), "matrix")
        : { key: "", cert: "" };
      const v = await runCase(t, c, `m${i + 1}`, pki);
      if (v.needsDeviceMapper) {
        // A fact of this kernel, not a missing peer: systemd 262 sets up dm-verity for a DDI even
        // with SYSTEMD_DISSECT_VERITY_EMBEDDED=0, and there is no device-mapper here.
        limited.push(c.name);
        t.skip(`systemd needs dm-verity for this DDI and this kernel has none (${v.systemdSays})`);
        return;
      }
      results.push({ name: c.name, agree: v.check === v.systemd, merged: v.systemd });
      assert.equal(
        v.check,
        v.systemd,
        `check says ${v.check ? "MERGES" : `REFUSED (${v.checkReason})`}, systemd ${v.systemd ? "merged" : "did not merge"} (${v.systemdSays})`,
      );
    });
  });

  test("the matrix has at least 40 cases and reports its agreement", async () => {
    assert.ok(CASES.length >= 40);
    const agree = results.filter((r) => r.agree).length;
    const line =
      `check-matrix systemd ${systemdVersion()}: ${agree}/${results.length} agree, ` +
      `${results.filter((r) => r.merged).length} merged, ${limited.length} need dm-verity`;
    console.log(line);
    if (process.env.EXTCTL_MATRIX_OUT)
      await writeFile(
        process.env.EXTCTL_MATRIX_OUT,
        JSON.stringify({ line, results, limited }, null, 2),
      );
  });
});
