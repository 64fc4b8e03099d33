// Whether the database at DATABASE_URL can take the operator's writes: a hot standby (a read replica) or a
// session whose transactions default to read-only serves every read and refuses every write.

export interface Writability {
  /** pg_is_in_recovery(): a hot standby replaying a primary's WAL. */
  inRecovery: boolean
  /** current_setting('transaction_read_only') in the API's own transaction: default_transaction_read_only is on. */
  transactionReadOnly: boolean
}

/** Why writes are impossible, in one phrase; undefined when the database takes them. */
export function whyReadOnly ({ inRecovery, transactionReadOnly }: Writability): string | undefined {
  if (inRecovery) return 'the database is read-only (hot standby: a read replica, pg_is_in_recovery() is true)'
  if (transactionReadOnly) return 'the database is read-only (default_transaction_read_only is on in the API\'s sessions)'
  return undefined
}

/** The /readyz output of the writes check when they are impossible: what is wrong and what to do. */
export const writesImpossible = (why: string): string =>
  `impossible: ${why}; PATCH /heartbeat answers 503 database_read_only. Point DATABASE_URL at the primary to change the heartbeat.`
