// The status page in a real browser (Debian's Chromium, driven by playwright-core) against a started server and a
// real PostgreSQL: the verdict read from the visible text, the row made stale in the database and the page showing it
// without a reload, relative times that count, no JavaScript, a phone's screen, and no CSP violation or console
// error throughout. Screenshots of each state go to test-artifacts/status/ (not committed).
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { chromium, type BrowserContext, type Page } from 'playwright-core'
import t from 'tap'
import { STATUS_REFRESH_SECONDS } from '../../src/routes/status.js'
import { startTestApp, writeRow } from '../helpers/app.js'
import { ROOT } from '../helpers/server-process.js'
import { executable, needs } from '../helpers/tools.js'

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const ARTIFACTS = path.join(ROOT, 'test-artifacts', 'status')
/** The page asks again every STATUS_REFRESH_SECONDS; a shared, busy machine gets a generous margin on top. */
const WITHIN_REFRESH_MS = STATUS_REFRESH_SECONDS * 1000 + 15_000

interface Watch {
  /** Console errors and warnings, page errors, failed requests, answers of 400 and above, CSP violations. */
  problems: string[]
  unexplained503s: () => number
}

/** Everything a page may report that would mean it is broken or refused something. */
function watch (page: Page): Watch {
  const problems: string[] = []
  let expected503s = 0
  const loggedFailures: string[] = []
  page.on('console', (message) => {
    if (message.type() !== 'error' && message.type() !== 'warning') return
    if (message.text() === 'Failed to load resource: the server responded with a status of 503 (Service Unavailable)') loggedFailures.push(message.text())
    else problems.push(`console ${message.type()}: ${message.text()}`)
  })
  page.on('pageerror', (error) => { problems.push(`page error: ${error.message}`) })
  page.on('requestfailed', (request) => { problems.push(`request failed: ${request.url()} ${request.failure()?.errorText ?? ''}`) })
  page.on('response', (response) => {
    if (response.status() < 400) return
    // A failing verdict is liveness' 503 (health+json, the page shows it): expected, and Chromium logs every 5xx
    // fetch as "Failed to load resource", so that one line is expected with it. Anything else is a problem.
    if (response.status() === 503 && new URL(response.url()).pathname === '/heartbeat/liveness') expected503s++
    else problems.push(`HTTP ${response.status()}: ${response.url()}`)
  })
  return {
    problems,
    // Each logged 503 must be one of liveness' own.
    unexplained503s: () => Math.max(0, loggedFailures.length - expected503s)
  }
}

async function violations (page: Page): Promise<string[]> {
  return await page.evaluate(() => (window as unknown as { cspViolations?: string[] }).cspViolations ?? [])
}

const visibleVerdict = async (page: Page): Promise<string> => (await page.locator('#verdict .headline').innerText()).replace(/^\W+/, '').trim()

