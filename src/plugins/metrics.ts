// Prometheus metrics: one dedicated prom-client Registry per app (never the global one, so two apps in one process,
// as in the tests, never share or collide), the API's own request metrics, and the scheduler's gauges, which the
// /metrics route sets from one reading and its verdict on every scrape.
import fp from 'fastify-plugin'
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client'
import { BREAKER_METRIC_STATES, type SchedulerSample } from '../domain/metrics.js'
import { SCHEDULER_STATUSES } from '../domain/heartbeat.js'
import { LIVENESS_STATES } from '../domain/schemas.js'
import { RequestMetrics } from './request-metrics.js'

declare module 'fastify' {
  interface FastifyInstance {
    metrics: ApiMetrics
  }
  interface FastifyContextConfig {
    /** A long-lived stream: the route counts it when it opens, and its length is never taken for a latency. */
    stream?: boolean
  }
}

/** Requests that matched no route share one label value, so a scan of random URLs cannot grow the series count. */
export const UNMATCHED_ROUTE = 'unmatched'

type Scalar = Gauge | Counter

const NON_CONFORMING_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']

export class ApiMetrics {
  readonly registry = new Registry()

  private readonly requests = new RequestMetrics(this.registry)

  private readonly gauge = (name: string, help: string, labelNames: string[] = []): Gauge =>
    new Gauge({ name, help, labelNames, registers: [this.registry] })

  private readonly counter = (name: string, help: string): Counter =>
    new Counter({ name, help, registers: [this.registry] })

  private readonly scheduler = {
    up: this.gauge('scheduler_heartbeat_up', '1 unless the liveness verdict fails (stale, stopped, missing, unknown); demo="true" when the row is demo data', ['demo']),
    state: this.gauge('scheduler_heartbeat_state', 'The liveness verdict state: 1 for the current state, 0 for the others', ['state']),
    checkedAt: this.gauge('scheduler_heartbeat_checked_timestamp_seconds', 'When the verdict was taken, on the database clock (the API clock when the database was unreachable)'),
    grace: this.gauge('scheduler_heartbeat_grace_seconds', 'The grace after next_poll_at before the verdict is stale'),
    status: this.gauge('scheduler_status', 'The row\'s status column: 1 for the current value, 0 for the others', ['status']),
    breaker: this.gauge('scheduler_circuit_breaker_state', 'The row\'s circuit_breaker_state: 1 for the current value (other: a value the scheduler does not document), 0 for the others', ['state']),
    paused: this.gauge('scheduler_paused', '1 while an operator pause is in force (status stopping or stopped with a paused_reason)'),
    lastPoll: this.gauge('scheduler_last_poll_timestamp_seconds', 'last_poll_at, on the scheduler\'s clock'),
    nextPoll: this.gauge('scheduler_next_poll_timestamp_seconds', 'next_poll_at, on the scheduler\'s clock'),
    updated: this.gauge('scheduler_row_updated_timestamp_seconds', 'updated_at of the heartbeat row'),
    created: this.gauge('scheduler_row_created_timestamp_seconds', 'started_at of the heartbeat row: when the row was first written, not when this scheduler process started'),
    polls: this.counter('scheduler_polls_total', 'poll_count of the row; per scheduler process, so it restarts at 0 with a new instance_id'),
    dispatches: this.counter('scheduler_dispatches_total', 'dispatch_count of the row; per scheduler process, so it restarts at 0 with a new instance_id'),
    errors: this.counter('scheduler_errors_total', 'error_count of the row; per scheduler process, so it restarts at 0 with a new instance_id'),
    info: this.gauge('scheduler_info', 'Always 1, labelled with the instance_id of the scheduler process that wrote the row, and demo="true" when the row is demo data', ['instance_id', 'demo']),
    databaseUp: this.gauge('eva_heartbeat_api_database_up', '1 when the API could read the database for this scrape, else 0')
  }

  /** Only where the row is demo data (the embedded database): absent otherwise, so real series keep their labels. */
  private readonly demoLabel: { demo?: 'true' }

  constructor (options: { demoData?: boolean } = {}) {
    this.demoLabel = options.demoData === true ? { demo: 'true' } : {}
    // Unprefixed on purpose: process_* and nodejs_* are the names every Node.js dashboard and alert already expects,
    // and Prometheus's job/instance labels say which process they belong to.
    collectDefaultMetrics({ register: this.registry })
    // Gauges named *_total against Prometheus naming (promtool check metrics refuses them). Nothing is lost: each
    // is the sum of its per-type gauge (nodejs_active_handles{type}, …), which stays.
    for (const name of NON_CONFORMING_DEFAULTS) this.registry.removeSingleMetric(name)
  }

  /** `seconds` undefined: counted, but no latency (an event stream, whose length is the client's business). */
  observeRequest (method: string, route: string | undefined, status: number, seconds: number | undefined): void {
    this.requests.observe(method, route ?? UNMATCHED_ROUTE, status, seconds)
  }

  /** Copies one scrape's sample into the gauges; a null value removes its series (see SchedulerSample). */
  observeScheduler (sample: SchedulerSample): void {
    const m = this.scheduler
    m.up.set(this.demoLabel, sample.up)
    for (const state of LIVENESS_STATES) m.state.set({ state }, state === sample.state ? 1 : 0)
    for (const status of SCHEDULER_STATUSES) m.status.set({ status }, status === sample.status ? 1 : 0)
    for (const state of BREAKER_METRIC_STATES) m.breaker.set({ state }, state === sample.breaker ? 1 : 0)
    m.paused.set(sample.paused)
    m.databaseUp.set(sample.databaseUp)
    m.checkedAt.set(sample.checkedAtSeconds)
    setOrRemove(m.grace, sample.graceSeconds)
    setOrRemove(m.lastPoll, sample.lastPollSeconds)
    setOrRemove(m.nextPoll, sample.nextPollSeconds)
    setOrRemove(m.updated, sample.updatedSeconds)
    setOrRemove(m.created, sample.createdSeconds)
    setOrRemove(m.polls, sample.polls)
    setOrRemove(m.dispatches, sample.dispatches)
    setOrRemove(m.errors, sample.errors)
    // A new instance_id replaces the old series rather than adding one beside it.
    m.info.reset()
    if (sample.instanceId !== null) m.info.set({ instance_id: sample.instanceId, ...this.demoLabel }, 1)
  }
}

/** Sets a label-less metric to an absolute value, or removes its only series when the value is unknown. */
function setOrRemove (metric: Scalar, value: number | null): void {
  metric.remove()
  if (value === null) return
  if (metric instanceof Gauge) metric.set(value)
  else metric.inc(value)
}

export default fp<{ demoData?: boolean }>(async (app, options) => {
  const metrics = new ApiMetrics({ demoData: options.demoData })
  app.decorate('metrics', metrics)
  // A callback, not an async function: no promise per request.
  app.addHook('onResponse', (request, reply, done) => {
    // A stream's onResponse runs only when the server ends it (a client that leaves never gets one), so streams are
    // counted by their route when they open; refusals before the stream opened (401, 403, 400) are counted here.
    if (request.routeOptions.config.stream !== true || reply.statusCode !== 200) {
      metrics.observeRequest(request.method, request.routeOptions.url, reply.statusCode, reply.elapsedTime / 1000)
    }
    done()
  })
}, { name: 'metrics' })
