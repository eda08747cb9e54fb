// The worker's wire contract (docs/contract.schema.json) as TypeScript
// types: what a service sends to the LipSync and LipSyncBatch workflows and
// what it reads back. Times are RFC 3339 strings (UTC); durations are
// strings such as "90s", "10m" or "1h30m".

/** The LipSync workflow's input. */
export interface Job {
  /** When absent, the workflow ID is used; give one, it names the workflow. */
  reference_id?: string;
  video_url: string;
  audio_url: string;
  disable_active_speaker_detection?: boolean;
  batch_id?: string;
  poll?: { initial?: string; max?: string; coefficient?: number; target_latency?: string };
  stuck_after?: string;
  deadline?: string;
}

/** A completed job: the LipSync workflow's result. */
export interface JobResult {
  reference_id: string;
  request_id: string;
  status: 'completed';
  output_url: string;
  adopted: boolean;
  started_at: string;
  submitted_at: string;
  processing_started_at?: string;
  finished_at: string;
  duration: string;
  status_checks: number;
  runs: number;
}

/** The answer of the LipSync workflow's "status" query. */
export interface JobStatus {
  reference_id: string;
  request_id: string;
  status: string;
  attempt: number;
  status_checks: number;
  stuck_notified: boolean;
  escalated?: string;
  error_message?: string;
  started_at: string;
  runs: number;
  waiting_for_decision: boolean;
  blocked_on_account?: string;
}

/** The first detail of the failure of a job that ended escalated. */
export interface EscalationDetails {
  reason: string;
  http_status?: number;
  error_message: string;
  escalation_id?: number;
  request_id?: string;
}

/** The "resolve" update's argument, and its answer. */
export interface Decision {
  action: 'retry' | 'resume' | 'abandon';
  note?: string;
  by?: string;
}
export interface DecisionResult {
  action: string;
  attempt: number;
}

/** The LipSyncBatch workflow's input (jobs inline; see the schema for a source file). */
export interface Batch {
  batch_id: string;
  jobs: Job[];
  concurrency?: number;
  max_pending?: number;
  reconcile_after?: string;
}

/** The LipSyncBatch workflow's "progress" query (the counts; see the schema for the pause). */
export interface BatchProgress {
  batch_id: string;
  status: string;
  total: number;
  submitted: number;
  completed: number;
  escalated: number;
  waiting: number;
  remaining: number;
  in_flight: number;
  runs: number;
  [count: string]: unknown;
}

/** How one job of a batch ended, when not completed. */
export interface JobOutcome {
  reference_id: string;
  outcome: string;
  reason?: string;
  http_status?: number;
  error_message?: string;
}

/** The LipSyncBatch workflow's result. */
export interface BatchResult {
  batch_id: string;
  total: number;
  completed: number;
  escalated: number;
  abandoned: number;
  not_submitted: number;
  duplicate: number;
  cancelled: number;
  waiting: number;
  aborted: boolean;
  outcomes: JobOutcome[];
  outcomes_listed: number;
  runs: number;
}