t.test('the status page in Chromium', needs(executable(CHROMIUM) ? CHROMIUM : undefined, 'Chromium', 'chromium'), async (t) => {
  const { app, db } = await startTestApp(t)
  await writeRow(db.admin, {})
  const base = await app.listen({ host: '127.0.0.1', port: 0 })
  await mkdir(ARTIFACTS, { recursive: true })

  const profile = await mkdtemp(path.join(tmpdir(), 'eva-chromium-'))
  t.teardown(async () => { await rm(profile, { recursive: true, force: true }) })
  const launch = async (options: { javaScriptEnabled?: boolean, viewport?: { width: number, height: number } } = {}): Promise<BrowserContext> => {
    const context = await chromium.launchPersistentContext(await mkdtemp(path.join(profile, 'p-')), {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync'],
      javaScriptEnabled: options.javaScriptEnabled ?? true,
      viewport: options.viewport ?? { width: 900, height: 640 },
      deviceScaleFactor: 1
    })
    t.teardown(async () => { await context.close() })
    // Injected by the browser itself, outside the page's CSP: collects every violation the page meets.
    await context.addInitScript(() => {
      const list: string[] = []
      ;(window as unknown as { cspViolations: string[] }).cspViolations = list
      document.addEventListener('securitypolicyviolation', (event) => { list.push(`${event.violatedDirective} ${event.blockedURI}`) })
    })
    return context
  }

  const context = await launch()
  const page = context.pages()[0] ?? await context.newPage()
  const seen = watch(page)
  let navigations = 0
  page.on('framenavigated', (frame) => { if (frame === page.mainFrame()) navigations++ })

  const response = await page.goto(`${base}/`)
  t.equal(response?.status(), 200, '/ lands on the page')
  t.equal(page.url(), `${base}/status`, 'by way of the redirect')
  t.equal(await visibleVerdict(page), 'Alive', 'the verdict as a person reads it')
  t.match(await page.locator('#verdict').innerText(), /Health check: pass/)
  t.match(await page.title(), /^Scheduler alive/)
  await page.locator('#refresh', { hasText: `Updates itself every ${STATUS_REFRESH_SECONDS} s.` }).waitFor({ timeout: 10_000 })
  t.pass('the script ran under the page\'s CSP')
  const style = await page.locator('#verdict').evaluate((element) => getComputedStyle(element).backgroundColor)
  t.equal(style, 'rgb(227, 246, 232)', 'the stylesheet applied (the green of pass)')
  await page.screenshot({ path: path.join(ARTIFACTS, 'alive.png'), fullPage: true })

  // The relative times count on their own, between two checks.
  const lastPoll = page.locator('#last-poll')
  const firstAge = await lastPoll.innerText()
  t.match(firstAge, /^\d+ s ago$/)
  await page.waitForFunction((before) => document.getElementById('last-poll')?.textContent !== before, firstAge, { timeout: 10_000 })
  t.match(await lastPoll.innerText(), /^\d+ s ago$/, 'the last poll\'s age moved on')
  t.match(await page.locator('#next-poll').innerText(), /^(in \d+ s|\d+ s ago)$/)

  // The scheduler misses its polls: late, then stale, each shown without a reload.
  await writeRow(db.admin, { lastPollAgo: 70, nextPollIn: -10 })
  await page.locator('#state', { hasText: 'Late' }).waitFor({ timeout: WITHIN_REFRESH_MS })
  t.equal(await visibleVerdict(page), 'Late')
  t.match(await page.locator('#output').innerText(), /^The poll due at .* s late, still within the grace of 180 s\.$/)
  t.match(await page.locator('#since').innerText(), /^Changed from alive to late \d+ s ago \(seen by this page at .* UTC\)\.$/)
  await page.screenshot({ path: path.join(ARTIFACTS, 'late.png'), fullPage: true })

  await writeRow(db.admin, { lastPollAgo: 900, nextPollIn: -840 })
  await page.locator('#state', { hasText: 'Stale' }).waitFor({ timeout: WITHIN_REFRESH_MS })
  t.equal(await visibleVerdict(page), 'Stale', 'stale, read from the page')
  t.match(await page.locator('#verdict').innerText(), /Health check: fail/)
  t.match(await page.locator('#last-poll').innerText(), /^15 min \d+ s ago$/)
  t.equal(await page.locator('#verdict').evaluate((element) => getComputedStyle(element).backgroundColor), 'rgb(253, 226, 228)', 'the red of fail')
  t.match(await page.title(), /^Scheduler stale/)
  await page.screenshot({ path: path.join(ARTIFACTS, 'stale.png'), fullPage: true })
  t.equal(navigations, 1, 'no reload: the first load (with its redirect) only')

  // Back to health, shown again.
  await writeRow(db.admin, {})
  await page.locator('#state', { hasText: 'Alive' }).waitFor({ timeout: WITHIN_REFRESH_MS })
  t.same(await violations(page), [], 'no CSP violation')
  t.same(seen.problems, [], 'no console error, page error or failed request')
  t.equal(seen.unexplained503s(), 0, 'every logged 503 was liveness answering stale')

  // A phone: the page fits its width, nothing to scroll sideways.
  const phone = await launch({ viewport: { width: 360, height: 740 } })
  const small = await phone.newPage()
  const smallSeen = watch(small)
  await small.goto(`${base}/status`)
  t.equal(await visibleVerdict(small), 'Alive')
  t.ok(await small.evaluate(() => document.documentElement.scrollWidth <= document.documentElement.clientWidth), 'no sideways scrolling at 360 px')
  await small.screenshot({ path: path.join(ARTIFACTS, 'phone.png'), fullPage: true })
  t.same(await violations(small), [])
  t.same(smallSeen.problems, [])
  t.equal(smallSeen.unexplained503s(), 0)

  // Without JavaScript the server's page is the whole page, and it says how to see a newer verdict.
  const still = await launch({ javaScriptEnabled: false })
  const plain = await still.newPage()
  const plainSeen = watch(plain)
  await writeRow(db.admin, { status: 'stopping', paused_reason: 'deploy' })
  await plain.goto(`${base}/status`)
  t.equal(await visibleVerdict(plain), 'Paused')
  t.equal(await plain.locator('#verdict').evaluate((element) => getComputedStyle(element).backgroundColor), 'rgb(255, 241, 204)', 'styled: the amber of warn')
  t.match(await plain.locator('#refresh').innerText(), /reload to check again/)
  t.match(await plain.locator('#last-poll').innerText(), /^\d+ s ago$/)
  await plain.screenshot({ path: path.join(ARTIFACTS, 'paused-no-javascript.png'), fullPage: true })
  t.same(plainSeen.problems, [])
})
