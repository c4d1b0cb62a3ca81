// What every source (file:, http(s):, oci:) promises: bytes land in a temp file inside the store,
// are hashed while they pass, fsynced and renamed into place; on any failure nothing is left.
import type { Context } from "../../util/context.js";
import type { ExtensionKind } from "../store/layout.js";

export interface FetchRequest {
  uri: string;
  kind: ExtensionKind;
  /** Host path of the store directory (already created). */
  storeDir: string;
  /** Expected SHA-256 (hex) of the single file fetched; checked while streaming. */
  sha256?: string;
  /** Store the image under this file name instead of the source's. */
  name?: string;
  /**
   * The file name the image will finally be known by in the store (install by name stages it
   * elsewhere first): the check that its release file fits a link name judges this name.
   */
  mergeName?: string;
  /** Extra CA certificate files (PEM) trusted besides the system ones. */
  caCerts?: string[];
  /** OCI: platform "os/arch[/variant]"; default the host's. */
  platform?: string;
  /** OCI: "USER:PASS". */
  creds?: string;
  /** OCI: registry hosts reached over plain http. */
  insecureRegistries?: string[];
  /**
   * Give up when fewer than 1 KiB arrive within this many milliseconds (a stalled or dripping
   * server); also the connect and response-header limit. Default 60 s.
   */
  timeoutMs?: number;
  /** Refuse to replace an image that is already in the store. */
  noClobber?: boolean;
  /** OCI classic images: may replace any installed image they carry, not only their own. */
  replace?: boolean;
  /** Hard cap on the bytes an install may write (expansion.ts; default 64 GiB). */
  maxBytes?: number;
}

export interface FetchedImage {
  /** File name in the store, e.g. "hello.sysext.raw". */
  name: string;
  /** Host path of the stored file. */
  path: string;
  size: number;
  sha256: string;
}

export interface Source {
  /** URI schemes this source handles, without the colon. */
  readonly schemes: readonly string[];
  fetch(ctx: Context, request: FetchRequest): Promise<FetchedImage[]>;
}
