// A pool of verity hashing threads (one per core by default, the calling thread being one of
// them). Each worker keeps a short queue; the caller keeps order by awaiting in order.
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { bundledVerityWorker } from "../../util/bundled.js";
import type { FileRegion } from "../../util/bytes.js";
import {
  hashBlocksToHashBlocks,
  hashFileBlocks,
  type BlockHashParams,
  type BlockSlots,
} from "./verity-hash.js";
import type { HashReply, HashRequest } from "./verity-worker.js";

export interface BlockHasher {
  /**
   * The hash blocks for `data` (see hashBlocksToHashBlocks). With `owned` the caller gives
   * `data` up (a fresh read nobody else holds): it may be transferred to a thread or scribbled
   * on. Without it `data` is left as it was, at the price of one bulk copy.
   */
  hash(params: BlockHashParams, data: Buffer, owned?: boolean): Promise<Buffer>;
  /**
   * The hash blocks of `blocks` whole blocks of an open file, read by whichever thread hashes
   * them. The descriptor must stay open until the promise settles.
   */
  hashRegion(params: BlockHashParams, region: FileRegion, blocks: number): Promise<Buffer>;
  /** How many chunks it is worth having in flight. */
  readonly concurrency: number;
  /** Chunks hashed so far on the calling thread and on worker threads (a pool only). */
  readonly hashed?: { readonly here: number; readonly threads: number };
  close(): Promise<void>;
}

/** Hashes a chunk on this thread, in place when it is ours, else in a copy made in one go. */
function hashHere(params: BlockHashParams, data: Buffer, owned: boolean): Buffer {
  // One 4 MiB copy costs ~0.1 µs a block; copying block by block beside the salt costs ~0.4.
  return hashBlocksToHashBlocks(params, owned ? data : Buffer.from(data), params.salt.length > 0);
}

/** The calling thread's slots for file regions, kept from one chunk to the next. */
let hereSlots: BlockSlots | undefined;

function hashRegionHere(params: BlockHashParams, region: FileRegion, blocks: number): Buffer {
  const done = hashFileBlocks(params, region.fd, region.position, blocks, hereSlots);
  hereSlots = done.slots;
  return done.hashes;
}

/** Hashes on the calling thread: for small inputs, where starting threads costs more. */
export const inlineHasher: BlockHasher = {
  concurrency: 1,
  async hash(params, data, owned = false) {
    return hashHere(params, data, owned);
  },
  async hashRegion(params, region, blocks) {
    return hashRegionHere(params, region, blocks);
  },
  async close() {
    hereSlots = undefined;
  },
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
  worker: Worker;
  busy: number;
  /** The thread runs: until then (~30 ms) the calling thread hashes what would wait for it. */
  online: boolean;
}

/** Chunks queued on one thread: two, so it never waits for the next one to be posted. */
const DEPTH = 2;

class WorkerHasher implements BlockHasher {
  private readonly slots: Slot[] = [];
  private readonly pending = new Map<
    number,
    { resolve: (b: Buffer) => void; reject: (e: Error) => void; slot: Slot }
  >();
  private nextId = 1;
  readonly hashed = { here: 0, threads: 0 };
  private failure: Error | undefined;
  private closing = false;

