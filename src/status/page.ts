// The status page for people, rendered on the server from the public liveness body alone: whatever the page shows,
// GET /heartbeat/liveness shows too. The browser script (public/status/status.js) keeps it current from that route.
import { relativeTime, STATE_WORDS, toneOf, type Tone } from '../domain/verdict-display.js'
import type { Liveness } from '../domain/liveness.js'

export interface PageAssets {
  /** Paths relative to the page (so the page works under a path prefix), each with its content hash. */
  script: string
  stylesheet: string
  icon: string
}

export interface PageOptions {
  assets: PageAssets
  /** How often the script asks /heartbeat/liveness again. */
  refreshSeconds: number
  /** The row is demo data (the embedded database): said in the title and above the verdict. */
  demoData?: boolean
}

const ESCAPES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }

/** For text and for quoted attribute values alike. */
export const escapeHtml = (text: string): string => text.replace(/[&<>"']/g, (c) => ESCAPES[c] ?? c)

/** Shown beside the word, so that the verdict never rests on colour alone. */
export const TONE_SYMBOLS: Readonly<Record<Tone, string>> = { good: '✓', warn: '!', bad: '✕', unknown: '?' }

const capitalised = (text: string): string => text.charAt(0).toUpperCase() + text.slice(1)

const utc = (iso: string): string => iso.replace('T', ' ').replace(/\.\d+Z$|Z$/, ' UTC')

/** A <time> the script keeps counting, with the moment in UTC beside it for whoever needs the exact time. */
function moment (id: string, iso: string | null, secondsFromCheck: number | null, none: string): string {
  if (iso === null || secondsFromCheck === null) return `<span id="${id}" class="none">${escapeHtml(none)}</span>`
  return `<time id="${id}" datetime="${escapeHtml(iso)}" data-relative>${escapeHtml(relativeTime(secondsFromCheck))}</time>` +
    ` <span class="exact">${escapeHtml(utc(iso))}</span>`
}

const secondsBetween = (from: string, to: string): number => (Date.parse(to) - Date.parse(from)) / 1000

const DEMO_NOTICE = '<p id="demo" class="demo" role="note"><strong>Demo data.</strong> This verdict is about the embedded ' +
  'database\'s row, written by the demo scheduler or by hand, not by a real scheduler. Set DATABASE_URL to monitor one.</p>\n'

export function renderStatusPage (liveness: Liveness, { assets, refreshSeconds, demoData = false }: PageOptions): string {
  const tone = toneOf(liveness)
  const words = STATE_WORDS[liveness.state]
  const nextIn = liveness.next_poll_at === null ? null : secondsBetween(liveness.checked_at, liveness.next_poll_at)
  const since = liveness.seconds_since_last_poll === null ? null : -liveness.seconds_since_last_poll
  const grace = liveness.grace_seconds === null ? 'not applicable (no row to judge)' : `${liveness.grace_seconds} s after the expected poll, then stale`
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${demoData ? 'Demo: ' : ''}Scheduler ${escapeHtml(words)} · eva-heartbeat-api</title>
<link rel="icon" type="image/svg+xml" href="${escapeHtml(assets.icon)}">
<link rel="stylesheet" href="${escapeHtml(assets.stylesheet)}">
<script src="${escapeHtml(assets.script)}" defer></script>
</head>
<body>
<main data-refresh-seconds="${refreshSeconds}" data-words="${escapeHtml(JSON.stringify(STATE_WORDS))}" data-symbols="${escapeHtml(JSON.stringify(TONE_SYMBOLS))}">
<h1>EVA scheduler${demoData ? ' (demo data)' : ''}</h1>
${demoData ? DEMO_NOTICE : ''}<section id="verdict" class="verdict tone-${tone}" data-state="${escapeHtml(liveness.state)}" aria-live="polite">
<p class="headline"><span id="symbol" class="symbol" aria-hidden="true">${TONE_SYMBOLS[tone]}</span> <span id="state">${escapeHtml(capitalised(words))}</span></p>
<p class="health">Health check: <strong id="status">${escapeHtml(liveness.status)}</strong></p>
<p id="output" class="output"${liveness.output === undefined ? ' hidden' : ''}>${escapeHtml(liveness.output ?? '')}</p>
</section>
<dl class="facts">
<dt>Since</dt><dd id="since">Not recorded: the service keeps no history, only the latest write. The last poll says how long the scheduler has been silent.</dd>
<dt>Last poll</dt><dd>${moment('last-poll', liveness.last_poll_at, since, 'none recorded')}</dd>
<dt>Next poll expected</dt><dd>${moment('next-poll', liveness.next_poll_at, nextIn, 'not announced')}</dd>
<dt>Grace</dt><dd id="grace">${escapeHtml(grace)}</dd>
<dt>Checked</dt><dd>${moment('checked', liveness.checked_at, 0, '')} <span class="clock">(database clock)</span></dd>
</dl>
<p id="refresh" class="refresh">This page shows the verdict when it was loaded: reload to check again.</p>
<nav><a href="docs">API documentation</a> <a href="metrics">Prometheus metrics</a> <a href="heartbeat/liveness">Liveness JSON</a> <a href="heartbeat/badge.svg">Badge</a></nav>
</main>
</body>
</html>
`
}
