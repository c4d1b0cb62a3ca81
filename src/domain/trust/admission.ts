// The gate an image passes before it is enabled (enable, apply): the node's image policy, and
// under anything stricter than `any` a signature and verity check against the trust store.
// Loads the signature code only when the policy needs it.
import type { Context } from "../../util/context.js";
import { ExtctlError } from "../../util/errors.js";
import { resolvePolicy, type ResolvedPolicy } from "./policy.js";
import type { ImageEvaluation } from "./image-trust.js";

export interface Admission {
  policy: ResolvedPolicy;
  /** Judges one image; undefined when the policy (any) does not look at images. */
  evaluate(hostPath: string): Promise<ImageEvaluation | undefined>;
  /** Like evaluate, but throws a policy error naming the image, the reason and the policy. */
  require(hostPath: string, name: string): Promise<ImageEvaluation | undefined>;
}

export async function admission(
  ctx: Context,
  options: { policy?: string; trust?: string[] } = {},
): Promise<Admission> {
  const policy = await resolvePolicy(ctx, options.policy);
  let judge: ((hostPath: string) => Promise<ImageEvaluation>) | undefined;
  const evaluate = async (hostPath: string): Promise<ImageEvaluation | undefined> => {
    if (policy.policy.name === "any") return undefined;
    if (!judge) {
      const [{ loadTrustStore }, { evaluateImage }] = await Promise.all([
        import("./truststore.js"),
        import("./image-trust.js"),
      ]);
      const store = await loadTrustStore(ctx, options.trust ?? []);
      judge = (p) => evaluateImage(ctx, p, policy.policy, store);
    }
    return judge(hostPath);
  };
  return {
    policy,
    evaluate,
    async require(hostPath, name) {
      const verdict = await evaluate(hostPath);
      if (verdict && !verdict.ok) {
        throw new ExtctlError("policy", `${name} is refused: ${verdict.reason}`, {
          hint: `the policy "${policy.policy.name}" comes from ${policy.source}; nothing was enabled`,
        });
      }
      return verdict;
    },
  };
}
