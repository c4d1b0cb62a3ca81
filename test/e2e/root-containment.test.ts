// --root contains every write and every read of an untrusted file (issue 12, security bug 6 and
// items 4 and 6): crafted roots whose store, profile dir, /run/cos, /run/extensions or unit dir
// is a symlink out of the root (absolute, or relative with ".."), and whose policy, cmdline,
// os-release or EFI variables are FIFOs, devices or huge files. Each command must refuse in
// bounded time, name the path, and leave everything outside the root as it was.
import { describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { lstat, mkdir, readdir, readFile, symlink, truncate, writeFile } from "node:fs/promises";
import path from "node:path";
import { runExtctl, type CliResult } from "../helpers/cli.js";
import { requirePeers } from "../helpers/peers.js";
import { tempDir, tempRoot } from "../helpers/tmp.js";
import { makeSigningCert } from "../helpers/keys.js";
import { superblockStubImage } from "../helpers/stub-image.js";

const STORE = "var/lib/kairos/extensions";
/** Every command here must end well within this; a hang fails the test instead of blocking. */
const TIMEOUT_MS = 20_000;
const EFI_GLOBAL = "8be4df61-93ca-11d2-aa0d-00e098032b8c";

async function extctl(root: string, args: string[]): Promise<CliResult & { ms: number }> {
  const start = Date.now();
  const result = await runExtctl(["--root", root, ...args], { timeoutMs: TIMEOUT_MS });
  return { ...result, ms: Date.now() - start };
}

/** A directory outside the root holding one file of its own, to check nothing changes there. */
async function outside(t: TestContext): Promise<string> {
  const dir = await tempDir(t, "extctl-outside-");
  await writeFile(path.join(dir, "victim.raw"), "not yours");
  return dir;
}

async function listing(dir: string): Promise<string[]> {
  return (await readdir(dir)).sort();
}

/** Makes `linkAt` a symlink to `target`: absolute as given, or relative (climbing with ".."). */
async function linkOut(linkAt: string, target: string, style: "absolute" | "relative") {
  await mkdir(path.dirname(linkAt), { recursive: true });
  await symlink(
    style === "absolute" ? target : path.relative(path.dirname(linkAt), target),
    linkAt,
  );
}

async function sourceImage(t: TestContext, name = "a.raw"): Promise<string> {
  const file = path.join(await tempDir(t), name);
  await writeFile(file, superblockStubImage(name));
  return file;
}

function refused(r: CliResult & { ms: number }, pattern: RegExp): void {
  assert.notEqual(r.code, 0, `expected a refusal, got exit 0\n${r.stdout}${r.stderr}`);
  assert.ok(r.code < 128, `killed (timeout?) with ${r.code}\n${r.stderr}`);
  assert.match(r.stderr, pattern);
}

for (const style of ["absolute", "relative"] as const) {
  describe(`--root writes never follow ${style === "absolute" ? "an absolute" : "a relative"} symlink out of the root`, () => {
    test("a store linked outside: install, enable and remove refuse, naming it, and write or delete nothing there", async (t) => {
      const root = await tempRoot(t);
      const out = await outside(t);
      await linkOut(path.join(root, STORE), out, style);
      const src = await sourceImage(t);

      const install = await extctl(root, ["sysext", "install", `file://${src}`]);
      refused(install, /var\/lib\/kairos\/extensions.*resolves outside the root/);
      const enable = await extctl(root, ["sysext", "enable", "victim", "--common"]);
      refused(enable, /resolves outside the root/);
      const remove = await extctl(root, ["sysext", "remove", "victim"]);
      refused(remove, /resolves outside the root/);
      assert.deepEqual(await listing(out), ["victim.raw"]);
      assert.equal(await readFile(path.join(out, "victim.raw"), "utf8"), "not yours");
    });

    test("a profile dir linked outside: enable, disable and remove refuse and change nothing there", async (t) => {
      const root = await tempRoot(t);
      const out = await outside(t);
      await symlink("/somewhere", path.join(out, "a.raw"));
      const src = await sourceImage(t);
      assert.equal((await extctl(root, ["sysext", "install", `file://${src}`])).code, 0);
      await linkOut(path.join(root, STORE, "common"), out, style);

      refused(
        await extctl(root, ["sysext", "enable", "a", "--common"]),
        /common.*outside the root/,
      );
      refused(await extctl(root, ["sysext", "disable", "a", "--common"]), /outside the root/);
      refused(await extctl(root, ["sysext", "remove", "a"]), /outside the root/);
      assert.deepEqual(await listing(out), ["a.raw", "victim.raw"]);
      assert.ok((await lstat(path.join(root, STORE, "a.raw"))).isFile(), "the image stays");
    });

    test("/run/cos and /run/extensions linked outside: boot refuses and writes no sentinel or link there", async (t) => {
      const root = await tempRoot(t);
      const cmdline = path.join(await tempDir(t), "cmdline");
      await writeFile(cmdline, "root=LABEL=COS_ACTIVE\n");
      const outCos = await outside(t);
      await linkOut(path.join(root, "run/cos"), outCos, style);
      const args = ["boot", "--cmdline", cmdline, "--no-refresh"];
      refused(await extctl(root, args), /\/run\/cos.*outside the root/);
      assert.deepEqual(await listing(outCos), ["victim.raw"]);

      const root2 = await tempRoot(t);
      const outRun = await outside(t);
      const src = await sourceImage(t);
      assert.equal((await extctl(root2, ["sysext", "install", `file://${src}`])).code, 0);
      assert.equal((await extctl(root2, ["sysext", "enable", "a", "--common"])).code, 0);
      await linkOut(path.join(root2, "run/extensions"), outRun, style);
      refused(await extctl(root2, args), /\/run\/extensions.*outside the root/);
      assert.deepEqual(await listing(outRun), ["victim.raw"]);
    });

    test("etc/systemd/system linked outside: systemd install and --uninstall refuse and leave it alone", async (t) => {
      const root = await tempRoot(t);
      const out = await outside(t);
      await linkOut(path.join(root, "etc/systemd/system"), out, style);
      const install = await extctl(root, [
        "systemd",
        "install",
        "--systemd",
        "255",
        "--no-trusted",
        "--extctl",
        "/usr/bin/extctl",
      ]);
      refused(install, /etc\/systemd\/system.*outside the root/);
      assert.deepEqual(await listing(out), ["victim.raw"]);
      // A unit with extctl's marker outside: uninstall must not delete it either.
      await writeFile(path.join(out, "extctl-boot.service"), "# Written by extctl\n");
      refused(await extctl(root, ["systemd", "install", "--uninstall"]), /outside the root/);
      assert.deepEqual(await listing(out), ["extctl-boot.service", "victim.raw"]);
    });

    test("etc/extctl or a drop-in dir linked outside: apply and systemd install refuse and write nothing there", async (t) => {
      const root = await tempRoot(t);
      const out = await outside(t);
      await linkOut(path.join(root, "etc/extctl"), out, style);
      const spec = path.join(await tempDir(t), "spec.yaml");
      await writeFile(spec, "policy: signed\n");
      refused(await extctl(root, ["apply", spec]), /etc\/extctl.*outside the root/);
      assert.deepEqual(await listing(out), ["victim.raw"]);

      const root2 = await tempRoot(t);
      const out2 = await outside(t);
      await linkOut(path.join(root2, "etc/systemd/system/systemd-sysext.service.d"), out2, style);
      const args = [
        "systemd",
        "install",
        "--systemd",
        "255",
        "--no-trusted",
        "--extctl",
        "/usr/bin/extctl",
      ];
      refused(await extctl(root2, args), /systemd-sysext\.service\.d.*outside the root/);
      assert.deepEqual(await listing(out2), ["victim.raw"]);
      // Nothing was written inside either: the check comes before the first write.
      assert.deepEqual(await listing(path.join(root2, "etc/systemd/system")), [
        "systemd-sysext.service.d",
      ]);
    });

    test("run/verity.d linked outside: trust import-efi refuses and writes no certificate there", async (t) => {
      if (!requirePeers(t, ["openssl"])) return;
      const root = await tempRoot(t);
      const out = await outside(t);
      await linkOut(path.join(root, "run/verity.d"), out, style);
      const efivars = path.join(root, "sys/firmware/efi/efivars");
      await mkdir(efivars, { recursive: true });
      await writeFile(path.join(efivars, `PK-${EFI_GLOBAL}`), await pkVariable(t));
      refused(
        await extctl(root, ["trust", "import-efi", "--include-pk"]),
        /run\/verity\.d.*outside the root/,
      );
      assert.deepEqual(await listing(out), ["victim.raw"]);
    });
  });
}

/** An efivarfs PK variable: 4 attribute bytes, then one EFI_SIGNATURE_LIST of one X.509 cert. */
async function pkVariable(t: TestContext): Promise<Buffer> {
  const { cert } = makeSigningCert(await tempDir(t), "pk");
  const der = execFileSync("openssl", ["x509", "-in", cert, "-outform", "DER"]);
  const x509Guid = Buffer.from("a159c0a5e494a74a87b5ab155c2bf072", "hex");
  const entry = Buffer.concat([Buffer.alloc(16, 0x11), der]);
  const head = Buffer.alloc(28);
  x509Guid.copy(head, 0);
  head.writeUInt32LE(28 + entry.length, 16);
  head.writeUInt32LE(0, 20);
  head.writeUInt32LE(entry.length, 24);
  return Buffer.concat([Buffer.from([7, 0, 0, 0]), head, entry]);
}

describe("--root writes through symlinks that stay inside the root", () => {
  test("a store that is a relative link to another dir inside the root works", async (t) => {
    const root = await tempRoot(t);
    await mkdir(path.join(root, "data/ext"), { recursive: true });
    await mkdir(path.join(root, "var/lib/kairos"), { recursive: true });
    await symlink("../../../data/ext", path.join(root, STORE));
    const src = await sourceImage(t);
    const install = await extctl(root, ["sysext", "install", `file://${src}`]);
    assert.equal(install.code, 0, install.stderr);
    assert.equal((await extctl(root, ["sysext", "enable", "a", "--common"])).code, 0);
    assert.ok((await lstat(path.join(root, "data/ext/a.raw"))).isFile());
    assert.ok((await lstat(path.join(root, "data/ext/common/a.raw"))).isSymbolicLink());
  });

  test("trust import-efi writes the PK certificate into the root's run/verity.d", async (t) => {
    if (!requirePeers(t, ["openssl"])) return;
    const root = await tempRoot(t);
    const efivars = path.join(root, "sys/firmware/efi/efivars");
    await mkdir(efivars, { recursive: true });
    await writeFile(path.join(efivars, `PK-${EFI_GLOBAL}`), await pkVariable(t));
    const r = await extctl(root, ["trust", "import-efi", "--include-pk"]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await listing(path.join(root, "run/verity.d")), ["PK0.crt"]);
  });
});

describe("untrusted files under --root are read bounded, regular files only", () => {
  test("a policy that is a FIFO fails at once, naming it", async (t) => {
    const root = await tempRoot(t);
    await mkdir(path.join(root, "etc/extctl"), { recursive: true });
    execFileSync("mkfifo", [path.join(root, "etc/extctl/policy")]);
    const r = await extctl(root, ["trust", "list"]);
    refused(r, /etc\/extctl\/policy \(the trust policy\) is a FIFO, not a regular file/);
    assert.ok(r.ms < TIMEOUT_MS / 2);
  });

  test("a policy linked to /dev/zero (absolute or escaping) reads the root's /dev/zero, a device: refused", async (t) => {
    if (!requirePeers(t, ["mknod"], { root: true })) return;
    for (const target of ["/dev/zero", "../../../../../../../../dev/zero"]) {
      const root = await tempRoot(t);
      await mkdir(path.join(root, "dev"), { recursive: true });
      execFileSync("mknod", [path.join(root, "dev/zero"), "c", "1", "5"]);
      await mkdir(path.join(root, "etc/extctl"), { recursive: true });
      await symlink(target, path.join(root, "etc/extctl/policy"));
      const r = await extctl(root, ["trust", "list"]);
      refused(r, /dev\/zero \(the trust policy\) is a character device, not a regular file/);
    }
  });

  test("a policy linked outside the root to a file that exists only outside is not read", async (t) => {
    const root = await tempRoot(t);
    const out = await outside(t);
    await writeFile(path.join(out, "policy"), "this is not a policy\n");
    await mkdir(path.join(root, "etc/extctl"), { recursive: true });
    await symlink(path.join(out, "policy"), path.join(root, "etc/extctl/policy"));
    const r = await extctl(root, ["trust", "list", "--json"]);
    // Resolved inside the root the link leads nowhere: no policy file, the default applies.
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr + r.stdout, /this is not a policy/);
  });

  test("a sparse 8 GiB policy is refused by its size, in bounded time", async (t) => {
    const root = await tempRoot(t);
    await mkdir(path.join(root, "etc/extctl"), { recursive: true });
    const file = path.join(root, "etc/extctl/policy");
    await writeFile(file, "");
    await truncate(file, 8 * 1024 ** 3);
    const r = await extctl(root, ["trust", "list"]);
    refused(r, /policy \(the trust policy\) is larger than 1048576 bytes/);
  });

  test("a --cmdline of /dev/zero or a FIFO, and a root cmdline FIFO, fail at once", async (t) => {
    const root = await tempRoot(t);
    refused(
      await extctl(root, ["boot", "--cmdline", "/dev/zero", "--no-refresh"]),
      /\/dev\/zero \(the kernel cmdline\) is a character device/,
    );
    const fifo = path.join(await tempDir(t), "cmdline");
    execFileSync("mkfifo", [fifo]);
    refused(
      await extctl(root, ["boot", "--cmdline", fifo, "--no-refresh"]),
      /cmdline \(the kernel cmdline\) is a FIFO/,
    );
    await mkdir(path.join(root, "proc"), { recursive: true });
    execFileSync("mkfifo", [path.join(root, "proc/cmdline")]);
    refused(
      await extctl(root, ["boot", "--no-refresh"]),
      /proc\/cmdline \(the kernel cmdline\) is a FIFO/,
    );
  });

  test("an os-release that is a FIFO is refused, not waited on", async (t) => {
    const root = await tempRoot(t);
    execFileSync("mkfifo", [path.join(root, "etc/os-release")]);
    const r = await extctl(root, ["check", await sourceImage(t)]);
    refused(r, /etc\/os-release \(the os-release\) is a FIFO, not a regular file/);
  });

  test("EFI key variables linked to /dev/zero or replaced by a FIFO: import-efi refuses in bounded time", async (t) => {
    const root = await tempRoot(t);
    const efivars = path.join(root, "sys/firmware/efi/efivars");
    await mkdir(efivars, { recursive: true });
    execFileSync("mkfifo", [path.join(efivars, `PK-${EFI_GLOBAL}`)]);
    refused(
      await extctl(root, ["trust", "import-efi", "--include-pk"]),
      /PK-.* \(an EFI key database\) is a FIFO/,
    );
    // The operator's own --efivars dir is followed as given: /dev/zero is a device, refused.
    const dir = await tempDir(t);
    await symlink("/dev/zero", path.join(dir, `PK-${EFI_GLOBAL}`));
    const r = await extctl(root, ["trust", "import-efi", "--include-pk", "--efivars", dir]);
    refused(r, /\(an EFI key database\) is a character device/);
    assert.ok(r.ms < TIMEOUT_MS / 2);
    assert.equal(await lstat(path.join(root, "run/verity.d")).catch(() => undefined), undefined);
  });
});

