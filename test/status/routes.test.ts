// The status page, its files and the badges, through inject against a real PostgreSQL server: status, headers and
// body for each kind of verdict, what the page may not show, escaping, HEAD, and LIVENESS_PUBLIC=false.
import { readFile } from 'node:fs/promises'
import type { LightMyRequestResponse } from 'fastify'
import t from 'tap'
import type { Liveness } from '../../src/domain/liveness.js'
import { BADGE_CACHE_CONTROL, STATUS_PAGE_CSP } from '../../src/routes/status.js'
import { bearer, deleteRow, rowText, startTestApp, writeRow, type RowShape } from '../helpers/app.js'

const { app, db } = await startTestApp(t)

const PROBLEM_JSON = /^application\/problem\+json(;|$)/
const get = async (url: string, method: 'GET' | 'HEAD' = 'GET', headers: Record<string, string> = {}): Promise<LightMyRequestResponse> =>
  await app.inject({ method, url, headers })
const liveness = async (): Promise<Liveness> => (await get('/heartbeat/liveness')).json<Liveness>()

/** Each kind of verdict a row gives, with what a person and a badge must see. */
const CASES: Array<{ name: string, row: RowShape | null, state: string, words: string, tone: string, colour: string, fill: string }> = [
  { name: 'alive', row: {}, state: 'alive', words: 'Alive', tone: 'good', colour: 'brightgreen', fill: '#4b0' },
  { name: 'late', row: { lastPollAgo: 70, nextPollIn: -10 }, state: 'late', words: 'Late', tone: 'warn', colour: 'yellow', fill: '#d8b800' },
  { name: 'stale', row: { lastPollAgo: 900, nextPollIn: -840 }, state: 'stale', words: 'Stale', tone: 'bad', colour: 'red', fill: '#dd4343' },
  { name: 'paused', row: { status: 'stopping', paused_reason: 'deploy' }, state: 'paused', words: 'Paused', tone: 'warn', colour: 'yellow', fill: '#d8b800' },
  { name: 'circuit open', row: { circuit_breaker_state: 'OPEN', paused_reason: 'circuit_breaker_open' }, state: 'circuit_open', words: 'Circuit open', tone: 'warn', colour: 'yellow', fill: '#d8b800' },
  { name: 'stopped', row: { status: 'stopped' }, state: 'stopped', words: 'Stopped', tone: 'bad', colour: 'red', fill: '#dd4343' },
  { name: 'missing', row: null, state: 'missing', words: 'Missing', tone: 'bad', colour: 'red', fill: '#dd4343' }
]

const setRow = async (row: RowShape | null): Promise<void> => { row === null ? await deleteRow(db.admin) : await writeRow(db.admin, row) }

