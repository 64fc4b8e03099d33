// The verdict as a badge: a shields-style SVG (drawn by badge-maker, the shields.io project's own renderer, which
// escapes its text) and the JSON of shields.io's endpoint badge, so that shields.io can draw it too.
import type { Static } from '@sinclair/typebox'
import type { Liveness } from '../domain/liveness.js'
import { BADGE_COLOURS, STATE_WORDS, toneOf } from '../domain/verdict-display.js'
import type { ShieldsEndpointSchema } from '../http/schemas.js'

export const DEFAULT_BADGE_LABEL = 'scheduler'

/** https://shields.io/badges/endpoint-badge */
export type ShieldsEndpoint = Static<typeof ShieldsEndpointSchema>

/** The message is the server's own (the label is the caller's): that is where demo data is named. */
export function shieldsEndpoint (label: string, liveness: Liveness, demoData = false): ShieldsEndpoint {
  const words = STATE_WORDS[liveness.state]
  return { schemaVersion: 1, label, message: demoData ? `${words} (demo)` : words, color: BADGE_COLOURS[toneOf(liveness)] }
}

/** badge-maker with its font-width tables (~11 MB resident), loaded by the first badge asked for, not at start. */
let badgeMaker: Promise<typeof import('badge-maker')> | undefined

export async function badgeSvg (label: string, liveness: Liveness, demoData = false): Promise<string> {
  const { message, color } = shieldsEndpoint(label, liveness, demoData)
  const { makeBadge } = await (badgeMaker ??= import('badge-maker'))
  return makeBadge({ label, message, color, style: 'flat' })
}
