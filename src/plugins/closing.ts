// While the process shuts down, a request that still reaches the app (on a keep-alive connection that was busy when
// the close began) is answered as every other 503 is: problem+json with Retry-After, and the connection closed.
// Fastify's own return503OnClosing answers `application/json {"error": …}` without Retry-After, so it is off (app.ts).
import fp from 'fastify-plugin'
import { ProblemError } from '../http/problems.js'

/** Seconds a client should wait: the restarted (or another) instance is normally up by then. */
const RETRY_AFTER_SECONDS = '5'

export const shuttingDown = (): ProblemError =>
  new ProblemError(503, 'shutting_down', 'Shutting down', 'This instance of the API is shutting down; try again shortly.',
    { 'retry-after': RETRY_AFTER_SECONDS, connection: 'close' })

export default fp(async (app) => {
  let closing = false
  // Registered first, so that it runs before any other plugin's preClose (which may wait for open streams to end).
  app.addHook('preClose', async () => { closing = true })
  // A callback hook, not an async one: it runs on every request, and costs nothing but this test.
  app.addHook('onRequest', (_request, _reply, done) => { done(closing ? shuttingDown() : undefined) })
}, { name: 'closing', dependencies: ['errors'] })
