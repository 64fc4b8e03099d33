// The verdict as a badge: a shields-style SVG (drawn by badge-maker, the shields.io project's own renderer, which
// escapes its text) and the JSON of shields.io's endpoint badge, so that shields.io can draw it too.
import { makeBadge } from 'badge-maker'
import type { Liveness } from '../domain/liveness.js'
import { BADGE_COLOURS, STATE_WORDS, toneOf } from '../domain/verdict-display.js'

export const DEFAULT_BADGE_LABEL = 'scheduler'

/** https://shields.io/badges/endpoint-badge */
export interface ShieldsEndpoint {
  schemaVersion: 1
  label: string
  message: string
  color: string
}

export function shieldsEndpoint (label: string, liveness: Liveness): ShieldsEndpoint {
  return { schemaVersion: 1, label, message: STATE_WORDS[liveness.state], color: BADGE_COLOURS[toneOf(liveness)] }
}

export function badgeSvg (label: string, liveness: Liveness): string {
  const { message, color } = shieldsEndpoint(label, liveness)
  return makeBadge({ label, message, color, style: 'flat' })
}
