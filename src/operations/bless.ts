// `bless`: run by extctl-bless.service once boot-complete.target is reached (systemd's Automatic
// Boot Assessment, applied to extensions): every current version of an extension installed by
// name is marked good, and a pending one ends its trial, so no later boot falls back from it.
import type { Context } from "../util/context.js";
import { messageOf } from "../util/errors.js";
import { ExtensionStore } from "../domain/store/store.js";
import { EXTENSION_KINDS, type ExtensionKind } from "../domain/store/layout.js";
import { VersionedStore } from "../domain/store/versions.js";
import { bless as blessRecord } from "../domain/lifecycle/boot-assessment.js";
import { requireRoot, withLock } from "./guard.js";

export interface BlessItem {
  kind: ExtensionKind;
  name: string;
  version: string;
  /** blessed: a pending version (or one never blessed) was marked good now; already: it was. */
  action: "blessed" | "already";
  /** Whether it was on trial (pending) until now. */
  wasPending: boolean;
}

export interface BlessResult {
  items: BlessItem[];
}

export async function bless(
  ctx: Context,
  options: { kinds?: readonly ExtensionKind[] } = {},
): Promise<BlessResult> {
  requireRoot(ctx);
  return withLock(ctx, async () => {
    const items: BlessItem[] = [];
    for (const kind of options.kinds ?? EXTENSION_KINDS) {
      const versions = new VersionedStore(new ExtensionStore(ctx.root, kind), (m) =>
        ctx.log.warn(m),
      );
      for (const name of await versions.names()) {
        try {
          const record = await versions.read(name);
          if (!record) continue;
          const wasPending = record.pending !== undefined;
          const decision = blessRecord(record, await versions.current(record));
          if (decision.action === "none") continue;
          if (decision.action === "blessed" || wasPending) await versions.write(record);
          items.push({
            kind,
            name,
            version: decision.version,
            action: decision.action,
            wasPending,
          });
          if (wasPending && decision.action === "blessed")
            ctx.log.info(
              `${kind} ${name}: ${decision.version} reached boot-complete.target and is blessed`,
            );
        } catch (e) {
          ctx.log.warn(`${kind} ${name}: not blessed: ${messageOf(e)}`);
        }
      }
    }
    const { writeConfiguredMetrics } = await import("./metrics.js");
    await writeConfiguredMetrics(ctx);
    return { items };
  });
}
