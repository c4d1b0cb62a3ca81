// Runs an apply plan under the caller's lock: policy and trust files, then installs (each one
// atomic, recorded as it lands), then links, removals and refreshes computed again from the node
// as it now is. A failing step leaves the node as it was before that step, and says which step.
import type { Context } from "../util/context.js";
import { ExtctlError, fsError } from "../util/errors.js";
import { writeFileInRoot } from "../util/atomic.js";
import { READ_CAPS, readInRoot } from "../util/bounded-read.js";
import { ExtensionStore } from "../domain/store/store.js";
import { PROFILES, type ExtensionKind } from "../domain/store/layout.js";
import { LinkTransaction } from "../domain/activate/transaction.js";
import { activate } from "../domain/activate/activation.js";
import type { RefreshMode } from "../domain/activate/refresh.js";
import type { ApplySpec, CatalogEntry } from "../domain/apply/schema.js";
import type { Admission } from "../domain/trust/admission.js";
import { POLICY_FILE, computePlan, describeStep, type PlanStep } from "../domain/apply/plan.js";
import { writeApplyState, type ApplyState } from "../domain/apply/state.js";
import { VersionedStore, storeFileName } from "../domain/store/versions.js";
import { shortName } from "../domain/store/names.js";
import type { NetOptions } from "../domain/lifecycle/steps.js";

export interface ExecuteOptions {
  refresh?: RefreshMode;
  caCerts?: string[];
  insecureRegistries?: string[];
  /** Low-speed limit of each download (see stall-guard.ts). */
  timeoutMs?: number;
  /** For the catalog entries: registry credentials, catalog policy, extra trust, versions kept. */
  creds?: string;
  catalogPolicy?: "any" | "signed";
  trust?: string[];
  keep?: number;
}

export interface ExecutedStep {
  step: PlanStep;
  description: string;
}

class StepRunner {
  readonly done: ExecutedStep[] = [];
  private readonly tx = new Map<ExtensionKind, LinkTransaction>();
  number = 0;

  constructor(
    private readonly ctx: Context,
    /** How many steps there are in all, for "step N of M". */
    public total: number,
  ) {}

  txFor(kind: ExtensionKind): LinkTransaction {
    let tx = this.tx.get(kind);
    if (!tx) this.tx.set(kind, (tx = new LinkTransaction(this.ctx.root)));
    return tx;
  }

  async run(step: PlanStep, work: () => Promise<void | string>): Promise<void> {
    this.number++;
    let description = describeStep(step);
    try {
      const after = await work();
      if (typeof after === "string") description = after;
    } catch (e) {
      const inner = e instanceof ExtctlError ? e : fsError(e, description);
      throw new ExtctlError(
        inner.code,
        `step ${this.number} of ${this.total} (${description}) failed: ${inner.message}`,
        {
          cause: e,
          hint: `the node is as it was before this step; steps before it are done${inner.hint ? `; ${inner.hint}` : ""}`,
          // An unreachable server stays "try later" (75) through the step that met it.
          exitCode: inner.exitCode,
        },
      );
    }
    this.done.push({ step, description });
    // apply prints the steps it took once, as its result; the log repeats them only for -v.
    this.ctx.log.debug(description);
  }
}

