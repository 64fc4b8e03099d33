// What the ops CLI prints, as pure functions of the API's answers: the Nagios line and exit code for `check`,
// and the human-readable status.
import type { Liveness } from '../domain/liveness.js'
import type { HeartbeatJson } from '../domain/heartbeat.js'

/** Nagios plugin exit codes. */
export const NAGIOS = { OK: 0, WARNING: 1, CRITICAL: 2, UNKNOWN: 3 } as const
export type NagiosLabel = keyof typeof NAGIOS

export interface CheckResult {
  code: typeof NAGIOS[NagiosLabel]
  label: NagiosLabel
  /** The one line a monitoring agent shows: "HEARTBEAT OK - alive, last poll 4.2 s ago | perfdata". */
  line: string
}

/** GET and PATCH /heartbeat's body (HeartbeatResponse in the OpenAPI document, which the CLI may not import). */
export interface HeartbeatAnswer { heartbeat: HeartbeatJson, liveness: Liveness }

const STATUSES = new Set(['pass', 'warn', 'fail'])

export function isLiveness (value: unknown): value is Liveness {
  if (typeof value !== 'object' || value === null) return false
  const { status, state } = value as { status?: unknown, state?: unknown }
  return typeof status === 'string' && STATUSES.has(status) && typeof state === 'string'
}

export function isHeartbeatAnswer (value: unknown): value is HeartbeatAnswer {
  if (typeof value !== 'object' || value === null) return false
  const { heartbeat, liveness } = value as { heartbeat?: unknown, liveness?: unknown }
  return typeof heartbeat === 'object' && heartbeat !== null && isLiveness(liveness)
}

/** Seconds as people read them: "4.2 s", "180 s", "1 h 3 min". */
export function seconds (value: number): string {
  const abs = Math.abs(value)
  if (abs < 120) return `${Number(value.toFixed(abs < 10 ? 1 : 0))} s`
  if (abs < 7200) return `${Math.round(value / 60)} min`
  if (abs < 172_800) return `${Math.floor(value / 3600)} h ${Math.round((abs % 3600) / 60)} min`
  return `${Math.round(value / 86_400)} d`
}

/** One line of what matters most: how long since the last poll (or why there is no such number). */
function pollSummary (liveness: Liveness): string {
  const since = liveness.seconds_since_last_poll
  if (since === null) return 'no poll recorded'
  return since < 0 ? `last poll ${seconds(-since)} in the future (clock skew)` : `last poll ${seconds(since)} ago`
}

/** Nagios performance data: label=value[UOM], U when the value is unknown. */
function perfdata (liveness: Liveness): string {
  const metric = (label: string, value: number | null): string => `${label}=${value === null ? 'U' : `${value}s`}`
  return [
    metric('seconds_since_last_poll', liveness.seconds_since_last_poll),
    metric('seconds_overdue', liveness.seconds_overdue),
    metric('grace_seconds', liveness.grace_seconds)
  ].join(' ')
}

/**
 * pass → OK, warn → WARNING, fail → CRITICAL; the verdict `unknown` (the API could not read its database) is
 * UNKNOWN: the check could not learn the scheduler's state, which is what UNKNOWN means to Nagios.
 */
export function checkResult (liveness: Liveness): CheckResult {
  const label: NagiosLabel = liveness.state === 'unknown'
    ? 'UNKNOWN'
    : liveness.status === 'pass' ? 'OK' : liveness.status === 'warn' ? 'WARNING' : 'CRITICAL'
  const why = liveness.output === undefined ? pollSummary(liveness) : `${liveness.output.replace(/\.$/, '')}; ${pollSummary(liveness)}`
  return { code: NAGIOS[label], label, line: `HEARTBEAT ${label} - ${liveness.state}, ${why} | ${perfdata(liveness)}` }
}

/** The check could not be made (API unreachable, refused, not the API): UNKNOWN with the reason. */
export function unknownResult (reason: string): CheckResult {
  return { code: NAGIOS.UNKNOWN, label: 'UNKNOWN', line: `HEARTBEAT UNKNOWN - ${reason.replace(/[\r\n|]+/g, ' ')}` }
}

const dash = (value: string | number | null | undefined): string => value === null || value === undefined ? '—' : String(value)

/** When a timestamp is, relative to the verdict's clock (the database's): "(4.2 s ago)", "(in 55 s)". */
function relative (iso: string | null, checkedAt: string): string {
  if (iso === null) return ''
  const delta = (Date.parse(iso) - Date.parse(checkedAt)) / 1000
  if (!Number.isFinite(delta)) return ''
  return delta <= 0 ? ` (${seconds(-delta)} ago)` : ` (in ${seconds(delta)})`
}

/** The verdict and the row, for a person at a terminal. */
export function formatStatus (answer: HeartbeatAnswer, etag: string | null): string {
  const { heartbeat: row, liveness } = answer
  const lines = [
    `scheduler ${liveness.state} (${liveness.status})${liveness.output !== undefined ? `: ${liveness.output}` : ''}`,
    '',
    `  status                 ${dash(row.status)}`,
    `  paused_reason          ${row.paused_reason === null ? '—' : JSON.stringify(row.paused_reason)}`,
    `  circuit_breaker_state  ${dash(row.circuit_breaker_state)}`,
    `  last_poll_at           ${dash(row.last_poll_at)}${relative(row.last_poll_at, liveness.checked_at)}`,
    `  next_poll_at           ${dash(row.next_poll_at)}${relative(row.next_poll_at, liveness.checked_at)}`,
    `  grace                  ${liveness.grace_seconds === null ? '—' : seconds(liveness.grace_seconds)}`,
    `  instance_id            ${dash(row.instance_id)}`,
    `  started_at             ${dash(row.started_at)}`,
    `  polls / dispatches / errors  ${dash(row.poll_count)} / ${dash(row.dispatch_count)} / ${dash(row.error_count)}`,
    `  updated_at             ${dash(row.updated_at)}${relative(row.updated_at, liveness.checked_at)}`,
    `  checked_at             ${liveness.checked_at} (database clock)`
  ]
  if (etag !== null) lines.push(`  etag                   ${etag}`)
  return lines.join('\n') + '\n'
}

/** After a change: what the row now says and what the verdict became. */
export function formatChange (what: string, answer: HeartbeatAnswer): string {
  const { heartbeat: row, liveness } = answer
  const reason = row.paused_reason === null ? 'no paused_reason' : `paused_reason ${JSON.stringify(row.paused_reason)}`
  return `${what}: status ${row.status}, ${reason}, circuit_breaker_state ${dash(row.circuit_breaker_state)}; verdict ${liveness.state} (${liveness.status})\n`
}