  /**
   * `size` threads in all: the calling thread hashes a chunk itself whenever every worker has
   * DEPTH chunks queued, so one thread fewer is started (each costs ~25 MiB of RSS and its
   * start-up) and no core sits idle while the caller only waits for reads.
   */
  constructor(size: number) {
    for (let i = 1; i < size; i++) {
      const worker = startWorker();
      const slot = { worker, busy: 0, online: false };
      worker.once("online", () => (slot.online = true));
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
    // Every worker's queue full, and room for the calling thread to run ahead of them.
    return this.slots.length * DEPTH + 2;
  }

  hash(params: BlockHashParams, data: Buffer, owned = false): Promise<Buffer> {
    if (this.failure) return Promise.reject(this.failure);
    const slot = this.freeSlot();
    if (slot === undefined) {
      this.hashed.here++;
      return attempt(() => hashHere(params, data, owned));
    }
    // Only a buffer that is ours and owns its whole ArrayBuffer is transferred as is: a
    // structured clone of 4 MiB costs ~5 ms, a transfer ~5 µs, a copy here ~0.4 ms.
    const whole =
      owned && data.byteOffset === 0 && data.buffer.byteLength === data.length && !isShared(data);
    // The copy gets an ArrayBuffer of its own: Buffer.from() of a small buffer would land in
    // Node's shared pool, which Node 24 refuses to transfer (DataCloneError).
    const sent = whole ? data : ownCopy(data);
    return this.post(slot, { params: wireParams(params), data: sent }, [
      sent.buffer as ArrayBuffer,
    ]);
  }

  /**
   * A chunk no worker has room for is hashed here, but on a later turn of the event loop: the
   * replies that came in meanwhile are taken first, so a worker that has freed up gets it and
   * never idles while this thread hashes chunk after chunk without looking at its messages.
   */
  hashRegion(params: BlockHashParams, region: FileRegion, blocks: number): Promise<Buffer> {
    const send = (slot: Slot) =>
      this.post(slot, { params: wireParams(params), region: { ...region, blocks } }, []);
    if (this.failure) return Promise.reject(this.failure);
    const slot = this.freeSlot();
    if (slot !== undefined) return send(slot);
    return new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
      if (this.failure) throw this.failure;
      const freed = this.freeSlot();
      if (freed !== undefined) return send(freed);
      this.hashed.here++;
      return hashRegionHere(params, region, blocks);
    });
  }

  /** The least busy running worker with room in its queue; undefined: hash on this thread. */
  private freeSlot(): Slot | undefined {
    let slot: Slot | undefined;
    for (const s of this.slots)
      if (s.online && s.busy < DEPTH && (!slot || s.busy < slot.busy)) slot = s;
    return slot;
  }

  private post(
    slot: Slot,
    request: Omit<HashRequest, "id">,
    transfer: ArrayBuffer[],
  ): Promise<Buffer> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, slot });
      slot.busy++;
      slot.worker.ref();
      slot.worker.postMessage({ ...request, id } satisfies HashRequest, transfer);
    });
  }

  private settle(reply: HashReply): void {
    const entry = this.pending.get(reply.id);
    if (!entry) return;
    this.pending.delete(reply.id);
    // Once closing, a late reply must not unref a thread whose exit close() is waiting for.
    if (--entry.slot.busy === 0 && !this.closing) entry.slot.worker.unref();
    if ("error" in reply) entry.reject(new Error(reply.error));
    else {
      this.hashed.threads++;
      entry.resolve(Buffer.from(reply.hashes.buffer, reply.hashes.byteOffset, reply.hashes.length));
    }
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
    // An idle worker is unref'd; its exit must still keep the event loop alive until it comes,
    // or an await of close() is left pending with nothing to wake it.
    this.closing = true;
    await Promise.all(
      this.slots.map((s) => {
        s.worker.ref();
        return s.worker.terminate();
      }),
    );
  }
}

function wireParams(params: BlockHashParams): HashRequest["params"] {
  return { ...params, salt: new Uint8Array(params.salt) };
}

function attempt(hash: () => Buffer): Promise<Buffer> {
  try {
    return Promise.resolve(hash());
  } catch (e) {
    return Promise.reject(e);
  }
}

function isShared(data: Buffer): boolean {
  return typeof SharedArrayBuffer === "function" && data.buffer instanceof SharedArrayBuffer;
}

/**
 * Hashing threads to use: EXTCTL_VERITY_THREADS when set (benchmarks measure one thread with
 * it), else one per core.
 */
export function defaultHashThreads(): number {
  const n = Number(process.env.EXTCTL_VERITY_THREADS);
  return Number.isInteger(n) && n >= 1 ? n : availableParallelism();
}

/** A pool of `size` threads (default: defaultHashThreads()), or inline when size is 1. */
export function createBlockHasher(size = defaultHashThreads()): BlockHasher {
  return size <= 1 ? inlineHasher : new WorkerHasher(size);
}

/** A copy of `data` in an ArrayBuffer of exactly its length (never the Buffer pool). */
function ownCopy(data: Buffer): Buffer {
  const copy = new Uint8Array(data.length);
  copy.set(data);
  return Buffer.from(copy.buffer, 0, copy.length);
}
