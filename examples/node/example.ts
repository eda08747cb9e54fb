// Starting and awaiting lip-sync jobs from Node in TypeScript, through the
// worker's wire contract (docs/contract.schema.json, typed in contract.ts):
// submit a job, query its status, submit it again (which attaches), wait
// for its result; answer an escalated job (retry) and read why another
// ended escalated (abandon); submit a batch and wait for it. Every step
// prints one JSON line.
//
// Environment: TEMPORAL_ADDRESS (localhost:7233), TEMPORAL_NAMESPACE
// (default), TEMPORAL_TASK_QUEUE (lipsync), PAYLOAD_ENCRYPTION_KEYS and
// PAYLOAD_ENCRYPTION_KEY_ID (as the worker's), EXAMPLE_PREFIX (prefixes the
// reference_ids), MEDIA_URL_TEMPLATE (with {kind} and {ref}).
import { Client, Connection, WorkflowExecutionAlreadyStartedError, WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { AesGcmCodec } from './codec.js';
import type { Batch, BatchProgress, BatchResult, Decision, DecisionResult, EscalationDetails, Job, JobResult, JobStatus } from './contract.js';

const env = process.env;
const taskQueue = env.TEMPORAL_TASK_QUEUE || 'lipsync';
const prefix = env.EXAMPLE_PREFIX || `node-${Date.now()}-`;
const media = (kind: string, ref: string): string =>
  (env.MEDIA_URL_TEMPLATE || 'https://media.example.com/{kind}/{ref}.mp4').replaceAll('{kind}', kind).replaceAll('{ref}', ref);
const print = (step: string, fields: Record<string, unknown>): void => console.log(JSON.stringify({ step, ...fields }));

const connection = await Connection.connect({ address: env.TEMPORAL_ADDRESS || 'localhost:7233' });
const client = new Client({
  connection,
  namespace: env.TEMPORAL_NAMESPACE || 'default',
  // The worker encrypts failure messages too (encoded attributes): the
  // default failure converter decodes them through the same codec.
  dataConverter: env.PAYLOAD_ENCRYPTION_KEYS
    ? { payloadCodecs: [new AesGcmCodec(env.PAYLOAD_ENCRYPTION_KEYS, env.PAYLOAD_ENCRYPTION_KEY_ID)] }
    : undefined,
});

// submit starts the job with this reference_id, or attaches to it: a running
// job is returned as it is (conflict policy USE_EXISTING), an ended one is
// never started again (reuse policy REJECT_DUPLICATE).
async function submit(job: Job): Promise<{ handle: WorkflowHandle; runId?: string; ended: boolean }> {
  const workflowId = `lipsync-${job.reference_id}`;
  try {
    const handle = await client.workflow.start('LipSync', {
      taskQueue,
      workflowId,
      args: [job],
      workflowIdConflictPolicy: 'USE_EXISTING',
      workflowIdReusePolicy: 'REJECT_DUPLICATE',
    });
    return { handle, runId: handle.firstExecutionRunId, ended: false };
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    return { handle: client.workflow.getHandle(workflowId), ended: true };
  }
}

const job = (ref: string): Job => ({ reference_id: ref, video_url: media('video', ref), audio_url: media('audio', ref), stuck_after: '10m' });
const status = (handle: WorkflowHandle): Promise<JobStatus> => handle.query<JobStatus>('status');
const resolve = (handle: WorkflowHandle, d: Decision): Promise<DecisionResult> =>
  handle.executeUpdate<DecisionResult, [Decision]>('resolve', { args: [d] });

// until queries the job's status until pred holds.
async function until(handle: WorkflowHandle, pred: (s: JobStatus) => boolean, what: string): Promise<JobStatus> {
  for (let i = 0; i < 240; i++) {
    const s = await status(handle);
    if (pred(s)) return s;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${handle.workflowId}: gave up waiting until ${what}`);
}

// 1. A job: submit, status, a second submission that attaches, the result.
const ok = `${prefix}ok`;
const first = await submit(job(ok));
print('submitted', { reference_id: ok, workflow_id: first.handle.workflowId, run_id: first.runId });
print('status', { status: await status(first.handle) });
const again = await submit(job(ok));
print('submitted_again', { reference_id: ok, run_id: again.runId });
const result: JobResult = await first.handle.result();
print('completed', { result });
const after = await submit(job(ok));
print('submitted_after_end', { reference_id: ok, already_ended: after.ended, result: (await after.handle.result()) as JobResult });

// 2. An escalated job waiting for a human: read the reason, answer retry.
const quota = `${prefix}quota`;
const q = (await submit(job(quota))).handle;
const escalated = await until(q, (s) => s.waiting_for_decision, 'it waits for a decision');
print('escalated', { reference_id: quota, reason: escalated.escalated, error_message: escalated.error_message });
const answer = await resolve(q, { action: 'retry', note: 'plan upgraded', by: 'node-example' });
print('resolved', { reference_id: quota, answer });
print('completed', { result: (await q.result()) as JobResult });

// 3. A job the vendor fails, abandoned: how a job that ended escalated reads.
const failed = `${prefix}failed`;
const f = (await submit(job(failed))).handle;
await until(f, (s) => s.waiting_for_decision, 'it waits for a decision');
await resolve(f, { action: 'abandon', note: 'bad source video', by: 'node-example' });
try {
  await f.result();
  throw new Error(`${failed} completed; it should have ended escalated`);
} catch (err) {
  if (!(err instanceof WorkflowFailedError) || !(err.cause instanceof ApplicationFailure)) throw err;
  // The failure's type is the reason (Abandoned after a human's abandon);
  // its first detail is the escalation (docs/contract.schema.json#escalation_details).
  const details = err.cause.details?.[0] as EscalationDetails | undefined;
  print('ended_escalated', { reference_id: failed, type: err.cause.type, message: err.cause.message, details });
}

// 4. A batch: start, progress, result.
const batchId = `${prefix}batch`;
const input: Batch = { batch_id: batchId, jobs: [job(`${prefix}b1`), job(`${prefix}b2`)], concurrency: 2 };
const batch = await client.workflow.start('LipSyncBatch', {
  taskQueue,
  workflowId: `batch-${batchId}`,
  args: [input],
  workflowIdConflictPolicy: 'USE_EXISTING',
  workflowIdReusePolicy: 'REJECT_DUPLICATE',
});
print('batch_progress', { progress: await batch.query<BatchProgress>('progress') });
print('batch_completed', { result: (await batch.result()) as BatchResult });
await connection.close();
