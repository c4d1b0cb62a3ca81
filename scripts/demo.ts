// A short, friendly tour of extctl on a throwaway root (run by scripts/demo.sh inside a private
// mount namespace): build a signed image, serve it over HTTPS with a throwaway CA, install it,
// enable and merge it for real with systemd-sysext, run its program, then remove it.
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { makeSigningCert } from "../test/helpers/keys.js";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const bin = path.join(repo, "bin/extctl.cjs");
const bold = (s: string) =>
  process.stdout.isTTY && !process.env.NO_COLOR ? `\x1b[1m${s}\x1b[0m` : s;

function step(title: string, text: string): void {
  console.log(`\n${bold(`== ${title}`)}\n${text}`);
}

/**
 * Runs extctl as a user would and shows the command line. Asynchronous, because this process
 * also serves the HTTPS download.
 */
async function extctl(args: string[], env: NodeJS.ProcessEnv = {}): Promise<void> {
  console.log(`$ extctl ${args.map((a) => (a.includes(" ") ? `'${a}'` : a)).join(" ")}`);
  const child = spawn(process.execPath, [bin, ...args], {
    stdio: "inherit",
    env: { ...process.env, ...env },
  });
  const code = await new Promise<number>((resolve) => child.on("close", (c) => resolve(c ?? 1)));
  if (code !== 0)
    throw new Error(
      `\`extctl ${args.filter((a) => !a.startsWith("/")).join(" ")}\` failed (exit ${code})`,
    );
}

function sh(command: string, args: string[]): string {
  return execFileSync(command, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

async function main(): Promise<void> {
  const work = await mkdtemp(path.join(tmpdir(), "extctl-demo-"));
  const root = path.join(work, "node");
  let server: ReturnType<typeof createServer> | undefined;
  try {
    step(
      "A throwaway node",
      `The node's root is ${root}: an os-release saying Debian 12 and a /run tmpfs, as on a real node.`,
    );
    await mkdir(path.join(root, "usr/lib"), { recursive: true });
    await mkdir(path.join(root, "run"), { recursive: true });
    await writeFile(path.join(root, "usr/lib/os-release"), 'ID=debian\nVERSION_ID="12"\n');
    sh("mount", ["-t", "tmpfs", "-o", "mode=0755", "demo-run", path.join(root, "run")]);

    step(
      "Build a signed extension",
      "A tree with usr/bin/hello, signed with a throwaway key (no Docker, no repart).",
    );
    const tree = path.join(work, "tree");
    await mkdir(path.join(tree, "usr/bin"), { recursive: true });
    await writeFile(
      path.join(tree, "usr/bin/hello"),
      '#!/bin/sh\necho "Hello from a system extension!"\n',
    );
    await chmod(path.join(tree, "usr/bin/hello"), 0o755);
    const { key, cert } = makeSigningCert(work, "signing", {
      subject: "/CN=extctl demo signing key",
      days: 2,
    });
    const site = path.join(work, "site");
    await mkdir(site);
    await extctl([
      "build",
      "sysext",
      "hello",
      tree,
      "--output",
      site,
      "--private-key",
      key,
      "--certificate",
      cert,
      "--version",
      "1.0",
      "--systemd",
      "252",
      "--verity-block-size",
      "512",
    ]);
    await extctl(["verify", path.join(site, "hello.sysext.raw"), "--trust", cert]);

    step("Serve it over HTTPS", "A local HTTPS server on 127.0.0.1 with a throwaway CA.");
    const ca = path.join(work, "ca");
    await mkdir(ca);
    sh("openssl", [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      `${ca}/ca.key`,
      "-out",
      `${ca}/ca.crt`,
      "-days",
      "2",
      "-subj",
      "/CN=extctl demo CA",
    ]);
    sh("openssl", [
      "req",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      `${ca}/server.key`,
      "-out",
      `${ca}/server.csr`,
      "-subj",
      "/CN=127.0.0.1",
    ]);
    await writeFile(`${ca}/ext.cnf`, "subjectAltName=IP:127.0.0.1\n");
    sh("openssl", [
      "x509",
      "-req",
      "-in",
      `${ca}/server.csr`,
      "-CA",
      `${ca}/ca.crt`,
      "-CAkey",
      `${ca}/ca.key`,
      "-CAcreateserial",
      "-out",
      `${ca}/server.crt`,
      "-days",
      "2",
      "-extfile",
      `${ca}/ext.cnf`,
    ]);
    const image = await readFile(path.join(site, "hello.sysext.raw"));
    server = createServer(
      { key: await readFile(`${ca}/server.key`), cert: await readFile(`${ca}/server.crt`) },
      (req, res) => {
        if (req.url === "/hello.sysext.raw") {
          res.writeHead(200, {
            "content-length": image.length,
            "content-type": "application/octet-stream",
          });
          res.end(image);
        } else {
          res.writeHead(404).end();
        }
      },
    );
    await new Promise<void>((resolve) => server?.listen(0, "127.0.0.1", resolve));
    const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/hello.sysext.raw`;
    console.log(`serving ${url}`);

    const R = ["--root", root];
    step(
      "Install it",
      "Streamed into the store, TLS checked against the demo CA, nothing half-written on failure.",
    );
    await extctl([...R, "sysext", "install", url, "--ca-cert", `${ca}/ca.crt`]);
    await extctl([...R, "sysext", "list"]);

    step(
      "Trust the signing key and enable it for every boot profile, now",
      "The node's policy becomes 'signed'.",
    );
    await mkdir(path.join(root, "etc/verity.d"), { recursive: true });
    await writeFile(path.join(root, "etc/verity.d/demo.crt"), await readFile(cert));
    await mkdir(path.join(root, "etc/extctl"), { recursive: true });
    await writeFile(path.join(root, "etc/extctl/policy"), "signed\n");
    // These kernels have no device-mapper, so systemd mounts the data partition directly.
    await extctl([...R, "sysext", "enable", "hello", "--common", "--now"], {
      SYSTEMD_DISSECT_VERITY_EMBEDDED: "0",
    });

    step("Run the program the extension brought", `$ ${root}/usr/bin/hello`);
    process.stdout.write(sh(path.join(root, "usr/bin/hello"), []));

    step("What is merged, enabled and linked", "");
    await extctl([...R, "status"]);

    step("Remove it, now", "Unlinked, unmerged, and deleted with its links.");
    await extctl([...R, "sysext", "remove", "hello", "--now"], {
      SYSTEMD_DISSECT_VERITY_EMBEDDED: "0",
    });
    console.log(
      existsSync(path.join(root, "usr/bin/hello"))
        ? "!! usr/bin/hello is still there"
        : `${root}/usr/bin/hello is gone: the extension is unmerged.`,
    );
    await extctl([...R, "sysext", "list"]);
    console.log(
      `\n${bold("That's the tour.")} Every step above ran the real extctl, openssl and systemd-sysext.`,
    );
  } finally {
    server?.close();
    spawnSync("umount", ["-R", "-l", path.join(root, "usr")], { stdio: "ignore" });
    spawnSync("umount", ["-R", "-l", path.join(root, "run")], { stdio: "ignore" });
    await rm(work, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(`demo failed: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
});
