// Shapes that cross the workflow boundary. References only, never data (ARCHITECTURE.md, invariant 1).

/** A stored, content-addressed blob. The only form in which data leaves an activity. */
export interface ArtifactRef {
  /** `s3://bucket/key` or `file:///abs/path`. */
  uri: string;
  /** Hex sha256 of the bytes, computed on write and verified on every read. */
  sha256: string;
  bytes: number;
  /** e.g. `application/jsonl`, `application/json`. */
  mediaType: string;
}

/**
 * Metric values a stage reports; nested objects allowed for per-reason counts. A string `endRun`
 * says the rest of the run has nothing to do (why, in words): stages not yet started are skipped
 * and the run still succeeds.
 */
export type Metrics = Record<string, unknown>;

/** What a stage activity receives. Everything here is small and JSON-serializable. */
export interface StageInput {
  runId: string;
  pipeline: string;
  /** Stage name in the spec (map key). */
  stage: string;
  /** Stage type (`collect`, `clean`, ...). Also the activity name. */
  type: string;
  /** The stage's validated options, defaults applied. */
  config: Record<string, unknown>;
  /** Outputs of upstream stages, by stage name. */
  inputs: Record<string, StageResult>;
  /** Names of the stages in the spec's `input` field, in order (the datasets this stage reads). */
  dataInputs: string[];
  /** Store key prefix this stage writes under: `runs/<runId>/<stage>/`. Fixed per (run, stage). */
  outputPrefix: string;
  /** Directory relative paths in the spec resolve against (the spec file's directory). */
  baseDir: string;
  /** Pipeline seed combined with the stage name; same seed, same outputs. */
  seed: number;
  /** Digest of the stage's type, config and implementation version; with the input digests it makes the cache key (ARCHITECTURE.md, invariant 4). */
  cacheKey: string;
  /** Reuse a verified earlier result computed with the same key. */
  cache: boolean;
  /** Set by `tempered resume`: reuse this earlier run's committed result after verifying it. */
  reuse?: { runId: string; manifest: ArtifactRef };
  /** sha256 of the run's validated spec: lineage of what the run registers. */
  specDigest?: string;
  /** GPU devices the attempt takes on a gpu worker (`resources.gpu`). Absent in runs started before plans carried it: 1 on the gpu queue, else 0. */
  gpus?: number;
}

/** What a stage activity returns, and what its manifest records. */
export interface StageResult {
  /** Named outputs, e.g. `{ records: ref }` or `{ train, validation, test }`. */
  outputs: Record<string, ArtifactRef>;
  metrics: Metrics;
  /** The committed manifest; its presence means the stage's outputs are complete. */
  manifest: ArtifactRef;
}

/** The manifest file a stage writes last, under `<outputPrefix>manifest.json`. */
export interface StageManifest {
  apiVersion: 'tempered.dev/v1';
  runId: string;
  pipeline: string;
  stage: string;
  type: string;
  cacheKey: string;
  outputs: Record<string, ArtifactRef>;
  metrics: Metrics;
  /** Upstream manifests this stage read: lineage. */
  inputs: Record<string, ArtifactRef>;
  createdAt: string;
}

/** What a stage activity returns to the workflow: its result plus how it was obtained. */
export interface StageOutcome extends StageResult {
  /** The attempt that produced it (1 = first try). */
  attempt: number;
  /** Set when outputs were reused instead of computed: the run whose outputs they are. */
  cachedFrom?: string;
}

/** Every stage activity has this signature; the activity name is the stage type. */
export type StageActivity = (input: StageInput) => Promise<StageOutcome>;

/** `queued`: scheduled, waiting for a worker slot (e.g. the one GPU); only clients see it, from the server. */
export type StageStatus = 'pending' | 'queued' | 'running' | 'succeeded' | 'cached' | 'failed' | 'skipped' | 'cancelled';
export type RunStatus = 'running' | 'succeeded' | 'failed' | 'cancelled';

/** Per-stage progress, as the `progress` query and the run summary report it. */
export interface StageProgress {
  status: StageStatus;
  type: string;
  taskQueue: string;
  attempts: number;
  cached: boolean;
  cachedFrom?: string;
  startedAt?: string;
  endedAt?: string;
  outputs: Array<{ name: string; uri: string; sha256: string; bytes: number }>;
  metrics: Metrics;
  error?: string;
  /** The committed manifest of a finished stage (what `resume` reuses). */
  manifest?: ArtifactRef;
  /** Latest heartbeat details of a running attempt (filled from the server by clients). */
  heartbeat?: unknown;
  /** Why a stage was skipped although nothing failed (the run ended early). */
  note?: string;
  /** The stage's validated options (defaults applied), as planned: what ran. */
  config?: Record<string, unknown>;
}

/** The summary `tempered run --json` and `tempered status --json` print. */
export interface RunSummary {
  runId: string;
  workflowId: string;
  pipeline: string;
  status: RunStatus;
  startedAt?: string;
  endedAt?: string;
  /** Set when a stage ended the run early with nothing left to do, e.g. `{ stage: 'collect', reason: 'nothing new since the last cycle' }`. */
  endedEarly?: { stage: string; reason: string };
  stages: Record<string, StageProgress>;
  /** What the report compares (the spec's `report.compare`), carried from the plan. */
  comparisons?: Array<{ name?: string; candidate: string; baseline: string; metrics?: string[] }>;
  /** Why a running run does not move (no worker polls the queue it waits on); filled in by clients. */
  waiting?: string;
}
