// How log lines look: JSON lines for machines (the default wherever standard output is not a terminal), readable
// lines for a person at a terminal. LOG_FORMAT forces either.
import { PinoPretty } from 'pino-pretty'
import type { Config } from './config.js'

export type LogFormat = NonNullable<Config['logFormat']>

export function chooseLogFormat (setting: Config['logFormat'], stdoutIsTerminal: boolean): LogFormat {
  return setting ?? (stdoutIsTerminal ? 'pretty' : 'json')
}

/**
 * The stream a pretty logger writes to: one line per entry (time, level, message, then the entry's other fields),
 * in colour on a terminal. Synchronous, so that log lines and the start banner reach the terminal in order.
 */
export function prettyLogStream (colorize: boolean): NodeJS.WritableStream {
  return PinoPretty({ colorize, sync: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' })
}
