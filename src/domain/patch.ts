// What an operator may change through PATCH /heartbeat, and who owns everything else. Pure: the route validates the
// body's shape with its schema, then asks normalisePatch for the rules a schema cannot say (trimmed length, text
// PostgreSQL could not store as sent).
import { Type, type Static } from '@sinclair/typebox'
import { BREAKER_STATES, SCHEDULER_STATUSES, type BreakerState, type HeartbeatRow, type SchedulerStatus } from './heartbeat.js'

/** The only columns a PATCH may write (updated_at is set by the API itself). */
export const WRITABLE_FIELDS = ['status', 'paused_reason', 'circuit_breaker_state'] as const
export type WritableField = typeof WRITABLE_FIELDS[number]

/** Fields of the row that belong to the scheduler or the API, never to a PATCH body: why each one is refused. */
export const FIELD_OWNERS: Readonly<Record<string, string>> = Object.freeze({
  id: 'is the fixed key of the single heartbeat row',
  instance_id: 'is written by the scheduler',
  started_at: 'is written by the scheduler',
  last_poll_at: 'is written by the scheduler',
  next_poll_at: 'is written by the scheduler',
  poll_count: 'is written by the scheduler',
  dispatch_count: 'is written by the scheduler',
  error_count: 'is written by the scheduler',
  metadata: 'is written by the scheduler',
  updated_at: 'is set by the API on every accepted change'
})

/** Why a property that is not writable may not be sent, as the end of a sentence ("… it is written by the scheduler"). */
export function whyNotWritable (name: string): string {
  return Object.hasOwn(FIELD_OWNERS, name) ? FIELD_OWNERS[name] as string : 'is not a field of this request'
}

export const PAUSED_REASON_MAX_CHARS = 500

/** The writable fields of a PATCH body; HeartbeatPatchSchema (below) adds the rules for the body as a whole. */
const PatchFields = Type.Object({
  status: Type.Optional(Type.Unsafe<SchedulerStatus>({
    type: 'string',
    enum: [...SCHEDULER_STATUSES],
    description: 'running to resume; stopping to ask the scheduler to stop (with a paused_reason: a pause); stopped'
  })),
  paused_reason: Type.Optional(Type.Union([
    Type.String({ description: `1 to ${PAUSED_REASON_MAX_CHARS} characters after trimming; stored trimmed` }),
    Type.Null({ description: 'clears the reason (resume)' })
  ], { description: `Why the scheduler is paused: 1 to ${PAUSED_REASON_MAX_CHARS} characters after trimming leading and trailing white space (stored trimmed), or null` })),
  circuit_breaker_state: Type.Optional(Type.Unsafe<BreakerState>({
    type: 'string',
    enum: [...BREAKER_STATES],
    description: 'OPEN trips the breaker, CLOSED resets it, HALF_OPEN lets a trial through'
  }))
})

export type HeartbeatPatch = Static<typeof PatchFields>

/** The columns to write, exactly as they will be stored. */
export type HeartbeatChanges = Partial<Pick<HeartbeatRow, WritableField>>

export type NormalisedPatch =
  | { ok: true, changes: HeartbeatChanges }
  | { ok: false, field: WritableField | undefined, detail: string }

// A lone UTF-16 surrogate (valid in a JSON string escape, not in UTF-8) would be stored as U+FFFD, and U+0000 is
// refused by PostgreSQL's text type: either way the row would not hold what was sent.
const UNSTORABLE = /[\u0000\p{Cs}]/u // eslint-disable-line no-control-regex

/** Characters as people count them (code points), not UTF-16 units: an emoji is one. */
const charCount = (text: string): number => [...text].length

/**
 * The changes a schema-valid body asks for: paused_reason trimmed of leading and trailing white space and checked
 * to be 1 to 500 characters after trimming (null clears it). Every other writable field passes unchanged.
 */
export function normalisePatch (patch: HeartbeatPatch): NormalisedPatch {
  const changes: HeartbeatChanges = {}
  for (const field of WRITABLE_FIELDS) {
    if (patch[field] !== undefined) Object.assign(changes, { [field]: patch[field] })
  }
  if (Object.keys(changes).length === 0) {
    return { ok: false, field: undefined, detail: `body must set at least one of ${WRITABLE_FIELDS.join(', ')}.` }
  }
  const reason = patch.paused_reason
  if (typeof reason === 'string') {
    const trimmed = reason.trim()
    const length = charCount(trimmed)
    if (length === 0) {
      return { ok: false, field: 'paused_reason', detail: 'body paused_reason must not be empty or only white space: send a reason, or null to clear it.' }
    }
    if (length > PAUSED_REASON_MAX_CHARS) {
      return { ok: false, field: 'paused_reason', detail: `body paused_reason must be at most ${PAUSED_REASON_MAX_CHARS} characters after trimming (got ${length}).` }
    }
    if (UNSTORABLE.test(trimmed)) {
      return { ok: false, field: 'paused_reason', detail: 'body paused_reason must not contain U+0000 or unpaired surrogates (\\ud800-\\udfff escapes).' }
    }
    changes.paused_reason = trimmed
  }
  return { ok: true, changes }
}

/** Before and after of each field a change wrote, for the audit line. */
export type FieldChanges = Partial<Record<WritableField, { before: string | null, after: string | null }>>

export function describeChanges (before: HeartbeatRow, after: HeartbeatRow, changes: HeartbeatChanges): FieldChanges {
  const described: FieldChanges = {}
  for (const field of WRITABLE_FIELDS) {
    if (Object.hasOwn(changes, field)) described[field] = { before: before[field], after: after[field] }
  }
  return described
}

/** The bodies the contract names, shared by the OpenAPI examples, the CLI and the README. */
export const pauseBody = (reason: string): HeartbeatPatch => ({ status: 'stopping', paused_reason: reason })
export const RESUME_BODY: HeartbeatPatch = Object.freeze({ status: 'running', paused_reason: null })
export const breakerBody = (state: BreakerState): HeartbeatPatch => ({ circuit_breaker_state: state })

/** The PATCH body: at least one writable field, nothing else. */
export const HeartbeatPatchSchema = Type.Object(PatchFields.properties, {
  additionalProperties: false,
  minProperties: 1,
  description: 'At least one of the operator\'s fields; any other property is refused with a 400 that names it and its owner.',
  'x-examples': {
    pause: { summary: 'Pause the scheduler', value: pauseBody('deploy') },
    resume: { summary: 'Resume the scheduler', value: RESUME_BODY },
    breaker: { summary: 'Trip the circuit breaker', value: breakerBody('OPEN') }
  }
})
