// `apply FILE|-`: make the node match a declarative extensions file (alone or under
// `extensions:` of a Kairos cloud-config). One lock for the whole run; --dry-run only plans.
import { readFile } from "node:fs/promises";
import type { Context } from "../util/context.js";
import { fsError } from "../util/errors.js";
import type { ExecuteOptions } from "./apply-execute.js";
import type { PlanStep } from "../domain/apply/plan.js";
import { requireRoot, withLock } from "./guard.js";

/** The file and --dry-run, then what executing its steps takes (refresh, network, trust, keep). */
export interface ApplyOptions extends ExecuteOptions {
  /** Host path of the file, or "-" for `text`/stdin. */
  file: string;
  /** The file's contents when already read (stdin, tests). */
  text?: string;
  dryRun?: boolean;
}

export interface ApplyStep {
  step: PlanStep["step"];
  description: string;
  detail: PlanStep;
}

export interface ApplyResult {
  file: string;
  dryRun: boolean;
  /** Planned steps (dry run) or the steps done. */
  steps: ApplyStep[];
  changed: boolean;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

export async function apply(ctx: Context, options: ApplyOptions): Promise<ApplyResult> {
  const label = options.file === "-" ? "<stdin>" : options.file;
  let text = options.text;
  if (text === undefined) {
    try {
      text = options.file === "-" ? await readStdin() : await readFile(options.file, "utf8");
    } catch (e) {
      throw fsError(e, `read ${label}`);
    }
  }
  const { parseApplySpec } = await import("../domain/apply/schema.js");
  const spec = await parseApplySpec(text, label);
  requireRoot(ctx);
  // Under the lock, `ctx` is the locked context: the operations apply runs take the lock once.
  return withLock(ctx, async (ctx) => {
    const { changesNode, computePlan, describeStep } = await import("../domain/apply/plan.js");
    const net = {
      ...(options.caCerts ? { caCerts: options.caCerts } : {}),
      ...(options.insecureRegistries ? { insecureRegistries: options.insecureRegistries } : {}),
      ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
      ...(options.creds === undefined ? {} : { creds: options.creds }),
      ...(options.catalogPolicy === undefined ? {} : { catalogPolicy: options.catalogPolicy }),
      ...(options.trust ? { trust: options.trust } : {}),
    };
    const plan = await computePlan(ctx, spec, { net });
    if (options.dryRun) {
      return {
        file: label,
        dryRun: true,
        steps: plan.steps.map((s) => ({ step: s.step, description: describeStep(s), detail: s })),
        changed: plan.steps.some(changesNode),
      };
    }
    const { executePlan } = await import("./apply-execute.js");
    const done = await executePlan(ctx, spec, plan, {
      ...net,
      ...(options.refresh ? { refresh: options.refresh } : {}),
      ...(options.keep === undefined ? {} : { keep: options.keep }),
    });
    const changed = done.some((d) => changesNode(d.step));
    if (!changed) ctx.log.info("nothing to do: the node already matches the file");
    return {
      file: label,
      dryRun: false,
      steps: done.map((d) => ({ step: d.step.step, description: d.description, detail: d.step })),
      changed,
    };
  });
}
