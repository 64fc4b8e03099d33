// The ceiling: a bare Fastify with one constant JSON route and a response schema, in a process of its own, with the
// same process settings as the app under test (NODE_ENV=production, logger at warn, loopback). Everything the app
// does is measured as a share of what this does on the same machine in the same run.
import Fastify from 'fastify'

const app = Fastify({ logger: { level: process.env.LOG_LEVEL ?? 'warn' } })
const body = { status: 'pass', state: 'alive' }

app.get('/', {
  schema: {
    response: {
      200: { type: 'object', properties: { status: { type: 'string' }, state: { type: 'string' } }, required: ['status', 'state'] }
    }
  }
}, async () => body)

await app.listen({ host: process.env.HOST ?? '127.0.0.1', port: Number(process.env.PORT ?? 0) })
process.on('SIGTERM', () => { void app.close().then(() => process.exit(0)) })