export async function executePlan(
  ctx: Context,
  spec: ApplySpec,
  initial: { steps: PlanStep[]; state: ApplyState },
  options: ExecuteOptions = {},
): Promise<ExecutedStep[]> {
  const state = initial.state;
  const runner = new StepRunner(ctx, initial.steps.length);
  for (const step of initial.steps) {
    if (step.step === "policy") {
      await runner.run(step, async () => {
        await writeFileInRoot(ctx.root, POLICY_FILE, `${step.policy}\n`, 0o644);
      });
    } else if (step.step === "trust") {
      await runner.run(step, async () => {
        const der = await readInRoot(ctx.root, step.cert, {
          cap: READ_CAPS.certificate,
          what: "a certificate to trust",
        });
        if (der === undefined) throw new ExtctlError("not-found", `${step.cert} does not exist`);
        const { certificatesIn } = await import("../domain/trust/truststore.js");
        if (certificatesIn(der).length === 0)
          throw new ExtctlError("config", `${step.cert} holds no certificate`);
        await writeFileInRoot(ctx.root, step.path, der, 0o644);
      });
    } else if (step.step === "install") {
      await runner.run(step, async () => {
        const names = await installStep(ctx, step, options);
        for (const fetched of names) state[step.kind][fetched.name] = fetched.record;
        await writeApplyState(ctx.root, state);
        return `installed ${step.kind} ${names.map((n) => n.name).join(", ")} from ${step.source}`;
      });
    } else if (step.step === "install-name") {
      await runner.run(step, async () => {
        const { installByName } = await import("./install-name.js");
        const result = await installByName(ctx, {
          ...netOptions(spec, options),
          kind: step.kind,
          spec: step.requested === undefined ? step.name : `${step.name}@${step.requested}`,
          ...(options.keep === undefined ? {} : { keep: options.keep }),
        });
        // Installed by name now: its versions record says where it came from, not apply's state.
        const image = storeFileName(step.name);
        if (state[step.kind][image] !== undefined) {
          delete state[step.kind][image];
          await writeApplyState(ctx.root, state);
        }
        await rememberFileHealthCheck(ctx, spec, step);
        return `installed ${step.kind} ${step.name} ${result.version} from ${result.catalog}`;
      });
    } else if (step.step === "upgrade") {
      await runner.run(step, () => upgradeStep(ctx, spec, step, options));
    } else if (step.step === "up-to-date") {
      await runner.run(step, async () => {
        if (step.changedRequest) await recordRequest(ctx, spec, step);
        await rememberFileHealthCheck(ctx, spec, step);
      });
    }
  }
  // The rest is computed again now that every image is in the store under its real name.
  const second = await computePlan(ctx, spec, { resolve: false });
  const later = second.steps.filter(
    (s) => s.step !== "install" && s.step !== "policy" && s.step !== "trust",
  );
  runner.total = runner.number + later.length;
  // The node's policy (as the policy step may just have written it) gates every new link.
  const { admission } = await import("../domain/trust/admission.js");
  const gate = await admission(ctx);
  for (const step of later) await runLinkStep(ctx, runner, step, state, options, gate);
  return runner.done;
}

function netOptions(spec: ApplySpec, options: ExecuteOptions): NetOptions {
  return {
    ...(spec.catalogs ? { catalogs: spec.catalogs } : {}),
    ...(options.caCerts ? { caCerts: options.caCerts } : {}),
    ...(options.insecureRegistries ? { insecureRegistries: options.insecureRegistries } : {}),
    ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
    ...(options.creds === undefined ? {} : { creds: options.creds }),
    ...(options.catalogPolicy === undefined ? {} : { catalogPolicy: options.catalogPolicy }),
    ...(options.trust ? { trust: options.trust } : {}),
  };
}

/** Writes the file's constraint (and catalogs) into the extension's record; returns the record
 * as it was, to put back when what follows fails. */
async function recordRequest(
  ctx: Context,
  spec: ApplySpec,
  step: { kind: ExtensionKind; name: string; requested?: string; pinned: boolean },
): Promise<(() => Promise<void>) | undefined> {
  const versions = new VersionedStore(new ExtensionStore(ctx.root, step.kind), (m) =>
    ctx.log.warn(m),
  );
  const record = await versions.read(step.name);
  if (!record) return undefined;
  const before = structuredClone(record);
  if (step.requested === undefined) delete record.requested;
  else record.requested = step.requested;
  record.pinned = step.pinned;
  if (spec.catalogs) record.catalogs = [...spec.catalogs];
  await versions.write(record);
  return () => versions.write(before);
}

