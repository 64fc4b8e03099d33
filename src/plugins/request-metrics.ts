// http_requests_total and http_request_duration_seconds, kept as plain numbers per series and turned into
// prom-client's shape only when scraped. prom-client's own Counter and Histogram check and hash the label set on every
// call; here a request costs one Map lookup by a string key and a few additions (issue 12).
import type { Registry } from 'prom-client'

export const DURATION_BUCKETS: readonly number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

type Labels = Readonly<{ method: string, route: string, status: string }>

interface Series {
  labels: Labels
  requests: number
  /** Per bucket, not cumulative: bucketCounts[i] holds observations in (bounds[i-1], bounds[i]], the last one above all. */
  bucketCounts: number[]
  observations: number
  sum: number
}

interface MetricValue { labels: Record<string, string | number>, value: number, metricName?: string }

/** What prom-client's Registry asks of a metric: its name, help and type, and its values when scraped. */
interface CollectedMetric {
  name: string
  help: string
  type: 'counter' | 'histogram'
  aggregator: 'sum'
  get: () => { name: string, help: string, type: string, aggregator: 'sum', values: MetricValue[] }
  reset: () => void
}

export class RequestMetrics {
  private readonly series = new Map<string, Series>()

  constructor (registry: Registry, private readonly bounds: readonly number[] = DURATION_BUCKETS) {
    const metric = (name: string, help: string, type: CollectedMetric['type'], values: () => MetricValue[]): CollectedMetric => ({
      name,
      help,
      type,
      aggregator: 'sum',
      get: () => ({ name, help, type, aggregator: 'sum', values: values() }),
      reset: () => { this.series.clear() }
    })
    registry.registerMetric(metric('http_requests_total', 'HTTP requests answered by this API, by method, route template and status code', 'counter',
      () => [...this.series.values()].map((s) => ({ labels: s.labels, value: s.requests }))) as never)
    registry.registerMetric(metric('http_request_duration_seconds', 'Time to answer an HTTP request, by method, route template and status code (event streams excluded: they last as long as their client stays)', 'histogram',
      () => this.histogramValues()) as never)
  }

  /** `seconds` undefined: counted, but no latency (an event stream, whose length is the client's business). */
  observe (method: string, route: string, status: number, seconds: number | undefined): void {
    const key = `${method} ${status} ${route}`
    let series = this.series.get(key)
    if (series === undefined) {
      series = { labels: Object.freeze({ method, route, status: String(status) }), requests: 0, bucketCounts: new Array<number>(this.bounds.length + 1).fill(0), observations: 0, sum: 0 }
      this.series.set(key, series)
    }
    series.requests++
    if (seconds === undefined) return
    let bucket = 0
    while (bucket < this.bounds.length && seconds > (this.bounds[bucket] ?? Infinity)) bucket++
    series.bucketCounts[bucket] = (series.bucketCounts[bucket] ?? 0) + 1
    series.observations++
    series.sum += seconds
  }

  private histogramValues (): MetricValue[] {
    const values: MetricValue[] = []
    for (const s of this.series.values()) {
      if (s.observations === 0) continue
      let cumulative = 0
      this.bounds.forEach((le, i) => {
        cumulative += s.bucketCounts[i] ?? 0
        values.push({ labels: { le, ...s.labels }, value: cumulative, metricName: 'http_request_duration_seconds_bucket' })
      })
      values.push({ labels: { le: '+Inf', ...s.labels }, value: s.observations, metricName: 'http_request_duration_seconds_bucket' })
      values.push({ labels: s.labels, value: s.sum, metricName: 'http_request_duration_seconds_sum' })
      values.push({ labels: s.labels, value: s.observations, metricName: 'http_request_duration_seconds_count' })
    }
    return values
  }
}
