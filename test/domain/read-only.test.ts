// Whether the database takes writes, as /readyz says it; and a write refused as read-only (SQLSTATE 25006), as the
// error handler answers it: 503 database_read_only, not the 500 of an unknown error nor the retryable outage.
import t from 'tap'
import type { FastifyError } from 'fastify'
import { isDatabaseReadOnly, isDatabaseUnavailable } from '../../src/db/errors.js'
import { whyReadOnly, writesImpossible } from '../../src/domain/read-only.js'
import { toProblemError } from '../../src/plugins/errors.js'

t.test('whyReadOnly: a hot standby first, then read-only transactions, else writable', async (t) => {
  t.equal(whyReadOnly({ inRecovery: false, transactionReadOnly: false }), undefined)
  // A standby's transactions are read-only too: the standby is the reason to name.
  t.match(whyReadOnly({ inRecovery: true, transactionReadOnly: true }), /^the database is read-only \(hot standby: a read replica/)
  t.match(whyReadOnly({ inRecovery: false, transactionReadOnly: true }), /^the database is read-only \(default_transaction_read_only is on/)
  t.match(writesImpossible('the database is read-only (x)'), /^impossible: the database is read-only \(x\); PATCH \/heartbeat answers 503 database_read_only\. Point DATABASE_URL at the primary/)
})

t.test('SQLSTATE 25006 is a read-only database: 503 database_read_only, without Retry-After', async (t) => {
  const refused = Object.assign(new Error('cannot execute SELECT FOR UPDATE in a read-only transaction'), { code: '25006' }) as unknown as FastifyError
  t.ok(isDatabaseReadOnly(refused))
  t.notOk(isDatabaseUnavailable(refused), 'not an outage to retry')
  const problem = toProblemError(refused)
  t.match(problem?.toProblem(), { status: 503, code: 'database_read_only', title: 'Database is read-only' })
  t.match(problem?.detail, /database at DATABASE_URL is read-only/)
  t.same(problem?.headers, {})
  for (const other of [{ code: '25P02' }, { code: 25006 }, null, 'x']) t.notOk(isDatabaseReadOnly(other), JSON.stringify(other))
})