describe("listing a store with entries that are not images", () => {
  test("list finishes and names a FIFO, a link to a FIFO and a dangling link; the real image is listed", async (t) => {
    const root = await tempRoot(t);
    const src = await sourceImage(t, "good.raw");
    assert.equal((await extctl(root, ["sysext", "install", `file://${src}`])).code, 0);
    const store = path.join(root, STORE);
    execFileSync("mkfifo", [path.join(store, "pipe.raw")]);
    execFileSync("mkfifo", [path.join(root, "fifo")]);
    await symlink("/fifo", path.join(store, "tofifo.raw"));
    await symlink("/nowhere.raw", path.join(store, "dangling.raw"));
    const r = await extctl(root, ["sysext", "list", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const names = (JSON.parse(r.stdout) as { images: { name: string }[] }).images.map(
      (i) => i.name,
    );
    assert.deepEqual(names, ["good.raw"]);
    assert.match(r.stderr, /pipe\.raw is a FIFO, not an image file/);
    assert.match(r.stderr, /tofifo\.raw .*is a FIFO, not an image file/);
    assert.match(r.stderr, /dangling\.raw is a symlink to \/nowhere\.raw, which leads to no file/);
    const status = await extctl(root, ["sysext", "status"]);
    assert.ok(status.code < 128, `status killed (timeout?)\n${status.stderr}`);
    // boot: a profile link to the FIFO entry is skipped with its reason, the good image linked.
    await mkdir(path.join(store, "common"));
    await symlink("../tofifo.raw", path.join(store, "common/tofifo.raw"));
    await symlink("../good.raw", path.join(store, "common/good.raw"));
    const cmdline = path.join(await tempDir(t), "cmdline");
    await writeFile(cmdline, "root=LABEL=COS_ACTIVE\n");
    const boot = await extctl(root, ["boot", "--cmdline", cmdline, "--no-refresh", "--json"]);
    assert.equal(boot.code, 0, boot.stderr);
    const result = JSON.parse(boot.stdout) as {
      linked: { name: string }[];
      skipped: { name: string; reason: string }[];
    };
    // good.raw is a superblock stub with no release file: check refuses it (boot links only what
    // would merge); what matters here is that the link to the FIFO entry is skipped, at once.
    assert.deepEqual(result.linked, []);
    assert.deepEqual(result.skipped.map((l) => l.name).sort(), ["good.raw", "tofifo.raw"]);
    assert.ok((result.skipped.find((l) => l.name === "tofifo.raw")?.reason ?? "").length > 0);
    // status: a /run link through the profile to the FIFO entry is reported, not opened.
    await symlink(
      "../../var/lib/kairos/extensions/common/tofifo.raw",
      path.join(root, "run/extensions/tofifo.raw"),
    );
    const after = await extctl(root, ["sysext", "status", "--json"]);
    assert.ok(after.code < 128, `status killed (timeout?)\n${after.stderr}`);
    assert.match(after.stdout, /tofifo\.raw/);
  });
});

describe("disable removes only links", () => {
  test("disable NAME --common leaves a real file in the profile dir, saying so", async (t) => {
    const root = await tempRoot(t);
    const src = await sourceImage(t, "real.raw");
    assert.equal((await extctl(root, ["sysext", "install", `file://${src}`])).code, 0);
    await mkdir(path.join(root, STORE, "common"), { recursive: true });
    const file = path.join(root, STORE, "common/real.raw");
    await writeFile(file, "someone's file");
    const r = await extctl(root, ["sysext", "disable", "real", "--common"]);
    refused(r, /common\/real\.raw is a regular file, not a link extctl made; it is left alone/);
    assert.equal(await readFile(file, "utf8"), "someone's file");
  });

  test("remove NAME deletes the image and its links but warns about, and keeps, a real file in a profile dir", async (t) => {
    const root = await tempRoot(t);
    const src = await sourceImage(t, "real.raw");
    assert.equal((await extctl(root, ["sysext", "install", `file://${src}`])).code, 0);
    await mkdir(path.join(root, STORE, "common"), { recursive: true });
    const file = path.join(root, STORE, "common/real.raw");
    await writeFile(file, "someone's file");
    const r = await extctl(root, ["sysext", "remove", "real"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stderr,
      /warning: .*common\/real\.raw is a regular file, not a link extctl made/,
    );
    assert.equal(await readFile(file, "utf8"), "someone's file");
    assert.equal(await lstat(path.join(root, STORE, "real.raw")).catch(() => undefined), undefined);
  });
});
