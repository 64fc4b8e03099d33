import t from 'tap'
import {
  compareTable,
  HEARTBEAT_COLUMNS,
  HEARTBEAT_CONSTRAINTS,
  type CatalogColumn,
  type CatalogTable
} from '../../src/domain/table.js'

/** A subtest's `t`. */
type Tap = Parameters<Parameters<typeof t.test>[0]>[0]

/** The catalog as pg_catalog reports the table the seed describes. */
function catalog (): CatalogTable {
  return {
    exists: true,
    rowSecurity: true,
    columns: HEARTBEAT_COLUMNS.map((c) => ({ name: c.name, type: c.type, not_null: c.notNull, default: c.default })),
    constraints: Object.entries(HEARTBEAT_CONSTRAINTS).map(([name, definition]) => ({ name, definition }))
  }
}

/** The catalog with one column changed. */
function withColumn (name: string, change: Partial<CatalogColumn>): CatalogTable {
  const table = catalog()
  return { ...table, columns: table.columns.map((c) => c.name === name ? { ...c, ...change } : c) }
}

/** Exactly one sentence, on one line, that matches every pattern. */
function oneSentence (t: Tap, problems: string[], ...patterns: RegExp[]): void {
  t.equal(problems.length, 1, JSON.stringify(problems))
  for (const pattern of patterns) t.match(problems[0], pattern)
  t.notMatch(problems[0], /\n/)
}

t.test('the table the seed describes agrees', async (t) => {
  t.same(compareTable(catalog()), [])
  t.equal(HEARTBEAT_COLUMNS.length, 13, 'all 13 columns of the seed')
  const reversed = catalog()
  t.same(compareTable({ ...reversed, columns: [...reversed.columns].reverse() }), [], 'column order does not matter')
  t.same(compareTable({ ...reversed, constraints: [...reversed.constraints, { name: 'eva_scheduler_heartbeat_extra_check', definition: 'CHECK ((poll_count >= 0))' }] }), [],
    'an additional constraint only narrows what the API reads')
})

t.test('no table', async (t) => {
  oneSentence(t, compareTable({ exists: false, rowSecurity: false, columns: [], constraints: [] }), /eva_scheduler_heartbeat/, /does not exist/)
})

t.test('a missing column', async (t) => {
  const table = catalog()
  oneSentence(t, compareTable({ ...table, columns: table.columns.filter((c) => c.name !== 'next_poll_at') }), /column next_poll_at/, /missing/)
})

t.test('a column of another type', async (t) => {
  oneSentence(t, compareTable(withColumn('last_poll_at', { type: 'timestamp without time zone' })),
    /column last_poll_at/, /timestamp without time zone/, /expected timestamp with time zone/)
  oneSentence(t, compareTable(withColumn('metadata', { type: 'json' })), /column metadata is json, expected jsonb/)
  oneSentence(t, compareTable(withColumn('poll_count', { type: 'bigint' })), /column poll_count is bigint, expected integer/)
})

t.test('other nullability', async (t) => {
  oneSentence(t, compareTable(withColumn('status', { not_null: false })), /column status is nullable, expected NOT NULL/)
  oneSentence(t, compareTable(withColumn('paused_reason', { not_null: true })), /column paused_reason is NOT NULL, expected nullable/)
})

t.test('another default', async (t) => {
  oneSentence(t, compareTable(withColumn('status', { default: "'stopped'::text" })), /column status/, /'stopped'::text/, /expected 'running'::text/)
  oneSentence(t, compareTable(withColumn('circuit_breaker_state', { default: null })), /column circuit_breaker_state defaults to null, expected 'CLOSED'::text/)
  oneSentence(t, compareTable(withColumn('instance_id', { default: 'gen_random_uuid()' })), /column instance_id defaults to gen_random_uuid\(\), expected null/)
})

t.test('an extra column', async (t) => {
  const table = catalog()
  oneSentence(t, compareTable({ ...table, columns: [...table.columns, { name: 'region', type: 'text', not_null: false, default: null }] }),
    /column region/, /not in the seed/)
})

t.test('a missing or changed constraint', async (t) => {
  for (const name of Object.keys(HEARTBEAT_CONSTRAINTS)) {
    const table = catalog()
    oneSentence(t, compareTable({ ...table, constraints: table.constraints.filter((c) => c.name !== name) }), new RegExp(`constraint ${name} is missing`))
  }
  const table = catalog()
  const loose = "CHECK ((status = ANY (ARRAY['running'::text, 'stopping'::text, 'stopped'::text, 'paused'::text])))"
  oneSentence(t, compareTable({
    ...table,
    constraints: table.constraints.map((c) => c.name === 'eva_scheduler_heartbeat_status_check' ? { ...c, definition: loose } : c)
  }), /constraint eva_scheduler_heartbeat_status_check/, /'paused'::text/, /expected CHECK/)
})

t.test('row level security off', async (t) => {
  oneSentence(t, compareTable({ ...catalog(), rowSecurity: false }), /row level security is not enabled/)
})

t.test('several kinds of drift: one sentence each', async (t) => {
  const table = withColumn('status', { type: 'character varying', not_null: false })
  const problems = compareTable({ ...table, rowSecurity: false, constraints: [] })
  t.equal(problems.length, 2 + Object.keys(HEARTBEAT_CONSTRAINTS).length + 1, JSON.stringify(problems))
})
