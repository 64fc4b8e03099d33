// Concurrent liveness requests share one read: each request still gets the verdict for its own ?grace=, and a new
// reading gets a new verdict.
import t from 'tap'
import { startTestApp, writeRow } from '../helpers/app.js'
import { startTestDatabase } from '../helpers/database.js'

const db = await startTestDatabase()
t.teardown(db.close)

t.test('mixed ?grace= in one burst: each answer is the one for its own grace', async (t) => {
  const { app } = await startTestApp(t, { db })
  // Announced interval 60 s, 70 s overdue: late at the configured grace (3 × 60 s), stale at ?grace=10.
  await writeRow(db.admin, { lastPollAgo: 130, nextPollIn: -70 })
  for (let round = 0; round < 3; round++) {
    const answers = await Promise.all(Array.from({ length: 20 }, async (_, i) => {
      const url = i % 2 === 0 ? '/heartbeat/liveness' : '/heartbeat/liveness?grace=10'
      const res = await app.inject({ url })
      return [url, res.statusCode, res.json<{ state: string, grace_seconds: number }>()] as const
    }))
    for (const [url, status, body] of answers) {
      if (url.endsWith('grace=10')) t.match([status, body], [503, { state: 'stale', grace_seconds: 10 }], `${url}: stale`)
      else t.match([status, body], [200, { state: 'late', grace_seconds: 180 }], `${url}: late`)
    }
  }
  // The row changes: the next reading's verdict is its own.
  await writeRow(db.admin, { lastPollAgo: 5, nextPollIn: 55 })
  const res = await app.inject({ url: '/heartbeat/liveness' })
  t.match([res.statusCode, res.json()], [200, { state: 'alive' }])
})
