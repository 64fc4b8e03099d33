// The pure parts of the status page and badges: words, tones, durations, and escaping of whatever text reaches HTML.
import t from 'tap'
import type { Liveness } from '../../src/domain/liveness.js'
import { BADGE_COLOURS, relativeTime, spokenDuration, STATE_WORDS, toneOf } from '../../src/domain/verdict-display.js'
import { badgeSvg, shieldsEndpoint } from '../../src/status/badge.js'
import { escapeHtml, renderStatusPage } from '../../src/status/page.js'

const ASSETS = { script: 'status/status.js?v=a', stylesheet: 'status/status.css?v=b', icon: 'status/favicon.svg?v=c' }

const unknown: Liveness = {
  status: 'fail', state: 'unknown', checked_at: '2026-12-02T06:00:00.000Z', last_poll_at: null, next_poll_at: null,
  seconds_since_last_poll: null, seconds_overdue: null, grace_seconds: null, output: 'The database could not be reached.'
}

t.test('tones follow the verdict\'s status, and unknown is its own', async (t) => {
  t.equal(toneOf({ state: 'alive', status: 'pass' }), 'good')
  t.equal(toneOf({ state: 'late', status: 'warn' }), 'warn')
  t.equal(toneOf({ state: 'stale', status: 'fail' }), 'bad')
  t.equal(toneOf({ state: 'unknown', status: 'fail' }), 'unknown')
  t.same(shieldsEndpoint('scheduler', unknown), { schemaVersion: 1, label: 'scheduler', message: 'unknown', color: BADGE_COLOURS.unknown })
  t.equal(STATE_WORDS.circuit_open, 'circuit open')
})

t.test('durations read as a person says them', async (t) => {
  t.equal(spokenDuration(0), '0 s')
  t.equal(spokenDuration(59.9), '59 s')
  t.equal(spokenDuration(-185), '3 min 5 s')
  t.equal(spokenDuration(7440), '2 h 4 min')
  t.equal(spokenDuration(266400), '3 d 2 h')
  t.equal(relativeTime(-12.3), '12 s ago')
  t.equal(relativeTime(0), '0 s ago')
  t.equal(relativeTime(48), 'in 48 s')
})

t.test('every text that reaches the page is escaped', async (t) => {
  t.equal(escapeHtml('<a href="x" onclick=\'y\'>&amp;</a>'), '&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;amp;&lt;/a&gt;')
  const hostile: Liveness = { ...unknown, output: '<img src=x onerror=alert(1)> & "quoted"' }
  const page = renderStatusPage(hostile, { assets: { ...ASSETS, script: 'x.js?"><script>alert(1)</script>' }, refreshSeconds: 5 })
  t.notOk(page.includes('<img'), 'no markup from the output')
  t.notOk(page.includes('<script>alert'), 'no markup from an attribute')
  t.match(page, '&lt;img src=x onerror=alert(1)&gt; &amp; &quot;quoted&quot;')
  t.match(page, '<span id="state">Unknown</span>')
  t.match(page, 'class="verdict tone-unknown"')
  t.match(page, '<span id="last-poll" class="none">none recorded</span>')
  t.match(page, '<dd id="grace">not applicable (no row to judge)</dd>')
  t.match(page, /data-words="\{&quot;unknown&quot;:&quot;unknown&quot;/, 'the words the script uses, as an escaped attribute')
})

t.test('the badge escapes its label', async (t) => {
  const svg = await badgeSvg('</text><script>x</script>', unknown)
  t.notOk(svg.includes('<script>'))
  t.match(svg, '&lt;/text&gt;&lt;script&gt;x&lt;/script&gt;: unknown')
})

t.test('demo data: the page, the badge and the shields.io message say so; without it, nothing does', async (t) => {
  const demo = renderStatusPage(unknown, { assets: ASSETS, refreshSeconds: 5, demoData: true })
  t.match(demo, '<title>Demo: Scheduler unknown · eva-heartbeat-api</title>')
  t.match(demo, '<h1>EVA scheduler (demo data)</h1>\n<p id="demo" class="demo" role="note"><strong>Demo data.</strong>')
  t.notMatch(renderStatusPage(unknown, { assets: ASSETS, refreshSeconds: 5 }), /demo/i)
  t.equal(shieldsEndpoint('scheduler', unknown, true).message, 'unknown (demo)')
  t.match(await badgeSvg('scheduler', unknown, true), 'aria-label="scheduler: unknown (demo)"')
  t.equal(shieldsEndpoint('scheduler', unknown).message, 'unknown')
})
