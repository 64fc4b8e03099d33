// The request metrics as Prometheus reads them: the same text prom-client's own Counter and Histogram give for the
// same requests (they are the reference), bucket edges included, streams counted without a latency.
import { Counter, Histogram, Registry } from 'prom-client'
import t from 'tap'
import { DURATION_BUCKETS, RequestMetrics } from '../../src/plugins/request-metrics.js'

type Request = [method: string, route: string, status: number, seconds: number | undefined]

const REQUESTS: Request[] = [
  ['GET', '/heartbeat/liveness', 200, 0.0004],
  ['GET', '/heartbeat/liveness', 200, 0.001], // on an edge: counted in le="0.001"
  ['GET', '/heartbeat/liveness', 200, 0.0011],
  ['GET', '/heartbeat/liveness', 503, 0.3],
  ['GET', '/heartbeat', 401, 0.002],
  ['GET', '/heartbeat', 200, 12], // above every bucket: +Inf only
  ['PATCH', '/heartbeat', 200, 0.04],
  ['GET', '/heartbeat/events', 200, undefined], // a stream: counted, no latency
  ['GET', '/heartbeat/events', 200, undefined],
  ['GET', 'unmatched', 404, 0.0001]
]

function reference (requests: Request[]): Registry {
  const registry = new Registry()
  const counter = new Counter({ name: 'http_requests_total', help: 'HTTP requests answered by this API, by method, route template and status code', labelNames: ['method', 'route', 'status'], registers: [registry] })
  const histogram = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'Time to answer an HTTP request, by method, route template and status code (event streams excluded: they last as long as their client stays)',
    labelNames: ['method', 'route', 'status'],
    buckets: [...DURATION_BUCKETS],
    registers: [registry]
  })
  for (const [method, route, status, seconds] of requests) {
    const labels = { method, route, status: String(status) }
    counter.inc(labels)
    if (seconds !== undefined) histogram.observe(labels, seconds)
  }
  return registry
}

t.test('the exposition is prom-client\'s for the same requests', async (t) => {
  const registry = new Registry()
  const metrics = new RequestMetrics(registry)
  for (const [method, route, status, seconds] of REQUESTS) metrics.observe(method, route, status, seconds)
  t.equal(await registry.metrics(), await reference(REQUESTS).metrics())
})

t.test('before any request: the metrics are declared, with no series', async (t) => {
  const registry = new Registry()
  new RequestMetrics(registry) // eslint-disable-line no-new
  t.equal(await registry.metrics(), await reference([]).metrics())
})

t.test('a registry reset empties them', async (t) => {
  const registry = new Registry()
  const metrics = new RequestMetrics(registry)
  metrics.observe('GET', '/livez', 200, 0.001)
  registry.resetMetrics()
  t.equal(await registry.metrics(), await reference([]).metrics())
  metrics.observe('GET', '/livez', 200, 0.001)
  t.equal(await registry.metrics(), await reference([['GET', '/livez', 200, 0.001]]).metrics())
})