/** The file's catalog entry for an extension, when it has one. */
function catalogEntryOf(
  spec: ApplySpec,
  step: { kind: ExtensionKind; name: string },
): CatalogEntry | undefined {
  return spec.entries.find(
    (e): e is CatalogEntry => e.from === "catalog" && e.kind === step.kind && e.name === step.name,
  );
}

/** The file governs its catalog entries' health checks: one it names is remembered for
 * `upgrade --all`, and an entry without one forgets the remembered one. */
async function rememberFileHealthCheck(
  ctx: Context,
  spec: ApplySpec,
  step: { kind: ExtensionKind; name: string },
): Promise<void> {
  const versions = new VersionedStore(new ExtensionStore(ctx.root, step.kind), (m) =>
    ctx.log.warn(m),
  );
  const { rememberHealthCheck } = await import("./upgrade.js");
  await rememberHealthCheck(versions, step.name, catalogEntryOf(spec, step)?.healthCheck ?? []);
}

/** Moves a catalog entry to the version its constraint picks, through `upgrade` (checked before
 * the switch; on any failure the old version stays current and merged). */
async function upgradeStep(
  ctx: Context,
  spec: ApplySpec,
  step: Extract<PlanStep, { step: "upgrade" }>,
  options: ExecuteOptions,
): Promise<string> {
  const restore = step.changedRequest ? await recordRequest(ctx, spec, step) : undefined;
  const entry = catalogEntryOf(spec, step);
  const { upgrade, rememberHealthCheck } = await import("./upgrade.js");
  // Remembered first: with now: true, upgrade runs it after the merge.
  await rememberHealthCheck(
    new VersionedStore(new ExtensionStore(ctx.root, step.kind), (m) => ctx.log.warn(m)),
    step.name,
    entry?.healthCheck ?? [],
  );
  let result;
  try {
    result = await upgrade(ctx, {
      ...netOptions(spec, options),
      kind: step.kind,
      names: [step.name],
      // The file asked for this version: going down to it is what it says.
      ...(step.changedRequest ? { allowDowngrade: true } : {}),
      ...(entry?.now ? { now: true } : {}),
      ...(options.refresh ? { refresh: options.refresh } : {}),
      ...(options.keep === undefined ? {} : { keep: options.keep }),
    });
  } catch (e) {
    await restore?.();
    throw e;
  }
  const item = result.items[0];
  if (!item || item.action === "failed") {
    await restore?.();
    throw new ExtctlError(
      "config",
      `${step.name} stays at ${item?.from ?? step.from}; ${item?.to ?? step.to} was refused: ${item?.reason ?? "upgrade reported nothing"}`,
    );
  }
  if (item.action === "upgraded")
    return `upgraded ${step.kind} ${step.name} ${item.from ?? step.from} -> ${item.to ?? step.to}: ${item.reason}`;
  return `${step.kind} ${step.name}: ${item.action}: ${item.reason}`;
}

async function installStep(
  ctx: Context,
  step: Extract<PlanStep, { step: "install" }>,
  options: ExecuteOptions,
): Promise<{ name: string; record: { source: string; sha256: string } }[]> {
  const store = new ExtensionStore(ctx.root, step.kind);
  const storeDir = await store.ensureStore();
  const { fetchIntoStore } = await import("../domain/sources/index.js");
  const fetched = await fetchIntoStore(ctx, {
    uri: step.source,
    kind: step.kind,
    storeDir,
    ...(step.sha256 ? { sha256: step.sha256 } : {}),
    ...(options.caCerts ? { caCerts: options.caCerts } : {}),
    ...(options.insecureRegistries ? { insecureRegistries: options.insecureRegistries } : {}),
    ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
  });
  return fetched.map((f) => ({ name: f.name, record: { source: step.source, sha256: f.sha256 } }));
}

