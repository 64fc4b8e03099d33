// The readiness answer as data: the overall status, and what a caller without the details role sees.
import t from 'tap'
import { checkOf, readinessOf, unavailableReadiness, withoutDetails } from '../../src/domain/readiness.js'

const drift = 'policy eva_scheduler_heartbeat_authenticated_select uses ((auth.uid() = owner_id)), expected (true)'

t.test('checkOf: no problems pass, problems fail with them as output', async (t) => {
  t.same(checkOf([]), { status: 'pass' })
  t.same(checkOf(['a', 'b']), { status: 'fail', output: 'a; b' })
})

t.test('readinessOf: pass only when every check passes', async (t) => {
  t.equal(readinessOf({ database: checkOf([]), table: checkOf([]), policies: checkOf([]), writes: checkOf([]) }).status, 'pass')
  t.equal(readinessOf({ database: checkOf([]), table: checkOf([]), policies: checkOf([drift]), writes: checkOf([]) }).status, 'fail')
  t.equal(readinessOf({ database: checkOf([]), table: checkOf([]), policies: checkOf([]), writes: { status: 'warn', output: 'read-only' } }).status, 'pass', 'a warn is still ready')
  t.equal(unavailableReadiness().status, 'fail')
  t.equal(unavailableReadiness().checks.database.status, 'fail')
})

t.test('withoutDetails keeps each check\'s name and status, and no output', async (t) => {
  const full = readinessOf({ database: checkOf([]), table: checkOf(['column error_count is missing']), policies: checkOf([drift]), writes: checkOf([]) })
  const coarse = withoutDetails(full)
  t.same(coarse, { status: 'fail', checks: { database: { status: 'pass' }, table: { status: 'fail' }, policies: { status: 'fail' }, writes: { status: 'pass' } } })
  t.notMatch(JSON.stringify(coarse), /auth\.uid|error_count|expected/)
  t.equal(full.checks.policies.output, drift, 'the shared result itself is left whole')
  t.same(Object.keys(withoutDetails(unavailableReadiness()).checks), ['database', 'table', 'policies', 'writes'])
})
