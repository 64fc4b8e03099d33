// A real shared cache (nginx proxy_cache, which follows Cache-Control and Vary) in front of the app with
// LIVENESS_PUBLIC=false: what one token holder was served is never handed to a caller without a token. With
// LIVENESS_PUBLIC=true the badges stay cacheable by such a cache, as image proxies need.
import t from 'tap'
import { bearer, TEST_SECRET, writeRow } from '../helpers/app.js'
import { startTestDatabase } from '../helpers/database.js'
import { startAppWith } from '../helpers/jwks.js'
import { startNginx } from '../helpers/proxy.js'
import { findSbin, needs } from '../helpers/tools.js'

type Tap = Parameters<Parameters<typeof t.test>[0]>[0]

const nginx = findSbin('nginx')

const db = await startTestDatabase()
t.teardown(db.close)
await writeRow(db.admin, { lastPollAgo: 1, nextPollIn: 3600 })

const cachingProxy = async (t: Tap, upstream: string): Promise<string> => await startNginx(t, nginx!, upstream, { cache: true })

const URLS = ['/heartbeat/badge.svg', '/heartbeat/shields.json', '/status']

t.test('LIVENESS_PUBLIC=false: a caller without a token gets 401 from behind the cache, never a holder\'s badge or page', needs(nginx, 'nginx', 'nginx'), async (t) => {
  const app = await startAppWith(t, db, { JWT_SECRET: TEST_SECRET, LIVENESS_PUBLIC: 'false' })
  const cache = await cachingProxy(t, await app.listen({ host: '127.0.0.1', port: 0 }))
  const reader = await bearer('authenticated')
  for (const url of URLS) {
    for (let i = 0; i < 2; i++) t.equal((await fetch(`${cache}${url}`, { headers: reader })).status, 200, `${url} with a token (${i + 1})`)
    const anonymous = await fetch(`${cache}${url}`)
    await anonymous.arrayBuffer()
    t.equal(anonymous.status, 401, `${url} without a token: 401 (cache ${anonymous.headers.get('x-cache-status') ?? 'none'})`)
  }
})

t.test('LIVENESS_PUBLIC=true: the badges are the same for everyone and a shared cache keeps them', needs(nginx, 'nginx', 'nginx'), async (t) => {
  const app = await startAppWith(t, db, { JWT_SECRET: TEST_SECRET })
  const cache = await cachingProxy(t, await app.listen({ host: '127.0.0.1', port: 0 }))
  for (const url of URLS.slice(0, 2)) {
    await (await fetch(`${cache}${url}`)).arrayBuffer()
    const again = await fetch(`${cache}${url}`)
    await again.arrayBuffer()
    t.equal(again.status, 200)
    t.equal(again.headers.get('x-cache-status'), 'HIT', `${url}: the second answer comes from the cache`)
  }
})
