// With DATABASE_URL the table belongs to another application: the start checks it, never creates or alters it.
import { checkSchema } from './catalog.js'
import { apiPoolOptions, createSql, type DbSettings } from './client.js'
import { callDeadlineMs, withDeadline } from './errors.js'

export interface ExternalCheck {
  /** What is not as expected in the table and its policies; empty: as expected. */
  problems: string[]
  /** Why the database refuses writes (a read replica), if it does. */
  readOnly: string | undefined
}

const CONNECT_SECONDS = 10

/** Checks the table over one connection made as the API's pool makes them. Throws when it cannot be checked. */
export async function checkExternalDatabase (url: string, settings: DbSettings): Promise<ExternalCheck> {
  const sql = createSql(url, { ...apiPoolOptions(settings), max: 1, connectTimeoutSeconds: CONNECT_SECONDS })
  let report
  try {
    // The deadline covers a server that accepts the connection and then never answers.
    report = await withDeadline(checkSchema(sql, { statementTimeoutMs: settings.statementTimeoutMs }), CONNECT_SECONDS * 1000 + callDeadlineMs(settings.statementTimeoutMs))
  } catch (error) {
    // The start fails at once: no waiting for a server that does not answer.
    sql.end({ timeout: 0 }).catch(() => {})
    throw error
  }
  await sql.end({ timeout: 1 })
  return { problems: [...report.table, ...report.policies], readOnly: report.readOnly }
}
