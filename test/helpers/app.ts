// Builds the real app (buildApp, the same config path as production) against a real PostgreSQL server.
import type { FastifyInstance } from 'fastify'
import { SignJWT, type JWTPayload } from 'jose'
import type { Sql } from 'postgres'
import { buildApp, type BuildAppOptions } from '../../src/app.js'
import { loadConfig, type AppConfig } from '../../src/config.js'
import { startTestDatabase, type TestDatabase } from './database.js'

export const TEST_SECRET = 'test-secret-for-eva-heartbeat-api-0123456789'

interface Teardown { teardown: (fn: () => unknown) => void }

export interface TestApp {
  app: FastifyInstance
  db: TestDatabase
  config: AppConfig
}

/** A started database (shared when given) and an app built from an environment, as the process would build it. */
export async function startTestApp (t: Teardown, options: { env?: Record<string, string>, db?: TestDatabase, demoData?: boolean } & BuildAppOptions = {}): Promise<TestApp> {
  const db = options.db ?? await startTestDatabase()
  if (options.db === undefined) t.teardown(db.close)
  const loaded = loadConfig({
    DATABASE_URL: db.apiUrl,
    JWT_SECRET: TEST_SECRET,
    LOG_LEVEL: 'silent',
    DB_STATEMENT_TIMEOUT_MS: '2000',
    // Suites that send hundreds of bad tokens from one address (the JWT attacks, fuzzing) would meet the 429 of the
    // failed-authentication limit; test/security/defences.test.ts turns it on and tests it.
    AUTH_FAILURE_LIMIT_PER_MINUTE: '0',
    ...options.env
  })
  // As src/server.ts decides it: demo data only on the embedded database (a test asks for it).
  const config = { ...loaded, demoData: options.demoData ?? false } as AppConfig
  const app = await buildApp(config, { logStream: options.logStream, limits: options.limits })
  t.teardown(async () => { await app.close() })
  await app.ready()
  return { app, db, config }
}

/** An HS256 token signed with the test secret; `exp` one hour ahead unless the claims say otherwise. */
export async function token (claims: JWTPayload = {}, secret: string = TEST_SECRET): Promise<string> {
  const { exp, ...rest } = claims
  return await new SignJWT(rest)
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setExpirationTime(exp ?? Math.floor(Date.now() / 1000) + 3600)
    .sign(new TextEncoder().encode(secret))
}

export const bearer = async (role: string, claims: JWTPayload = {}): Promise<{ authorization: string }> =>
  ({ authorization: `Bearer ${await token({ role, sub: `test-${role}`, ...claims })}` })

export interface RowShape {
  instance_id?: string
  status?: string
  paused_reason?: string | null
  circuit_breaker_state?: string | null
  /** Seconds before the database's now(); null leaves the column null. */
  lastPollAgo?: number | null
  /** Seconds after the database's now() (negative: in the past); null leaves the column null. */
  nextPollIn?: number | null
  updatedAgo?: number
  poll_count?: number
  dispatch_count?: number
  error_count?: number
  metadata?: unknown
}

/**
 * Writes the row as the scheduler would, with times relative to the database's clock. Defaults: a healthy
 * scheduler that polled 10 s ago and polls again in 50 s.
 */
export async function writeRow (sql: Sql, shape: RowShape = {}): Promise<void> {
  const last = shape.lastPollAgo === undefined ? 10 : shape.lastPollAgo
  const next = shape.nextPollIn === undefined ? 50 : shape.nextPollIn
  const updated = shape.updatedAgo ?? (last ?? 0)
  await sql`
    insert into public.eva_scheduler_heartbeat
      (id, instance_id, last_poll_at, next_poll_at, poll_count, dispatch_count, error_count,
       status, circuit_breaker_state, paused_reason, metadata, updated_at)
    values (1, ${shape.instance_id ?? 'scheduler-0a1b2c3d'},
      ${last === null ? null : sql`now() - make_interval(secs => ${last})`},
      ${next === null ? null : sql`now() + make_interval(secs => ${next})`},
      ${shape.poll_count ?? 7}, ${shape.dispatch_count ?? 3}, ${shape.error_count ?? 0},
      ${shape.status ?? 'running'},
      ${shape.circuit_breaker_state === undefined ? 'CLOSED' : shape.circuit_breaker_state},
      ${shape.paused_reason ?? null}, ${sql.json((shape.metadata ?? { observe_only: false }) as never)},
      now() - make_interval(secs => ${updated}))
    on conflict (id) do update set
      instance_id = excluded.instance_id, last_poll_at = excluded.last_poll_at, next_poll_at = excluded.next_poll_at,
      poll_count = excluded.poll_count, dispatch_count = excluded.dispatch_count, error_count = excluded.error_count,
      status = excluded.status, circuit_breaker_state = excluded.circuit_breaker_state,
      paused_reason = excluded.paused_reason, metadata = excluded.metadata, updated_at = excluded.updated_at`
}

export async function deleteRow (sql: Sql): Promise<void> {
  await sql`delete from public.eva_scheduler_heartbeat`
}

/** The row exactly as stored, as text, to compare byte for byte before and after a request. */
export async function rowText (sql: Sql): Promise<string | null> {
  const [row] = await sql<Array<{ text: string }>>`select row_to_json(h)::text as text from public.eva_scheduler_heartbeat h where id = 1`
  return row?.text ?? null
}

const DROP_SKIP_UPDATES = 'drop trigger if exists eva_test_skip_update on public.eva_scheduler_heartbeat; drop function if exists public.eva_test_skip_update()'

/**
 * A trigger that skips every update of the table (the row lock still succeeds, the UPDATE changes 0 rows), as a
 * policy or trigger of the owning application might; removed at teardown, or earlier by calling what this returns.
 */
export async function skipEveryUpdate (sql: Sql, t: Teardown): Promise<() => Promise<void>> {
  await sql.unsafe(`
    create or replace function public.eva_test_skip_update() returns trigger language plpgsql as $$ begin return null; end $$;
    create trigger eva_test_skip_update before update on public.eva_scheduler_heartbeat
      for each row execute function public.eva_test_skip_update();`)
  const drop = async (): Promise<void> => { await sql.unsafe(DROP_SKIP_UPDATES) }
  t.teardown(drop)
  return drop
}
