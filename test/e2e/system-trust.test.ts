// Issue 15's first finding: a registry or server whose CA is installed on the node (a fleet's
// private CA in the system bundle) must be trusted by oci: as it is by https:, with no
// NODE_EXTRA_CA_CERTS (this machine exports one; a node does not). The CA is put only into a
// system bundle bind-mounted over /etc/ssl/certs/ca-certificates.crt in a private mount
// namespace of each run; without that bundle the same install is refused (the control).
import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import { runExtctl } from "../helpers/cli.js";
import { makeTestCertificates, withHttpsServer } from "../helpers/https-server.js";
import { makeSampleImage } from "../helpers/images.js";
import { requirePeers } from "../helpers/peers.js";
import { startRegistry } from "../helpers/registry.js";
import { tempDir, tempRoot } from "../helpers/tmp.js";

const BUNDLE = "/etc/ssl/certs/ca-certificates.crt";

/** extctl with `bundle` as the system CA bundle (when given) and no NODE_EXTRA_CA_CERTS. */
function extctlWithSystemBundle(bundle: string | undefined, args: string[]) {
  const script = bundle
    ? `mount --bind "$1" ${BUNDLE} && shift && exec "$@"`
    : `shift && exec "$@"`;
  return runExtctl(args, {
    env: { NODE_EXTRA_CA_CERTS: undefined },
    prefix: ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", bundle ?? "-"],
  });
}

test("a CA only in the system bundle is trusted by oci: and https: alike, without NODE_EXTRA_CA_CERTS", async (t) => {
  if (
    !requirePeers(t, ["docker-registry", "openssl", "mksquashfs", "unshare", "mount"], {
      root: true,
    })
  )
    return;
  const dir = await tempDir(t);
  const certs = await makeTestCertificates(path.join(dir, "certs"));
  const registry = await startRegistry(
    t,
    { kind: "none" },
    { cert: certs.serverCert, key: certs.serverKey },
  );
  const image = await makeSampleImage(dir, { fileName: "fleet.sysext.raw", release: "ID=_any\n" });
  const pushed = await runExtctl([
    "publish",
    image,
    `oci://${registry.host}/exts/fleet:1`,
    "--ca-cert",
    certs.caCert,
  ]);
  assert.equal(pushed.code, 0, pushed.stderr);
  const server = await withHttpsServer(t, { dir: path.join(dir, "https"), certificates: certs });
  server.addFile("fleet.sysext.raw", await readFile(image));

  const bundle = path.join(dir, "system-bundle.crt");
  await writeFile(bundle, await readFile(certs.caCert));
  for (const uri of [`oci://${registry.host}/exts/fleet:1`, server.url("fleet.sysext.raw")]) {
    const control = await tempRoot(t);
    const refused = await extctlWithSystemBundle(undefined, [
      "--root",
      control,
      "sysext",
      "install",
      uri,
    ]);
    assert.notEqual(refused.code, 0, `${uri} without the CA: ${refused.stdout}`);
    assert.match(refused.stderr, /certificate|TLS/i);

    const root = await tempRoot(t);
    const r = await extctlWithSystemBundle(bundle, ["--root", root, "sysext", "install", uri]);
    assert.equal(r.code, 0, `${uri}: ${r.stderr}`);
    assert.deepEqual(
      await readFile(path.join(root, "var/lib/kairos/extensions/fleet.sysext.raw")),
      await readFile(image),
    );
  }
});
