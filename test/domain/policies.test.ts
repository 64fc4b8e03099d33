import t from 'tap'
import {
  API_ROLES,
  comparePolicies,
  HEARTBEAT_POLICIES,
  isApiRole,
  mayPerform,
  type CatalogPolicy,
  type TableAction
} from '../../src/domain/policies.js'

/** A subtest's `t`. */
type Tap = Parameters<Parameters<typeof t.test>[0]>[0]

t.test('mayPerform: every role × action', async (t) => {
  const expected: Record<string, Record<TableAction, boolean>> = {
    anon: { select: false, update: false },
    authenticated: { select: true, update: false },
    service_role: { select: true, update: true },
    postgres: { select: false, update: false },
    '': { select: false, update: false }
  }
  for (const [role, actions] of Object.entries(expected)) {
    for (const [action, allowed] of Object.entries(actions) as Array<[TableAction, boolean]>) {
      t.equal(mayPerform(role, action), allowed, `${JSON.stringify(role)} ${allowed ? 'may' : 'may not'} ${action}`)
    }
  }
})

t.test('mayPerform follows the policies it is given', async (t) => {
  t.notOk(mayPerform('service_role', 'select', []), 'no policy: nobody')
  const publicSelect = [{ name: 'p', command: 'SELECT' as const, roles: ['public'], using: 'true', withCheck: null }]
  t.ok(mayPerform('anon', 'select', publicSelect), 'a policy for public covers every role')
  t.notOk(mayPerform('anon', 'update', publicSelect), 'but only for its command')
  const updateOnly = [{ name: 'u', command: 'UPDATE' as const, roles: ['authenticated'], using: 'true', withCheck: 'true' }]
  t.ok(mayPerform('authenticated', 'update', updateOnly))
  t.notOk(mayPerform('authenticated', 'select', updateOnly))
})

t.test('isApiRole: only the roles a policy names', async (t) => {
  t.same([...API_ROLES].sort(), ['authenticated', 'service_role'])
  t.ok(isApiRole('authenticated'))
  t.ok(isApiRole('service_role'))
  for (const role of ['anon', 'postgres', 'authenticator', '', 'Authenticated', 'public']) t.notOk(isApiRole(role), JSON.stringify(role))
})

/** pg_policies as PostgreSQL reports the migrated table. */
function catalog (): CatalogPolicy[] {
  return [
    { policyname: 'eva_scheduler_heartbeat_authenticated_select', permissive: 'PERMISSIVE', roles: ['authenticated'], cmd: 'SELECT', qual: 'true', with_check: null },
    { policyname: 'eva_scheduler_heartbeat_service_role_all', permissive: 'PERMISSIVE', roles: ['service_role'], cmd: 'ALL', qual: 'true', with_check: 'true' }
  ]
}

const SELECT = 'eva_scheduler_heartbeat_authenticated_select'
const ALL = 'eva_scheduler_heartbeat_service_role_all'

/** The catalog with one policy changed. */
function withPolicy (name: string, change: Partial<CatalogPolicy>): CatalogPolicy[] {
  return catalog().map((policy) => policy.policyname === name ? { ...policy, ...change } : policy)
}

/** Exactly one sentence that names the policy and matches `pattern`. */
function oneSentence (t: Tap, drift: string[], name: string, pattern: RegExp): void {
  t.equal(drift.length, 1, JSON.stringify(drift))
  t.match(drift[0], name)
  t.match(drift[0], pattern)
  t.notMatch(drift[0], /\n/)
}

