// Faults a test causes on a real PostgreSQL server, as its superuser: held locks, killed backends, and a look at the
// API's connections. Each lock is held on a reserved connection in an open transaction until it is released.
import type { Sql } from 'postgres'
import { isConnectionLost } from '../../src/db/transaction.js'

export const API_APPLICATION_NAME = 'eva-heartbeat-api'

export interface HeldLock {
  /** Rolls the holding transaction back (nothing was written) and returns the connection to the pool; idempotent. */
  release: () => Promise<void>
  /** The holding backend's pid (never one of the API's). */
  pid: number
}

async function hold (admin: Sql, statement: string): Promise<HeldLock> {
  const connection = await admin.reserve()
  try {
    await connection`begin`
    await connection.unsafe(statement)
    const [row] = await connection<Array<{ pid: number }>>`select pg_backend_pid() as pid`
    let released = false
    return {
      pid: (row as { pid: number }).pid,
      release: async () => {
        if (released) return
        released = true
        try {
          await connection`rollback`
        } catch (error) {
          // The server ended the session (stopped, or the backend was killed): the lock went with it.
          if (!isConnectionLost(error)) throw error
        } finally {
          connection.release()
        }
      }
    }
  } catch (error) {
    connection.release()
    throw error
  }
}

/** `lock table … in access exclusive mode`: every statement that touches the table waits, even a plain SELECT. */
export async function holdTableLock (admin: Sql): Promise<HeldLock> {
  return await hold(admin, 'lock table public.eva_scheduler_heartbeat in access exclusive mode')
}

/** `select … for update` of row 1: readers go on (MVCC), writers of the row wait. */
export async function holdRowLock (admin: Sql): Promise<HeldLock> {
  return await hold(admin, 'select * from public.eva_scheduler_heartbeat where id = 1 for update')
}

export interface ApiBackend { pid: number, state: string | null, waiting: boolean }

/** The API's connections as the server sees them (its pool names itself in application_name). */
export async function apiBackends (admin: Sql): Promise<ApiBackend[]> {
  const rows = await admin<ApiBackend[]>`
    select pid, state, wait_event_type = 'Lock' as waiting from pg_stat_activity
    where application_name = ${API_APPLICATION_NAME} and backend_type = 'client backend'`
  return [...rows]
}

/** How many of the API's statements are waiting for a lock right now. */
export async function waitingOnLocks (admin: Sql): Promise<number> {
  return (await apiBackends(admin)).filter((backend) => backend.waiting).length
}

/**
 * Terminates the API's backends (`pg_terminate_backend`), only those in `states` when given. With `wait` (the
 * default) each is gone when this returns; without, it is only signalled, and may still be ending when the next
 * request comes. Returns how many were terminated.
 */
export async function terminateApiBackends (admin: Sql, options: { states?: readonly string[], wait?: boolean } = {}): Promise<number> {
  const { states, wait = true } = options
  const rows = await admin<Array<{ pid: number, terminated: boolean }>>`
    select pid, pg_terminate_backend(pid, ${wait ? 5000 : 0}) as terminated from pg_stat_activity
    where application_name = ${API_APPLICATION_NAME} and backend_type = 'client backend'
      ${states === undefined ? admin`` : admin`and state = any(${[...states]})`}`
  return rows.filter((row) => row.terminated).length
}
