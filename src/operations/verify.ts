// `extctl verify`: checks one image's dm-verity superblock, root hash and signature against the
// trust store (and with `full`, every block), and judges it against a policy when one is given.
import type { Context } from "../util/context.js";
import {
  checkImageTrust,
  OUTCOME_EXIT_CODES,
  type ImageTrust,
} from "../domain/trust/image-trust.js";
import { parseImagePolicy, policyAllows } from "../domain/trust/policy.js";
import { loadTrustStore } from "../domain/trust/truststore.js";
import { ExtctlError } from "../util/errors.js";
import { stat } from "node:fs/promises";

export interface VerifyOptions {
  /** Host path of the image. */
  image: string;
  full?: boolean;
  /** Extra trusted certificate files or directories (host paths). */
  trust?: string[];
  /** signed, verity, any or a systemd image policy: decides which outcomes pass. */
  policy?: string;
}

export interface VerifyResult extends ImageTrust {
  /** 0 when the image passes; otherwise the outcome's code (see OUTCOME_EXIT_CODES). */
  exitCode: number;
  trustedCertificates: number;
  policy?: { text: string; name: string; allowed: boolean };
}

export async function verifyImage(ctx: Context, options: VerifyOptions): Promise<VerifyResult> {
  const policy = options.policy === undefined ? undefined : parseImagePolicy(options.policy);
  const st = await stat(options.image).catch(() => undefined);
  if (!st) throw new ExtctlError("not-found", `the image ${options.image} does not exist`);
  if (!st.isFile())
    throw new ExtctlError(
      "not-found",
      `the image ${options.image} is ${st.isFIFO() ? "a FIFO" : st.isDirectory() ? "a directory" : "not a regular file"}, not an image file`,
    );
  const store = await loadTrustStore(ctx, options.trust ?? []);
  if (store.certificates.length === 0) {
    ctx.log.info(
      "note: no trusted certificates (none in verity.d and no --trust); signatures cannot be trusted",
    );
  }
  const progress = options.full
    ? ctx.progress(`verifying ${options.image}`, undefined, "bytes")
    : undefined;
  let trust: ImageTrust;
  try {
    trust = await checkImageTrust(ctx, options.image, store, {
      full: options.full ?? false,
      ...(progress ? { progress } : {}),
    });
  } finally {
    progress?.stop();
  }
  const allowed = policy ? policyAllows(policy, trust.designator, trust.protection) : undefined;
  const strictCode = OUTCOME_EXIT_CODES[trust.outcome];
  return {
    ...trust,
    exitCode: allowed === true ? 0 : strictCode,
    trustedCertificates: store.certificates.length,
    ...(policy
      ? { policy: { text: policy.text, name: policy.name, allowed: allowed as boolean } }
      : {}),
  };
}
