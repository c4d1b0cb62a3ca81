// extctl as a library: every operation the CLI offers, callable with plain arguments and a
// Context (createContext({ root })), returning plain results. The CLI only parses and prints.
export { ExtctlError, UsageError, type ErrorCode } from "./util/errors.js";
export { Root } from "./util/root.js";
export { createContext, type Context } from "./util/context.js";
export { MemoryLogger, StderrLogger, silentLogger, type Logger } from "./util/log.js";
export { SpawnRunner, type ProcessRunner, type RunResult } from "./util/runner.js";
export * from "./domain/store/layout.js";

// The kairos-agent verbs.
export { install, type InstallOptions, type InstallResult } from "./operations/install.js";
export { enable, type EnableOptions, type EnableResult } from "./operations/enable.js";
export { disable, type DisableOptions, type DisableResult } from "./operations/disable.js";
export { remove, type RemoveOptions, type RemoveResult } from "./operations/remove.js";
export { list, type ListOptions, type ListResult, type ListedImage } from "./operations/list.js";
export { status, type StatusResult, type KindStatus, type Mismatch } from "./operations/status.js";

// Images: build, read, check, verify, publish.
export { buildImage } from "./operations/build.js";
export { inspectImage } from "./operations/inspect.js";
export { checkImage, type CheckOptions, type CheckResult } from "./operations/check.js";
export { verifyImage } from "./operations/verify.js";
export { publish } from "./operations/publish.js";

// Trust, boot and fleets.
export { listTrust, importEfiTrust } from "./operations/trust.js";
export { boot, type BootOptions, type BootResult } from "./operations/boot.js";
export { apply, type ApplyOptions, type ApplyResult } from "./operations/apply.js";
export { systemdInstall } from "./operations/systemd-install.js";

// Extension catalogs (Kairos's releases.json): load, resolve, sign.
export {
  parseCatalog,
  type Catalog,
  type CatalogLayer,
  type CatalogTag,
} from "./domain/catalog/catalog.js";
export {
  chooseTag,
  goarch,
  offeredVersions,
  resolveExtension,
  rolloutBucket,
  type OfferedVersion,
  type Resolution,
} from "./domain/catalog/resolve.js";
export { readMachineId } from "./domain/catalog/machine-id.js";
export {
  CATALOG_STATE_FILE,
  DEFAULT_CATALOGS_FILE,
  defaultCatalogUrls,
  loadCatalogs,
  type CatalogFetchOptions,
  type LoadedCatalogs,
} from "./domain/catalog/fetch.js";
export { publishCatalog, signCatalog, verifyCatalog } from "./operations/catalog.js";

// Building blocks other tools reuse.
export { resolveName, shortName, versionedCandidates } from "./domain/store/names.js";
export { ExtensionStore } from "./domain/store/store.js";
export { detectBootState } from "./domain/activate/boot-detect.js";
export { readMerged, type MergedHierarchy } from "./domain/activate/merged.js";
export { readGpt } from "./domain/image/gpt.js";
export { dissectImage } from "./domain/image/ddi.js";
export { buildVerityTree, checkVerityTree } from "./domain/trust/verity-tree.js";
export { signRootHash, verifyRootHashSignature } from "./domain/trust/signature.js";
export { parseImagePolicy, resolvePolicy } from "./domain/trust/policy.js";
export { evaluateImage, checkImageTrust } from "./domain/trust/image-trust.js";
export { loadTrustStore } from "./domain/trust/truststore.js";
export { parseReference } from "./domain/oci/reference.js";
export { pullImageLayers } from "./domain/sources/oci/index.js";
