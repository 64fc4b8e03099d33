// A small stand-in for the EVA scheduler, for the embedded default: it writes the row as the real one does
// (docs/scheduler.md), and unlike today's real scheduler it honours an operator's pause, unless told to behave as
// that one does (`honoursPauses: false`: every poll upserts every column blindly, reading nothing back).
import { randomBytes } from 'node:crypto'
import type { Sql } from 'postgres'
import { transaction } from '../db/transaction.js'

export interface DemoSchedulerOptions {
  intervalSeconds: number
  onError?: (error: unknown) => void
  /** After each poll that succeeded (the start's log says when an outage ends). */
  onPoll?: () => void
  /** How many jobs a poll dispatches when it may; 0 to 2 at random unless given. */
  jobsPerPoll?: () => number
  /** false: behave as today's real scheduler, which overwrites status, paused_reason and the breaker on every poll. */
  honoursPauses?: boolean
}

interface ControlFields { status: string, paused_reason: string | null, circuit_breaker_state: string | null }

const BASE_BATCH_SIZE = 5

export class DemoScheduler {
  readonly instanceId = `scheduler-${randomBytes(4).toString('hex')}`
  private readonly startedAt = Date.now()
  private pollCount = 0
  private dispatchCount = 0
  private errorCount = 0
  /** Jobs dispatched by the last poll: they run until the next poll. */
  private inFlight = 0
  private timer: NodeJS.Timeout | undefined
  private running: Promise<void> | undefined

  constructor (private readonly sql: Sql, private readonly options: DemoSchedulerOptions) {}

  start (): void {
    if (this.timer !== undefined) return
    const tick = (): void => {
      // A poll slower than the interval is not overlapped by the next one: that tick is skipped.
      if (this.running !== undefined) return
      this.running = this.poll()
        .then(() => { this.options.onPoll?.() })
        .catch((error: unknown) => { this.errorCount++; this.options.onError?.(error) })
        .finally(() => { this.running = undefined })
    }
    tick()
    this.timer = setInterval(tick, this.options.intervalSeconds * 1000)
    this.timer.unref()
  }

  /** Stops polling and, like the real scheduler's graceful stop, writes `stopped` with a fresh last_poll_at. */
  async stop (): Promise<void> {
    clearInterval(this.timer)
    this.timer = undefined
    await this.running
    await this.poll({ stopping: true }).catch((error: unknown) => { this.options.onError?.(error) })
  }

  /** One poll: read the operator's control fields, decide, dispatch, write the row — all in one transaction. */
  async poll (options: { stopping?: boolean } = {}): Promise<void> {
    await transaction(this.sql, async (tx) => {
      const [current] = this.options.honoursPauses === false
        ? []
        : await tx<ControlFields[]>`
          select status, paused_reason, circuit_breaker_state from public.eva_scheduler_heartbeat where id = 1 for update`
      // An operator's pause: stopping or stopped with a reason. `running` with a reason is the breaker's note, not a pause.
      const paused = current !== undefined && current.status !== 'running' &&
        current.paused_reason !== null && current.paused_reason.trim() !== ''
      const breaker = current?.circuit_breaker_state ?? 'CLOSED'
      // The jobs of the previous poll are still running during this one; they are done by the next.
      const draining = this.inFlight
      this.inFlight = 0
      let jobs = 0
      if (!paused && options.stopping !== true && breaker !== 'OPEN') {
        jobs = Math.max(0, Math.floor(this.options.jobsPerPoll?.() ?? Math.random() * 3))
        this.dispatchCount += jobs
        this.inFlight = jobs
      }
      this.pollCount++
      // Paused: `stopping` while earlier jobs drain, `stopped` once idle; the operator's reason is kept.
      const status = options.stopping === true ? 'stopped' : paused ? (draining > 0 ? 'stopping' : 'stopped') : 'running'
      const pausedReason = paused ? current.paused_reason : (breaker === 'OPEN' ? 'circuit_breaker_open' : null)
      const now = new Date()
      const next = new Date(now.getTime() + this.options.intervalSeconds * 1000)
      const metadata = {
        observe_only: false,
        build_provenance: {
          git_sha: 'demo',
          started_from: 'eva-heartbeat-api demo',
          node_version: process.version,
          env: 'development',
          stamped_at: new Date(this.startedAt).toISOString()
        },
        metrics_write_failures: 0,
        round_execution_count: this.pollCount,
        round_error_count: this.errorCount,
        registered_rounds: ['demo_round'],
        dynamic_scaling: { enabled: false, current_batch_size: BASE_BATCH_SIZE, base_batch_size: BASE_BATCH_SIZE, last_queue_depth: jobs },
        last_round_runs: { demo_round: now.getTime() },
        job_last_runs: { demo_job: now.getTime() }
      }
      // The same upsert as the real scheduler: every column but id and started_at (set once, by the first insert).
      await tx`
        insert into public.eva_scheduler_heartbeat
          (id, instance_id, last_poll_at, next_poll_at, poll_count, dispatch_count, error_count,
           status, circuit_breaker_state, paused_reason, metadata, updated_at)
        values (1, ${this.instanceId}, ${now}, ${next}, ${this.pollCount}, ${this.dispatchCount}, ${this.errorCount},
           ${status}, ${breaker}, ${pausedReason}, ${tx.json(metadata)}, ${now})
        on conflict (id) do update set
          instance_id = excluded.instance_id, last_poll_at = excluded.last_poll_at, next_poll_at = excluded.next_poll_at,
          poll_count = excluded.poll_count, dispatch_count = excluded.dispatch_count, error_count = excluded.error_count,
          status = excluded.status, circuit_breaker_state = excluded.circuit_breaker_state,
          paused_reason = excluded.paused_reason, metadata = excluded.metadata, updated_at = excluded.updated_at`
    })
  }
}
