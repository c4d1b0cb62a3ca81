// extctl as a library: every operation the CLI offers, callable with plain arguments and a
// Context (createContext({ root })), returning plain results. The CLI only parses and prints.
export { ExtctlError, UsageError, type ErrorCode } from "./util/errors.js";
export { Root } from "./util/root.js";
export { createContext, type Context } from "./util/context.js";
export { MemoryLogger, StderrLogger, silentLogger, type Logger } from "./util/log.js";
export { SpawnRunner, type ProcessRunner, type RunResult } from "./util/runner.js";
export * from "./domain/store/layout.js";

// Every operation with its Options and Result: op(ctx, options) -> Promise<Result>.
// The kairos-agent verbs.
export { install, type InstallOptions, type InstallResult } from "./operations/install.js";
export {
  installAndEnable,
  type EnableAfterInstall,
  type InstallEnableRequest,
  type InstallEnableResult,
} from "./operations/install-enable.js";
export {
  installByName,
  type InstallNameOptions,
  type InstallNameResult,
} from "./operations/install-name.js";
export { enable, type EnableOptions, type EnableResult } from "./operations/enable.js";
export { disable, type DisableOptions, type DisableResult } from "./operations/disable.js";
export { remove, type RemoveOptions, type RemoveResult } from "./operations/remove.js";
export { list, type ListOptions, type ListResult, type ListedImage } from "./operations/list.js";
export {
  status,
  type StatusOptions,
  type StatusResult,
  type KindStatus,
  type Mismatch,
} from "./operations/status.js";

// Versions installed by name from catalogs.
export { upgrade, type UpgradeOptions, type UpgradeResult } from "./operations/upgrade.js";
export { rollback, type RollbackOptions, type RollbackResult } from "./operations/rollback.js";
export { listVersions, type VersionsOptions, type VersionsResult } from "./operations/versions.js";

// Images: build, read, check, verify, publish.
export { buildImage, type BuildOptions, type BuildResult } from "./operations/build.js";
export { inspectImage, type InspectOptions, type InspectResult } from "./operations/inspect.js";
export { catImageFile, type CatOptions, type CatResult } from "./operations/cat.js";
export { checkImage, type CheckOptions, type CheckResult } from "./operations/check.js";
export { verifyImage, type VerifyOptions, type VerifyResult } from "./operations/verify.js";
export { publish, type PublishOptions, type PublishResult } from "./operations/publish.js";

// Trust, boot and fleets.
export {
  listTrust,
  importEfiTrust,
  type TrustListOptions,
  type TrustListResult,
  type EfiImportOptions,
  type EfiImportResult,
} from "./operations/trust.js";
export { boot, type BootOptions, type BootResult } from "./operations/boot.js";
export { apply, type ApplyOptions, type ApplyResult } from "./operations/apply.js";
export {
  systemdInstall,
  type SystemdInstallOptions,
  type SystemdInstallResult,
} from "./operations/systemd-install.js";

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
export {
  publishCatalog,
  signCatalog,
  verifyCatalog,
  type CatalogPublishOptions,
  type CatalogPublishResult,
  type CatalogSignOptions,
  type CatalogSignResult,
  type CatalogVerifyOptions,
  type CatalogVerifyResult,
} from "./operations/catalog.js";

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