t.test('the page, the badge and shields.json show the verdict of /heartbeat/liveness', async (t) => {
  for (const c of CASES) {
    await setRow(c.row)
    const verdict = await liveness()
    t.equal(verdict.state, c.state, `${c.name}: the row gives ${c.state}`)

    const page = await get('/status')
    t.equal(page.statusCode, 200, `${c.name}: the page is 200 whatever the verdict`)
    t.match(page.body, new RegExp(`<section id="verdict" class="verdict tone-${c.tone}" data-state="${c.state}"`), `${c.name}: tone ${c.tone}`)
    t.match(page.body, new RegExp(`<span id="state">${c.words}</span>`), `${c.name}: the verdict in words`)
    t.match(page.body, new RegExp(`<strong id="status">${verdict.status}</strong>`), `${c.name}: the health status in words`)
    if (verdict.output === undefined) t.match(page.body, '<p id="output" class="output" hidden></p>')
    else {
      // Read a moment apart, so the seconds may differ: compared with every number masked.
      const masked = (text: string): string => text.replace(/\d+(\.\d+)?/g, 'N')
      const shown = /<p id="output" class="output">([^<]*)<\/p>/.exec(page.body)?.[1] ?? ''
      t.equal(masked(shown), masked(verdict.output.replace(/'/g, '&#39;')), `${c.name}: liveness' own sentence`)
    }

    const shields = await get('/heartbeat/shields.json')
    t.equal(shields.statusCode, 200)
    t.same(shields.json(), { schemaVersion: 1, label: 'scheduler', message: c.words.toLowerCase(), color: c.colour }, `${c.name}: shields.json`)

    const badge = await get('/heartbeat/badge.svg')
    t.equal(badge.statusCode, 200, `${c.name}: the badge is 200 whatever the verdict (an image is always drawn)`)
    t.match(badge.body, new RegExp(`aria-label="scheduler: ${c.words.toLowerCase()}"`), `${c.name}: badge text`)
    t.match(badge.body, `fill="${c.fill}"`, `${c.name}: badge colour`)
  }
})

t.test('the page: headers, files from this origin only, the facts, no inline script or style', async (t) => {
  await writeRow(db.admin, {})
  const res = await get('/status')
  t.match(res.headers['content-type'], /^text\/html; charset=utf-8$/)
  t.equal(res.headers['content-security-policy'], STATUS_PAGE_CSP, 'the page\'s own policy')
  t.notMatch(STATUS_PAGE_CSP, /unsafe|\*|data:/, 'no unsafe-*, wildcard or data:')
  t.equal(res.headers['cache-control'], 'no-store')
  t.equal(res.headers['x-frame-options'], 'DENY')
  t.equal(res.headers['x-content-type-options'], 'nosniff')
  t.match(res.body, '<meta name="viewport" content="width=device-width, initial-scale=1">')
  t.notMatch(res.body, /<script(?![^>]*\ssrc=)[^>]*>/, 'every script is a file')
  t.notMatch(res.body, /<style|\sstyle=|\son[a-z]+=/i, 'no inline style and no event handler attributes')
  t.match(res.body, /<a href="docs">/)
  t.match(res.body, /<a href="metrics">/)
  t.match(res.body, /<dt>Grace<\/dt><dd id="grace">180 s after the expected poll, then stale<\/dd>/)
  t.match(res.body, /<time id="last-poll" datetime="[^"]+" data-relative>10 s ago<\/time>/, 'last poll as a relative time')
  t.match(res.body, /<time id="next-poll" datetime="[^"]+" data-relative>in (49|50) s<\/time>/, 'next poll as a relative time')
  t.match(res.body, /<dd id="since">Not recorded: the service keeps no history/, 'says what it cannot know')

  const head = await get('/status', 'HEAD')
  t.equal(head.statusCode, 200)
  t.equal(head.body, '')
  t.equal(head.headers['content-security-policy'], STATUS_PAGE_CSP)
  t.match(head.headers['content-type'], /^text\/html/)

  const root = await get('/')
  t.equal(root.statusCode, 302)
  t.equal(root.headers.location, 'status', 'relative, so a path prefix in front is kept')
  t.equal((await get('/', 'HEAD')).statusCode, 302)

  // The files the page links, each at its hashed URL, served with the content type that a browser needs.
  const links = [...res.body.matchAll(/(?:src|href)="(status\/[^"]+)"/g)].map((m) => m[1] as string)
  t.equal(links.length, 3, 'script, stylesheet and icon')
  for (const link of links) {
    const file = await get(`/${link}`)
    t.equal(file.statusCode, 200, link)
    t.match(link, /\?v=[\w-]{12}$/, 'a content hash in the URL')
    t.equal(file.headers['cache-control'], 'public, max-age=31536000, immutable')
    const name = link.replace(/^status\/|\?.*$/g, '')
    t.equal(file.body, await readFile(new URL(`../../public/status/${name}`, import.meta.url), 'utf8'), `${name} as on disk`)
    t.match(file.headers['content-type'], { js: /^text\/javascript/, css: /^text\/css/, svg: /^image\/svg\+xml/ }[name.split('.').pop() as string] ?? /none/)
  }
  t.equal((await get('/status/other.js')).statusCode, 404)
})

t.test('the page and the badges show nothing beyond public liveness: no reason, no metadata, no counters', async (t) => {
  await writeRow(db.admin, {
    status: 'stopping',
    paused_reason: 'secret-reason <script>alert(1)</script>',
    instance_id: 'scheduler-secret01',
    metadata: { build_provenance: { git_sha: 'secret-sha' } },
    poll_count: 424242,
    dispatch_count: 535353,
    error_count: 646464
  })
  for (const url of ['/status', '/heartbeat/badge.svg', '/heartbeat/shields.json']) {
    const body = (await get(url)).body
    for (const secret of ['secret', '424242', '535353', '646464', '<script>alert']) t.notOk(body.includes(secret), `${url} does not show ${secret}`)
  }
  t.match((await get('/status')).body, '<span id="state">Paused</span>')
})

t.test('badges: label, escaping, caching, HEAD, and bad labels refused with 400', async (t) => {
  await writeRow(db.admin, {})
  const before = await rowText(db.admin)
  const badge = await get('/heartbeat/badge.svg?label=build%20%3Cb%3E%26%22x')
  t.equal(badge.statusCode, 200)
  t.match(badge.headers['content-type'], /^image\/svg\+xml/)
  t.equal(badge.headers['cache-control'], BADGE_CACHE_CONTROL)
  t.match(BADGE_CACHE_CONTROL, /^public, max-age=\d{1,3}$/)
  t.equal(badge.headers.vary, undefined, 'public: the same for everyone, no Vary')
  t.equal(badge.headers['cross-origin-resource-policy'], 'cross-origin', 'another site may show it with <img>')
  t.match(badge.body, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/)
  t.match(badge.body, 'build &lt;b&gt;&amp;&quot;x: alive', 'the label, escaped')
  t.notOk(badge.body.includes('<b>'), 'no markup from the label')
  t.notMatch(badge.body, /<script|<style|<foreignObject|href=/i)

  const shields = await get('/heartbeat/shields.json?label=%3Cb%3E')
  t.same(shields.json(), { schemaVersion: 1, label: '<b>', message: 'alive', color: 'brightgreen' }, 'JSON carries the label as text')
  t.equal(shields.headers['cache-control'], BADGE_CACHE_CONTROL)
  t.match(shields.headers['content-type'], /^application\/json/)

  for (const url of ['/heartbeat/badge.svg', '/heartbeat/shields.json']) {
    const head = await get(url, 'HEAD')
    t.equal(head.statusCode, 200, `HEAD ${url}`)
    t.equal(head.body, '')
    t.equal(head.headers['cache-control'], BADGE_CACHE_CONTROL)
    for (const [label, why] of [['x'.repeat(41), 'too long'], ['', 'empty'], ['%20%20', 'blank'], ['a%07b', 'a control character'], ['a%0Ab', 'a line break']] as const) {
      const res = await get(`${url}?label=${label}`)
      t.equal(res.statusCode, 400, `${url}: a label that is ${why} is 400`)
      t.match(res.headers['content-type'], PROBLEM_JSON)
      t.match(res.json(), { status: 400, code: 'invalid_request', detail: /^querystring label / }, 'the problem names the parameter')
    }
    t.equal((await get(`${url}?label=${'y'.repeat(40)}`)).statusCode, 200, '40 characters are fine')
  }
  t.equal(await rowText(db.admin), before, 'the row is untouched')
  t.equal((await get('/livez')).statusCode, 200, 'still serving')
})

t.test('with LIVENESS_PUBLIC=false the page and the badges need a token, as liveness does', async (t) => {
  const { app: closed } = await startTestApp(t, { db, env: { LIVENESS_PUBLIC: 'false' } })
  await writeRow(db.admin, {})
  const reader = await bearer('authenticated')
  for (const url of ['/status', '/heartbeat/badge.svg', '/heartbeat/shields.json']) {
    const refused = await closed.inject({ url })
    t.equal(refused.statusCode, 401, `${url} without a token`)
    t.match(refused.headers['content-type'], PROBLEM_JSON)
    t.match(refused.headers['www-authenticate'], /^Bearer/)
    const served = await closed.inject({ url, headers: reader })
    t.equal(served.statusCode, 200, `${url} with a reader's token`)
    // A shared cache (a CDN, a corporate proxy) must not hand what one token holder got to anyone else.
    t.match(served.headers['cache-control'], url === '/status' ? /^no-store$/ : /^private, max-age=\d+$/, `${url}: never stored for others (${String(served.headers['cache-control'])})`)
    t.notMatch(served.headers['cache-control'], /public/)
    t.match(served.headers.vary, /\bAuthorization\b/, `${url}: Vary: Authorization`)
    t.match(served.headers.vary, /\bapikey\b/, `${url}: Vary: apikey (it authenticates too)`)
  }
  t.equal((await closed.inject({ url: '/' })).statusCode, 302, 'the redirect itself shows nothing')
})
