// A small stand-in for the EVA scheduler, for the embedded default: it writes the row as the real one does
// (domain.md), and unlike today's real scheduler it honours an operator's pause.
import { randomBytes } from 'node:crypto'
import type { Sql } from 'postgres'

export interface DemoSchedulerOptions {
  intervalSeconds: number
  onError?: (error: unknown) => void
}

interface ControlFields { status: string, paused_reason: string | null, circuit_breaker_state: string | null }

export class DemoScheduler {
  readonly instanceId = `scheduler-${randomBytes(4).toString('hex')}`
  private readonly startedAt = Date.now()
  private pollCount = 0
  private dispatchCount = 0
  private errorCount = 0
  private inFlight = 0
  private timer: NodeJS.Timeout | undefined
  private running: Promise<void> | undefined

  constructor (private readonly sql: Sql, private readonly options: DemoSchedulerOptions) {}

  start (): void {
    if (this.timer !== undefined) return
    const tick = (): void => {
      this.running = this.poll().catch((error: unknown) => { this.errorCount++; this.options.onError?.(error) })
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
    await this.poll({ stopping: true }).catch(() => {})
  }

  /** One poll: read the operator's control fields, decide, dispatch, write the row — all in one transaction. */
  async poll (options: { stopping?: boolean } = {}): Promise<void> {
    await this.sql.begin(async (tx) => {
      const [current] = await tx<ControlFields[]>`
        select status, paused_reason, circuit_breaker_state from public.eva_scheduler_heartbeat where id = 1 for update`
      const paused = current !== undefined && current.status !== 'running' &&
        current.paused_reason !== null && current.paused_reason.trim() !== ''
      const breaker = current?.circuit_breaker_state ?? 'CLOSED'
      // Work dispatched on the previous poll finishes now.
      this.inFlight = 0
      this.pollCount++
      if (!paused && !options.stopping && breaker !== 'OPEN') {
        const jobs = Math.floor(Math.random() * 3)
        this.dispatchCount += jobs
        this.inFlight = jobs
      }
      const status = options.stopping === true ? 'stopped' : paused ? (this.inFlight > 0 ? 'stopping' : 'stopped') : 'running'
      const pausedReason = paused ? current.paused_reason : (breaker === 'OPEN' ? 'circuit_breaker_open' : null)
      const now = new Date()
      const next = new Date(now.getTime() + this.options.intervalSeconds * 1000)
      const metadata = {
        observe_only: false,
        build_provenance: { git_sha: 'demo', started_from: 'eva-heartbeat-api demo', node_version: process.version, env: 'development', stamped_at: new Date(this.startedAt).toISOString() },
        registered_rounds: ['demo_round'],
        round_execution_count: this.pollCount,
        round_error_count: this.errorCount,
        job_last_runs: { demo_job: now.getTime() }
      }
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
