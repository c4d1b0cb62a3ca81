// A pool of verity hashing threads (one per core by default, the calling thread being one of
// them). Chunks go round the threads; the caller keeps order by awaiting the promises in order.
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { bundledVerityWorker } from "../../util/bundled.js";
import { hashBlocksToHashBlocks, type BlockHashParams } from "./verity-hash.js";
import type { HashReply, HashRequest } from "./verity-worker.js";

export interface BlockHasher {
  /** The hash blocks for `data` (see hashBlocksToHashBlocks). `data` may be transferred. */
  hash(params: BlockHashParams, data: Buffer): Promise<Buffer>;
  /** How many chunks it is worth having in flight. */
  readonly concurrency: number;
  close(): Promise<void>;
}

/** Hashes on the calling thread: for small inputs, where starting threads costs more. */
export const inlineHasher: BlockHasher = {
  concurrency: 1,
  async hash(params, data) {
    return hashBlocksToHashBlocks(params, data);
  },
  async close() {},
};

/**
 * Starts the worker module beside this one (or the one-file build's copy of it): `.js` when running from dist/; from sources (tests,
 * benches under tsx) the `.ts` file is loaded through tsx's API inside the thread, because a
 * loader registered with `--import` in the parent does not reach worker threads on Node 20.
 */
function startWorker(): Worker {
  // The one-file build has no file to start a thread from: it carries the worker's source.
  const bundled = bundledVerityWorker();
  if (bundled !== undefined) return new Worker(bundled, { eval: true });
  if (!import.meta.url.endsWith(".ts")) {
    return new Worker(new URL("./verity-worker.js", import.meta.url));
  }
  const api = JSON.stringify(import.meta.resolve("tsx/esm/api"));
  const entry = JSON.stringify(new URL("./verity-worker.ts", import.meta.url).href);
  return new Worker(`import(${api}).then((tsx) => { tsx.register(); return import(${entry}); })`, {
    eval: true,
  });
}

interface Slot {
  /** Undefined for the calling thread's own turn. */
  worker: Worker | undefined;
  busy: number;
}

class WorkerHasher implements BlockHasher {
  private readonly slots: Slot[];
  private readonly pending = new Map<
    number,
    { resolve: (b: Buffer) => void; reject: (e: Error) => void; slot: Slot }
  >();
  private nextId = 1;
  private failure: Error | undefined;

  private turn = 0;

  /**
   * `size` threads in all: the calling thread takes every size-th chunk itself, so one thread
   * fewer is started (each costs ~25 MiB of RSS and its start-up) and no core sits idle while
   * the caller only waits for reads.
   */
  constructor(size: number) {
    this.slots = [{ worker: undefined, busy: 0 }];
    for (let i = 1; i < size; i++) {
      const worker = startWorker();
      const slot = { worker, busy: 0 };
      worker.on("message", (reply: HashReply) => this.settle(reply));
      worker.on("error", (e) => this.fail(e));
      worker.on("exit", (code) => {
        if (code !== 0) this.fail(new Error(`a verity hashing thread exited with code ${code}`));
      });
      // Idle threads must not keep the process alive if a caller forgets close().
      worker.unref();
      this.slots.push(slot);
    }
  }

  get concurrency(): number {
    return this.slots.length * 2;
  }

  hash(params: BlockHashParams, data: Buffer): Promise<Buffer> {
    if (this.failure) return Promise.reject(this.failure);
    // Round robin: every thread hashes at the same rate, and a busy count would always pick the
    // calling thread (its turns finish before hash() returns).
    const slot = this.slots[this.turn++ % this.slots.length] as Slot;
    const worker = slot.worker;
    if (worker === undefined) {
      try {
        return Promise.resolve(hashBlocksToHashBlocks(params, data));
      } catch (e) {
        return Promise.reject(e as Error);
      }
    }
    const id = this.nextId++;
    // Only a buffer that owns its whole ArrayBuffer can be transferred without copying.
    const owned =
      data.byteOffset === 0 && data.buffer.byteLength === data.length ? data : Buffer.from(data);
    const request: HashRequest = {
      id,
      params: { ...params, salt: new Uint8Array(params.salt) },
      data: owned,
    };
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, slot });
      slot.busy++;
      worker.ref();
      worker.postMessage(request, [owned.buffer as ArrayBuffer]);
    });
  }

  private settle(reply: HashReply): void {
    const entry = this.pending.get(reply.id);
    if (!entry) return;
    this.pending.delete(reply.id);
    if (--entry.slot.busy === 0) entry.slot.worker?.unref();
    if ("error" in reply) entry.reject(new Error(reply.error));
    else
      entry.resolve(Buffer.from(reply.hashes.buffer, reply.hashes.byteOffset, reply.hashes.length));
  }

  private fail(e: Error): void {
    this.failure ??= e;
    for (const [id, entry] of this.pending) {
      this.pending.delete(id);
      entry.reject(e);
    }
  }

  async close(): Promise<void> {
    this.failure ??= new Error("the verity hashing pool is closed");
    await Promise.all(this.slots.map((s) => s.worker?.terminate()));
  }
}

/** A pool of `size` threads (default: the number of cores), or inline when size is 1. */
export function createBlockHasher(size = availableParallelism()): BlockHasher {
  return size <= 1 ? inlineHasher : new WorkerHasher(size);
}