async function runLinkStep(
  ctx: Context,
  runner: StepRunner,
  step: PlanStep,
  state: ApplyState,
  options: ExecuteOptions,
  gate: Admission,
): Promise<void> {
  switch (step.step) {
    case "link":
      return runner.run(step, async () => {
        const store = new ExtensionStore(ctx.root, step.kind);
        const file = await store.imageFile(step.name);
        await gate.require(file, step.name);
        const { requireLinkName } = await import("../domain/image/link-name.js");
        await requireLinkName(ctx.root, file, step.name, step.kind, true);
        if (await store.linkProfile(step.profile, step.name))
          runner.txFor(step.kind).created(store.profileLinkPath(step.profile, step.name));
      });
    case "unlink":
      return runner.run(step, async () => {
        const store = new ExtensionStore(ctx.root, step.kind);
        const tx = runner.txFor(step.kind);
        const link = store.profileLinkPath(step.profile, step.name);
        const target = await tx.targetOf(link);
        if ((await store.unlinkPath(link)) && target !== undefined) tx.removed(link, target);
      });
    case "link-runtime":
      return runner.run(step, async () => {
        const store = new ExtensionStore(ctx.root, step.kind);
        const tx = runner.txFor(step.kind);
        // Under the name the root's systemd finds the release file under (252-254: tool.raw
        // for tool.sysext.raw), as enable --now and boot link it; a link of this image under
        // another name goes, or systemd would see it twice.
        const { requireLinkName } = await import("../domain/image/link-name.js");
        const linkName = await requireLinkName(
          ctx.root,
          await store.imageFile(step.name),
          step.name,
          step.kind,
          true,
        );
        for (const [other, stored] of await store.runtimeImages()) {
          if (stored !== step.name || other === linkName) continue;
          const path = store.runtimeLinkPath(other);
          const target = await tx.targetOf(path);
          if ((await store.unlinkPath(path)) && target !== undefined) tx.removed(path, target);
        }
        const link = store.runtimeLinkPath(linkName);
        const previous = await tx.targetOf(link);
        if (await store.linkRuntime(step.profile, step.name, linkName)) tx.created(link, previous);
        if (linkName !== step.name)
          ctx.log.info(`linked ${step.name} as ${link}: the name its release file fits`);
      });
    case "unlink-runtime":
      return runner.run(step, async () => {
        const store = new ExtensionStore(ctx.root, step.kind);
        const tx = runner.txFor(step.kind);
        const link = store.runtimeLinkPath((await store.runtimeLinkOf(step.name)) ?? step.name);
        const target = await tx.targetOf(link);
        if ((await store.unlinkPath(link)) && target !== undefined) tx.removed(link, target);
      });
    case "remove":
      return runner.run(step, async () => {
        const store = new ExtensionStore(ctx.root, step.kind);
        // Its own transaction: a failed delete puts this image's links back.
        const tx = new LinkTransaction(ctx.root);
        try {
          for (const profile of PROFILES) {
            const link = store.profileLinkPath(profile, step.name);
            const target = await tx.targetOf(link);
            if ((await store.unlinkPath(link)) && target !== undefined) tx.removed(link, target);
          }
          await store.deleteImage(step.name);
          // One installed by name goes with its kept versions (as `remove` does).
          const versions = new VersionedStore(store, (m) => ctx.log.warn(m));
          const name = shortName(step.name);
          if (
            step.name === storeFileName(name) &&
            (await versions.read(name).catch(() => undefined))
          )
            await versions.removeAll(name);
        } catch (e) {
          await tx.rollback();
          throw fsError(e, `delete ${store.imagePath(step.name)}`);
        }
        delete state[step.kind][step.name];
        await writeApplyState(ctx.root, state);
      });
    case "refresh":
      return runner.run(step, async () => {
        const store = new ExtensionStore(ctx.root, step.kind);
        const report = await activate(
          ctx,
          store,
          runner.txFor(step.kind),
          options.refresh ?? "auto",
        );
        if (report.unmerged.length > 0)
          return `refreshed ${step.kind}; not merged: ${report.unmerged.map((u) => `${u.name} (${u.reason})`).join("; ")}`;
        return undefined;
      });
    default:
      return undefined;
  }
}
