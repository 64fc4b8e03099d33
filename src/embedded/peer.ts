// A loopback listener's owner, from Linux's /proc/net/tcp: a connection to the embedded server is used only when its
// far end belongs to the server's OS user. While that server restarts, another local user could listen on its port
// and ask for a cleartext password; such a connection is closed before a byte is sent.
import { readFileSync } from 'node:fs'
import { connect } from 'node:net'
import type { SocketFactory } from '../db/client.js'

/** The uid owning the socket at local port `serverPort` connected to our `clientPort`, from /proc/net/tcp's text. */
export function peerUid (table: string, serverPort: number, clientPort: number): number | undefined {
  const local = `0100007F:${serverPort.toString(16).toUpperCase().padStart(4, '0')}`
  const remote = `0100007F:${clientPort.toString(16).toUpperCase().padStart(4, '0')}`
  for (const line of table.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/)
    if (fields[1] === local && fields[2] === remote) return Number(fields[7])
  }
  return undefined
}

/** Thrown (and so a failed connection, retried by the pool) when the port is someone else's. */
export class ForeignListenerError extends Error {
  override name = 'ForeignListenerError'
}

/**
 * postgres.js's `socket` option: connects to 127.0.0.1 and hands the socket over only if the listener is `uid`'s.
 * Where /proc/net/tcp cannot be read (not Linux), the check cannot be made and the socket is used as it is.
 */
export function ownedBy (uid: number): SocketFactory {
  return async ({ port }) => {
    const serverPort = port[0] ?? 5432
    const socket = connect(serverPort, '127.0.0.1')
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve)
      socket.once('error', reject)
    })
    let table: string
    try {
      table = readFileSync('/proc/net/tcp', 'utf8')
    } catch {
      return socket
    }
    const owner = peerUid(table, serverPort, socket.localPort ?? 0)
    if (owner !== uid) {
      socket.destroy()
      throw new ForeignListenerError(`127.0.0.1:${serverPort} is not the embedded PostgreSQL's (its listener belongs to uid ${String(owner)}, not ${uid}): no password sent`)
    }
    return socket
  }
}
