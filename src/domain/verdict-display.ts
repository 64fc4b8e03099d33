// How a verdict is shown to a person or on a badge: its words, and a tone that picks the colour. Derived from the
// verdict that deriveLiveness gave (its state and status), never from the row: nothing here decides a verdict.
import type { Liveness, LivenessState } from './liveness.js'

/** good: pass; warn: warn; bad: fail; unknown: the database could not be read, so nothing is known of the scheduler. */
export type Tone = 'good' | 'warn' | 'bad' | 'unknown'

/** The state as words ("circuit open", not "circuit_open"). */
export const STATE_WORDS: Readonly<Record<LivenessState, string>> = {
  unknown: 'unknown',
  missing: 'missing',
  paused: 'paused',
  stopped: 'stopped',
  stale: 'stale',
  stopping: 'stopping',
  circuit_open: 'circuit open',
  degraded: 'degraded',
  starting: 'starting',
  late: 'late',
  alive: 'alive'
}

export function toneOf (liveness: Pick<Liveness, 'state' | 'status'>): Tone {
  if (liveness.state === 'unknown') return 'unknown'
  return liveness.status === 'pass' ? 'good' : liveness.status === 'warn' ? 'warn' : 'bad'
}

/** Badge colours as shields.io names them (its endpoint schema takes the names; the SVG takes the same). */
export const BADGE_COLOURS: Readonly<Record<Tone, string>> = {
  good: 'brightgreen',
  warn: 'yellow',
  bad: 'red',
  unknown: 'lightgrey'
}

/** A duration for people: "42 s", "3 min 5 s", "2 h 4 min", "3 d 2 h" (the browser script formats it the same way). */
export function spokenDuration (seconds: number): string {
  const s = Math.floor(Math.abs(seconds))
  if (s < 60) return `${s} s`
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`
}

/** "12 s ago" for a moment in the past, "in 48 s" for one ahead. */
export const relativeTime = (secondsFromNow: number): string =>
  secondsFromNow <= 0 ? `${spokenDuration(secondsFromNow)} ago` : `in ${spokenDuration(secondsFromNow)}`
