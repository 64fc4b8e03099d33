// `pause --wait` / `resume --wait`: write the change, then poll GET /heartbeat with the last ETag until the
// scheduler's answer settles it. Polling, not the event stream: same 1 s pace, no SSE parser, and proxies that
// buffer long responses or tokens that expire mid-stream cannot break it.
import type { HeartbeatPatch } from '../domain/patch.js'
import type { HeartbeatJson } from '../domain/heartbeat.js'
import { CliError, describeFailure, type ApiAnswer, type ApiClient } from './client.js'
import { isHeartbeatAnswer, type HeartbeatAnswer } from './format.js'
import { conclude, observe, startWait, type Sighting, type WaitDecision, type WaitGoal } from './wait-decision.js'
import type { WaitContext } from './wait-report.js'

export const DEFAULT_WAIT_SECONDS = 120
export const MAX_WAIT_SECONDS = 86_400
/** How often the row is read while waiting. */
export const WAIT_POLL_MS = 1000

export interface WaitRequest {
  goal: WaitGoal
  body: HeartbeatPatch
  headers: Record<string, string> | undefined
  waitSeconds: number
  /** Called once the API has accepted the change, before the wait starts. */
  onAccepted: (answer: HeartbeatAnswer) => void
  pollMs?: number
}

const delay = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

interface Read { sighting: Sighting, etag: string | undefined }

async function readRow (client: ApiClient, etag: string | undefined): Promise<Read> {
  let answer: ApiAnswer
  try {
    answer = await client.request('GET', 'heartbeat', etag === undefined ? {} : { headers: { 'if-none-match': etag } })
  } catch (error) {
    return { sighting: { kind: 'unreachable', reason: error instanceof Error ? error.message : String(error) }, etag }
  }
  if (answer.status === 304) return { sighting: { kind: 'unchanged' }, etag }
  if (answer.status === 200 && isHeartbeatAnswer(answer.json)) {
    return { sighting: { kind: 'row', ...answer.json }, etag: answer.headers.get('etag') ?? undefined }
  }
  if (answer.status === 404) return { sighting: { kind: 'missing' }, etag: undefined }
  const reason = describeFailure(answer)
  return { sighting: answer.status === 503 ? { kind: 'unreachable', reason } : { kind: 'refused', reason }, etag }
}

/** Nothing accepted: the API or its database could not be reached before the change was confirmed. */
function notWritten (goal: WaitGoal, reason: string, before: HeartbeatJson | null): { decision: WaitDecision, context: WaitContext } {
  return {
    decision: { outcome: 'unreachable', heartbeat: null, liveness: null, schedulerWroteAt: null, operatorWroteAt: null, silence: null, failure: reason },
    context: { goal, reason: null, waitSeconds: 0, waitedSeconds: 0, patchedAt: null, before }
  }
}

export async function changeAndWait (client: ApiClient, request: WaitRequest): Promise<{ decision: WaitDecision, context: WaitContext }> {
  const { goal } = request
  // The row before the change: only to tell, if the scheduler stays silent, that its last word was a graceful stop.
  const first = await readRow(client, undefined)
  if (first.sighting.kind === 'unreachable') return notWritten(goal, first.sighting.reason, null)
  const before = first.sighting.kind === 'row' ? first.sighting.heartbeat : null

  let answer: ApiAnswer
  try {
    answer = await client.request('PATCH', 'heartbeat', { body: request.body, ...(request.headers !== undefined ? { headers: request.headers } : {}) })
  } catch (error) {
    return notWritten(goal, error instanceof Error ? error.message : String(error), before)
  }
  if (answer.status === 503) return notWritten(goal, describeFailure(answer), before)
  if (answer.status !== 200 || !isHeartbeatAnswer(answer.json)) throw new CliError(describeFailure(answer))
  const accepted = answer.json
  const started = Date.now()
  request.onAccepted(accepted)

  let state = startWait(goal, accepted, before)
  let etag = answer.headers.get('etag') ?? undefined
  const deadline = started + request.waitSeconds * 1000
  for (;;) {
    const remaining = deadline - Date.now()
    if (remaining <= 0) break
    await delay(Math.min(request.pollMs ?? WAIT_POLL_MS, remaining))
    if (Date.now() >= deadline) break
    const read = await readRow(client, etag)
    etag = read.etag
    state = observe(state, read.sighting)
    if (state.decision !== null) break
  }
  // A last full read: a 304 keeps the verdict's ages from the read that changed it, and the silence is judged on them.
  if (state.decision === null) state = observe(state, (await readRow(client, undefined)).sighting)
  return {
    decision: conclude(state),
    context: {
      goal,
      reason: state.askedReason,
      waitSeconds: request.waitSeconds,
      waitedSeconds: (Date.now() - started) / 1000,
      patchedAt: accepted.heartbeat.updated_at,
      before
    }
  }
}
