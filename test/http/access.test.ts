// A route that forgets to declare its access never starts; one that asks for a token without a gate neither.
import Fastify from 'fastify'
import t from 'tap'
import { enforceDeclaredAccess, routeAccess, undeclaredAccess } from '../../src/http/access.js'

const handler = async (): Promise<string> => 'the row'

t.test('undeclaredAccess: what each route must declare', async (t) => {
  const gate = async (): Promise<void> => {}
  t.equal(undeclaredAccess({ method: 'GET', url: '/x' }), 'GET /x declares no access (routeAccess)', 'no schema')
  t.equal(undeclaredAccess({ method: 'GET', url: '/x', schema: {} }), 'GET /x declares no access (routeAccess)', 'a schema without security')
  t.equal(undeclaredAccess({ method: 'GET', url: '/docs', schema: { hide: true } }), undefined, 'hidden documentation and assets')
  t.equal(undeclaredAccess({ method: 'GET', url: '/x', schema: { security: [] } }), undefined, 'public')
  t.equal(undeclaredAccess({ method: 'GET', url: '/x', schema: { security: [{ bearerAuth: [] }] } }), 'GET /x asks for a token but has no gate')
  t.equal(undeclaredAccess({ method: 'GET', url: '/x', schema: { security: [{ bearerAuth: [] }] }, preHandler: [] }), 'GET /x asks for a token but has no gate', 'an empty gate')
  t.equal(undeclaredAccess({ method: 'GET', url: '/x', schema: { security: [{ bearerAuth: [] }] }, preHandler: [gate] }), undefined)
  t.equal(undeclaredAccess({ method: 'PATCH', url: '/x', schema: { security: [{ bearerAuth: [] }] }, onRequest: gate }), undefined, 'a gate before the body is read')
})

t.test('an app that enforces it: a forgotten declaration stops the start, a declared route answers', async (t) => {
  const app = Fastify()
  t.teardown(async () => { await app.close() })
  enforceDeclaredAccess(app)
  t.throws(() => app.get('/heartbeat', handler), /GET \/heartbeat declares no access/)
  const open = routeAccess(app, 'public')
  app.get('/open', { schema: { security: open.security }, preHandler: open.gate }, handler)
  const res = await app.inject({ url: '/open' })
  t.equal(res.statusCode, 200)
  t.equal(res.body, 'the row')
  t.equal((await app.inject({ url: '/heartbeat' })).statusCode, 404, 'the undeclared route was never added')
})