t.test('comparePolicies', async (t) => {
  t.test('the catalog of the migrated table agrees', async (t) => {
    t.same(comparePolicies(catalog()), [])
    t.same(comparePolicies([...catalog()].reverse()), [], 'order does not matter')
    t.equal(HEARTBEAT_POLICIES.length, 2)
  })

  t.test('a missing policy', async (t) => {
    oneSentence(t, comparePolicies(catalog().filter((p) => p.policyname !== SELECT)), SELECT, /missing/)
    oneSentence(t, comparePolicies(catalog().filter((p) => p.policyname !== ALL)), ALL, /missing/)
    t.equal(comparePolicies([]).length, 2, 'no policies at all: both missing')
  })

  t.test('an extra policy', async (t) => {
    const extra: CatalogPolicy = { policyname: 'anon_can_read', permissive: 'PERMISSIVE', roles: ['anon'], cmd: 'SELECT', qual: 'true', with_check: null }
    oneSentence(t, comparePolicies([...catalog(), extra]), 'anon_can_read', /not in the API's mirror/)
  })

  t.test('another command', async (t) => {
    oneSentence(t, comparePolicies(withPolicy(SELECT, { cmd: 'ALL' })), SELECT, /ALL.*SELECT/)
    oneSentence(t, comparePolicies(withPolicy(ALL, { cmd: 'UPDATE' })), ALL, /UPDATE.*ALL/)
  })

  t.test('other roles', async (t) => {
    oneSentence(t, comparePolicies(withPolicy(SELECT, { roles: ['anon'] })), SELECT, /\{anon\}.*\{authenticated\}/)
    oneSentence(t, comparePolicies(withPolicy(SELECT, { roles: ['authenticated', 'anon'] })), SELECT, /\{anon,authenticated\}/)
    oneSentence(t, comparePolicies(withPolicy(ALL, { roles: ['public'] })), ALL, /\{public\}.*\{service_role\}/)
    t.same(comparePolicies(withPolicy(SELECT, { roles: ['authenticated'] })), [], 'the same role is no drift')
  })

  t.test('a restrictive policy', async (t) => {
    oneSentence(t, comparePolicies(withPolicy(SELECT, { permissive: 'RESTRICTIVE' })), SELECT, /RESTRICTIVE.*PERMISSIVE/)
  })

  t.test('qual: (true) and true are the same expression', async (t) => {
    t.same(comparePolicies(withPolicy(SELECT, { qual: '(true)' })), [])
    t.same(comparePolicies(withPolicy(ALL, { qual: '(true)', with_check: '(true)' })), [])
    t.same(comparePolicies(withPolicy(SELECT, { qual: ' true ' })), [], 'surrounding blanks do not matter')
  })

  t.test('qual false (or null) is drift', async (t) => {
    oneSentence(t, comparePolicies(withPolicy(SELECT, { qual: 'false' })), SELECT, /uses \(false\).*expected \(true\)/)
    oneSentence(t, comparePolicies(withPolicy(SELECT, { qual: '(false)' })), SELECT, /false/)
    oneSentence(t, comparePolicies(withPolicy(SELECT, { qual: "(auth.uid() = '00000000-0000-0000-0000-000000000000'::uuid)" })), SELECT, /auth\.uid\(\)/)
    oneSentence(t, comparePolicies(withPolicy(SELECT, { qual: null })), SELECT, /uses \(null\)/)
  })

  t.test('with_check drift', async (t) => {
    oneSentence(t, comparePolicies(withPolicy(ALL, { with_check: 'false' })), ALL, /checks \(false\).*expected \(true\)/)
    oneSentence(t, comparePolicies(withPolicy(ALL, { with_check: null })), ALL, /checks \(null\)/)
    oneSentence(t, comparePolicies(withPolicy(SELECT, { with_check: 'true' })), SELECT, /checks \(true\).*expected \(null\)/)
  })

  t.test('several kinds of drift: one sentence each', async (t) => {
    const drift = comparePolicies(withPolicy(SELECT, { cmd: 'ALL', permissive: 'RESTRICTIVE', roles: ['anon'], qual: 'false' }))
    t.equal(drift.length, 4, JSON.stringify(drift))
    for (const sentence of drift) t.match(sentence, SELECT)
  })
})
