// Demo data is never shown as real: an app whose row is demo data (the embedded database; src/server.ts decides)
// says so in every answer made from the row, and an app on a real database says nothing of the kind. Both apps read
// the same row of one real PostgreSQL server, so the only difference is the flag.
import t from 'tap'
import { bearer, startTestApp, writeRow } from '../helpers/app.js'
import { startTestDatabase } from '../helpers/database.js'
import { connectSse, dataOf, isHeartbeat } from '../helpers/sse.js'

const db = await startTestDatabase()
t.teardown(db.close)
await writeRow(db.admin)
const demo = await startTestApp(t, { db, demoData: true })
const real = await startTestApp(t, { db })

t.test('the liveness body has "demo": true only from demo data, for 200 and 503 alike', async (t) => {
  for (const [row, status] of [[{}, 200], [{ status: 'stopped' }, 503]] as const) {
    await writeRow(db.admin, row)
    const fromDemo = await demo.app.inject({ url: '/heartbeat/liveness' })
    t.equal(fromDemo.statusCode, status)
    t.equal(fromDemo.json<Record<string, unknown>>().demo, true, `${status}: demo`)
    const fromReal = await real.app.inject({ url: '/heartbeat/liveness' })
    t.equal(fromReal.statusCode, status)
    t.notOk('demo' in fromReal.json<Record<string, unknown>>(), `${status}: no demo property at all`)
  }
  await writeRow(db.admin)
})

t.test('GET /heartbeat and PATCH /heartbeat: the verdict says demo', async (t) => {
  const read = async (app: typeof demo.app): Promise<Record<string, unknown>> =>
    (await app.inject({ url: '/heartbeat', headers: await bearer('authenticated') })).json<{ liveness: Record<string, unknown> }>().liveness
  t.equal((await read(demo.app)).demo, true)
  t.notOk('demo' in await read(real.app))

  const patch = async (app: typeof demo.app): Promise<Record<string, unknown>> => {
    const res = await app.inject({ method: 'PATCH', url: '/heartbeat', headers: await bearer('service_role'), payload: { status: 'running', paused_reason: null } })
    t.equal(res.statusCode, 200)
    return res.json<{ liveness: Record<string, unknown> }>().liveness
  }
  t.equal((await patch(demo.app)).demo, true, 'the PATCH answer')
  t.notOk('demo' in await patch(real.app))
})

t.test('the status page says demo data, visibly, above the verdict', async (t) => {
  const page = (await demo.app.inject({ url: '/status' })).body
  t.match(page, /<title>Demo: Scheduler alive · eva-heartbeat-api<\/title>/)
  t.match(page, /<h1>EVA scheduler \(demo data\)<\/h1>\n<p id="demo" class="demo" role="note"><strong>Demo data\.<\/strong> This verdict is about the embedded database's row/)
  t.ok(page.indexOf('id="demo"') < page.indexOf('id="verdict"'), 'before the verdict')
  t.notMatch((await real.app.inject({ url: '/status' })).body, /demo/i)
})

t.test('the badge and the shields.io JSON say demo in their message, whatever the label', async (t) => {
  const svg = (await demo.app.inject({ url: '/heartbeat/badge.svg?label=build' })).body
  t.match(svg, 'aria-label="build: alive (demo)"')
  t.same((await demo.app.inject({ url: '/heartbeat/shields.json' })).json(), { schemaVersion: 1, label: 'scheduler', message: 'alive (demo)', color: 'brightgreen' })
  t.match((await real.app.inject({ url: '/heartbeat/badge.svg' })).body, 'aria-label="scheduler: alive"')
  t.same((await real.app.inject({ url: '/heartbeat/shields.json' })).json(), { schemaVersion: 1, label: 'scheduler', message: 'alive', color: 'brightgreen' })
})

t.test('the metrics: demo="true" on the verdict and the info series, only from demo data', async (t) => {
  const scrape = async (app: typeof demo.app): Promise<string> => (await app.inject({ url: '/metrics', headers: await bearer('authenticated') })).body
  const fromDemo = await scrape(demo.app)
  t.match(fromDemo, /^scheduler_heartbeat_up\{demo="true"\} 1$/m)
  t.match(fromDemo, /^scheduler_info\{instance_id="scheduler-0a1b2c3d",demo="true"\} 1$/m)
  const fromReal = await scrape(real.app)
  t.match(fromReal, /^scheduler_heartbeat_up 1$/m)
  t.match(fromReal, /^scheduler_info\{instance_id="scheduler-0a1b2c3d"\} 1$/m)
  t.notMatch(fromReal, /^[^#\n].*[{,]demo="/m, 'no series has a demo label')
})

t.test('the event stream: every heartbeat event\'s verdict says demo, only from demo data', async (t) => {
  const headers = await bearer('authenticated')
  for (const [app, demoData] of [[demo.app, true], [real.app, false]] as const) {
    const address = await app.listen({ host: '127.0.0.1', port: 0 })
    const events = await connectSse(`${address}/heartbeat/events`, headers)
    t.teardown(events.close)
    t.equal(events.status, 200)
    const liveness = dataOf(await events.next(isHeartbeat, 15_000, 0)).liveness as Record<string, unknown>
    if (demoData) t.equal(liveness.demo, true, 'demo')
    else t.notOk('demo' in liveness, 'no demo property')
    events.close()
  }
})
