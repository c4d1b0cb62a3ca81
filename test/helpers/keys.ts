// Throwaway signing keys and self-signed certificates made by the real openssl, for tests that
// sign images or check signatures.
import path from "node:path";
import { run } from "./peers.js";

export interface SigningCert {
  key: string;
  cert: string;
}

/**
 * Writes DIR/NAME.key and DIR/NAME.crt: a new RSA 2048 or EC P-256 key and a self-signed
 * certificate for it with subject `subject` (default /CN=NAME).
 */
export function makeSigningCert(
  dir: string,
  name: string,
  options: { type?: "rsa" | "ec"; subject?: string; days?: number } = {},
): SigningCert {
  const key = path.join(dir, `${name}.key`);
  const cert = path.join(dir, `${name}.crt`);
  const keyArgs =
    options.type === "ec"
      ? ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
      : ["-newkey", "rsa:2048"];
  run("openssl", [
    "req",
    "-x509",
    ...keyArgs,
    "-nodes",
    "-keyout",
    key,
    "-out",
    cert,
    "-days",
    String(options.days ?? 30),
    "-subj",
    options.subject ?? `/CN=${name}`,
  ]);
  return { key, cert };
}
