// A small OCI distribution client: what is asked of a registry (manifests by tag or digest, blobs
// read, resumed and verified, uploads in one PUT or in chunks, blob mounts), every size and count
// bounded. How it is asked (auth, retries, redirects, error wording) is transport.ts's.
import { createHash } from "node:crypto";
import type { FileHandle } from "node:fs/promises";
import { Transform, type Readable } from "node:stream";
import type { Dispatcher } from "undici";
import type { Context } from "../../../util/context.js";
import { ExtctlError, fsError } from "../../../util/errors.js";
import { MEDIA, isDigest, type Descriptor } from "../../oci/manifest.js";
import type { Reference } from "../../oci/reference.js";
import { MAX_VIEW, type BulkBody } from "../http1.js";
import { StagedWriter } from "../staged-writer.js";
import {
  MAX_JSON_BYTES,
  RegistryTransport,
  headerValue,
  isRetryableNetworkError,
  readBounded,
  type Answer,
  type ClientOptions,
  type RequestOptions,
} from "./transport.js";

export type { ClientOptions } from "./transport.js";

export const MANIFEST_ACCEPT = [
  MEDIA.ociIndex,
  MEDIA.ociManifest,
  MEDIA.dockerList,
  MEDIA.dockerManifest,
].join(", ");

/** Manifests and indexes are small; anything bigger is refused rather than buffered. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

export interface FetchedManifest {
  mediaType: string;
  digest: string;
  bytes: Buffer;
  json: Record<string, unknown>;
}
export function sha256Digest(data: Buffer | string): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

export class RegistryClient {
  readonly registry: string;
  readonly repository: string;
  readonly baseUrl: string;
  private readonly ctx: Context;
  private readonly maxRetries: number;

  private constructor(private readonly transport: RegistryTransport) {
    this.registry = transport.registry;
    this.repository = transport.repository;
    this.baseUrl = transport.baseUrl;
    this.ctx = transport.ctx;
    this.maxRetries = transport.maxRetries;
  }

  static async create(
    ctx: Context,
    ref: Reference,
    options: ClientOptions = {},
  ): Promise<RegistryClient> {
    return new RegistryClient(await RegistryTransport.create(ctx, ref, options));
  }

  async close(): Promise<void> {
    await this.transport.close();
  }

  private request(
    method: string,
    pathOrUrl: string,
    options: RequestOptions = {},
  ): Promise<Dispatcher.ResponseData> {
    return this.transport.request(method, pathOrUrl, options);
  }

  private fail(res: Answer, what: string): Promise<never> {
    return this.transport.fail(res, what);
  }

  /** Fetches a manifest or index by tag or digest and checks it against a pinned digest. */
  async getManifest(selector: string, repository = this.repository): Promise<FetchedManifest> {
    const res = await this.request("GET", `/v2/${repository}/manifests/${selector}`, {
      headers: { accept: MANIFEST_ACCEPT },
    });
    if (res.statusCode !== 200) await this.fail(res, `fetch the manifest ${selector}`);
    const length = Number(headerValue(res, "content-length") ?? "0");
    if (length > MAX_MANIFEST_BYTES) {
      await res.body.dump();
      throw new ExtctlError(
        "registry",
        `the manifest ${selector} is ${length} bytes, more than the ${MAX_MANIFEST_BYTES} extctl accepts`,
      );
    }
    const bytes = await readBounded(res.body, MAX_MANIFEST_BYTES, `the manifest ${selector}`);
    const digest = sha256Digest(bytes);
    if (isDigest(selector) && digest !== selector) {
      throw new ExtctlError(
        "checksum",
        `the manifest served for ${selector} has digest ${digest}; refusing it`,
      );
    }
    let json: Record<string, unknown>;
    try {
      json = JSON.parse(bytes.toString("utf8")) as Record<string, unknown>;
    } catch {
      throw new ExtctlError(
        "registry",
        `the manifest ${selector} from ${this.registry} is not valid JSON`,
      );
    }
    if (typeof json !== "object" || json === null || Array.isArray(json)) {
      throw new ExtctlError(
        "registry",
        `the manifest ${selector} from ${this.registry} is not a JSON object`,
      );
    }
    const headerType = (headerValue(res, "content-type") ?? "").split(";")[0]?.trim() ?? "";
    const mediaType = typeof json.mediaType === "string" ? json.mediaType : headerType;
    return { mediaType, digest, bytes, json };
  }

  /** Whether the manifest exists (404 is an answer, not an error). */
  async findManifest(selector: string): Promise<FetchedManifest | undefined> {
    try {
      return await this.getManifest(selector);
    } catch (e) {
      if (e instanceof ExtctlError && e.code === "not-found") return undefined;
      throw e;
    }
  }

  /** A blob's bytes as a stream that fails if they do not match the descriptor. */
  async openBlob(desc: Descriptor): Promise<Readable> {
    const res = await this.request("GET", `/v2/${this.repository}/blobs/${desc.digest}`);
    if (res.statusCode !== 200) await this.fail(res, `fetch the blob ${desc.digest}`);
    const verifier = blobVerifier(desc, this.registry);
    res.body.on("error", (e) => verifier.destroy(this.transport.networkError(e, this.baseUrl)));
    // pipe() does not pass a destroy upstream: a consumer that gives up early (a bad layer)
    // would leave the response paused mid-body, and close() would wait for it forever.
    verifier.on("close", () => {
      if (!res.body.readableEnded) res.body.destroy();
    });
    return res.body.pipe(verifier);
  }

  /** Reads a small blob (a config) whole, bounded by `max`. */
  async readBlob(desc: Descriptor, max = MAX_JSON_BYTES): Promise<Buffer> {
    if (desc.size > max) {
      throw new ExtctlError(
        "registry",
        `the blob ${desc.digest} is ${desc.size} bytes, more than the ${max} extctl reads here`,
      );
    }
    return readBounded(await this.openBlob(desc), max, `the blob ${desc.digest}`);
  }

  /**
   * Streams a blob into `file` from position 0, hashing while bytes pass; a dropped connection
   * resumes with a Range request where it stopped. Fails (checksum) on a size or digest mismatch.
   */
  async downloadBlob(
    desc: Descriptor,
    file: FileHandle,
    onBytes: (n: number) => void,
  ): Promise<void> {
    const hash = createHash("sha256");
    const writer = new StagedWriter(file, { maxView: MAX_VIEW, hash });
    const what = `${this.registry} (blob ${desc.digest})`;
    let attempts = 0;
    for (;;) {
      const received = writer.position;
      const headers: Record<string, string> = {};
      if (received > 0) headers.range = `bytes=${received}-`;
      const res = await this.transport.bulkRequest(
        `/v2/${this.repository}/blobs/${desc.digest}`,
        { headers },
        what,
      );
      let skip = 0;
      if (res.statusCode === 206 && received > 0) {
        const start = /^bytes (\d+)-/.exec(headerValue(res, "content-range") ?? "");
        if (!start || Number(start[1]) !== received) {
          await res.body.dump();
          throw new ExtctlError(
            "registry",
            `${this.registry} resumed the blob ${desc.digest} at the wrong offset`,
          );
        }
      } else if (res.statusCode === 200) {
        skip = received;
      } else {
        await this.fail(res, `fetch the blob ${desc.digest}`);
      }
      try {
        await this.fillFrom(res.body, writer, desc, skip, onBytes);
        await writer.flush();
        break;
      } catch (e) {
        // Keep what arrived intact, so a resume starts after it rather than from zero.
        if (writer.failure !== undefined) {
          await writer.settled();
          throw fsError(writer.failure, "write the blob to disk");
        }
        if (!isRetryableNetworkError(e) || attempts >= this.maxRetries) {
          await writer.settled();
          throw this.transport.networkError(e, this.baseUrl);
        }
        await writer.flush();
        this.ctx.log.debug(
          `blob ${desc.digest}: connection dropped at ${writer.position} bytes; resuming`,
        );
        await this.transport.backoff(attempts++);
      }
    }
    if (writer.position !== desc.size) {
      throw new ExtctlError(
        "checksum",
        `the blob ${desc.digest} from ${this.registry} is ${writer.position} bytes, but its descriptor says ${desc.size}`,
      );
    }
    const digest = `sha256:${hash.digest("hex")}`;
    if (digest !== desc.digest) {
      throw new ExtctlError(
        "checksum",
        `the blob from ${this.registry} has digest ${digest}, not ${desc.digest} as its manifest says; it was corrupted on the way`,
        {
          hint: "nothing was installed; try again, and check any proxy between you and the registry",
        },
      );
    }
  }

  /** Feeds a response body to `writer`, after dropping `skip` bytes the file already has. */
  private async fillFrom(
    body: BulkBody,
    writer: StagedWriter,
    desc: Descriptor,
    skip: number,
    onBytes: (n: number) => void,
  ): Promise<void> {
    let toSkip = skip;
    await body.pipe(
      (view) => {
        let bytes = view;
        if (toSkip > 0) {
          const drop = Math.min(toSkip, bytes.length);
          toSkip -= drop;
          bytes = bytes.subarray(drop);
          if (bytes.length === 0) return undefined;
        }
        if (writer.position + bytes.length > desc.size) {
          throw new ExtctlError(
            "checksum",
            `the blob ${desc.digest} from ${this.registry} is larger than the ${desc.size} bytes its descriptor says`,
          );
        }
        onBytes(bytes.length);
        return writer.write(bytes);
      },
      () => writer.space(),
    );
  }

  async blobExists(digest: string, repository = this.repository): Promise<boolean> {
    const res = await this.request("HEAD", `/v2/${repository}/blobs/${digest}`);
    await res.body.dump();
    if (res.statusCode === 200) return true;
    if (res.statusCode === 404) return false;
    return this.fail(res, `check for the blob ${digest}`);
  }

  /**
   * Asks the registry to mount a blob from another repository. Returns true when it did; when it
   * declines it opens an upload session instead, whose location is returned.
   */
  async mountBlob(digest: string, from: string): Promise<true | string> {
    const q = new URLSearchParams({ mount: digest, from });
    const res = await this.request(
      "POST",
      `/v2/${this.repository}/blobs/uploads/?${q.toString()}`,
      {
        headers: { "content-length": "0" },
      },
    );
    if (res.statusCode === 201) {
      await res.body.dump();
      return true;
    }
    if (res.statusCode === 202) return this.uploadLocation(res);
    return this.fail(res, `mount the blob ${digest} from ${from}`);
  }

  private async uploadLocation(res: Dispatcher.ResponseData): Promise<string> {
    const location = headerValue(res, "location");
    await res.body.dump();
    if (!location)
      throw new ExtctlError("registry", `${this.registry} started an upload without a Location`);
    return this.transport.url(new URL(location, this.baseUrl + "/").toString());
  }

  async startUpload(): Promise<string> {
    const res = await this.request("POST", `/v2/${this.repository}/blobs/uploads/`, {
      headers: { "content-length": "0" },
    });
    if (res.statusCode !== 202) return this.fail(res, "start a blob upload");
    return this.uploadLocation(res);
  }

  /**
   * Uploads a blob: one PUT when it is small, else PATCH chunks of `chunkSize` then a closing
   * PUT. `open(start, end)` gives a fresh stream of bytes [start, end) for each attempt.
   */
  async uploadBlob(
    desc: { digest: string; size: number },
    open: (start: number, end: number) => Readable | Buffer,
    options: { chunkSize: number; location?: string; onBytes?: (n: number) => void },
  ): Promise<void> {
    let location = options.location ?? (await this.startUpload());
    const withDigest = (loc: string) => {
      const u = new URL(loc);
      u.searchParams.set("digest", desc.digest);
      return u.toString();
    };
    if (desc.size <= options.chunkSize) {
      const res = await this.request("PUT", withDigest(location), {
        headers: {
          "content-type": "application/octet-stream",
          "content-length": String(desc.size),
        },
        body: () => open(0, desc.size),
      });
      if (res.statusCode !== 201) return this.fail(res, `upload the blob ${desc.digest}`);
      await res.body.dump();
      options.onBytes?.(desc.size);
      return;
    }
    for (let start = 0; start < desc.size; start += options.chunkSize) {
      const end = Math.min(desc.size, start + options.chunkSize);
      const res = await this.request("PATCH", location, {
        headers: {
          "content-type": "application/octet-stream",
          "content-length": String(end - start),
          "content-range": `${start}-${end - 1}`,
        },
        body: () => open(start, end),
      });
      if (res.statusCode !== 202)
        return this.fail(res, `upload a chunk of the blob ${desc.digest}`);
      location = await this.uploadLocation(res);
      options.onBytes?.(end - start);
    }
    const res = await this.request("PUT", withDigest(location), {
      headers: { "content-length": "0" },
    });
    if (res.statusCode !== 201)
      return this.fail(res, `finish the upload of the blob ${desc.digest}`);
    await res.body.dump();
  }

  async putManifest(selector: string, mediaType: string, bytes: Buffer): Promise<string> {
    const res = await this.request("PUT", `/v2/${this.repository}/manifests/${selector}`, {
      headers: { "content-type": mediaType, "content-length": String(bytes.length) },
      body: () => bytes,
    });
    if (res.statusCode !== 201) return this.fail(res, `store the manifest ${selector}`);
    await res.body.dump();
    return sha256Digest(bytes);
  }
}

/** A pass-through that counts and hashes a blob and fails at the end if it is not the one named. */
export function blobVerifier(desc: Descriptor, registry: string): Transform {
  const hash = createHash("sha256");
  let size = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      size += chunk.length;
      if (size > desc.size) {
        done(
          new ExtctlError(
            "checksum",
            `the blob ${desc.digest} from ${registry} is larger than the ${desc.size} bytes its descriptor says`,
          ),
        );
        return;
      }
      hash.update(chunk);
      done(null, chunk);
    },
    flush(done) {
      const digest = `sha256:${hash.digest("hex")}`;
      if (size !== desc.size) {
        done(
          new ExtctlError(
            "checksum",
            `the blob ${desc.digest} from ${registry} is ${size} bytes, but its descriptor says ${desc.size}`,
          ),
        );
      } else if (digest !== desc.digest) {
        done(
          new ExtctlError(
            "checksum",
            `the blob from ${registry} has digest ${digest}, not ${desc.digest} as its manifest says; it was corrupted on the way`,
            {
              hint: "nothing was installed; try again, and check any proxy between you and the registry",
            },
          ),
        );
      } else done();
    },
  });
}
