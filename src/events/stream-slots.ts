// The caps on open /heartbeat/events streams: per principal, per client address and overall. A stream takes its slot
// before it opens and gives it back when it closes, for whatever reason. Pure counting: the route does the I/O.
import { isIPv4, isIPv6 } from 'node:net'

export interface StreamCaps {
  /** Streams one principal (a token's `sub`, an API key's name; see streamOwner) may hold at once. */
  perPrincipal: number
  /** Streams one client address (request.ip; IPv6 by its /64) may hold at once. */
  perAddress: number
  /** Streams the process holds at once: each is an open file descriptor. */
  total: number
}

export type StreamCapScope = 'principal' | 'address' | 'total'

/** Why a stream was refused: which cap, and its value. */
export interface StreamRefusal {
  scope: StreamCapScope
  limit: number
}

export type StreamAdmission = { admitted: true, release: () => void } | { admitted: false, refusal: StreamRefusal }

export interface StreamSlotStats {
  open: number
  principals: number
  addresses: number
}

/**
 * The key a client address counts under: an IPv4 address itself (also when IPv4-mapped), an IPv6 address by its
 * /64, the smallest network one site is given (a host can pick any address in it). Anything else: itself.
 */
export function addressKey (ip: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip)
  if (mapped?.[1] !== undefined) return mapped[1]
  if (isIPv4(ip) || !isIPv6(ip)) return ip
  const [head = '', tail = ''] = ip.toLowerCase().split('%')[0]?.split('::') ?? []
  const left = head === '' ? [] : head.split(':')
  const right = tail === '' ? [] : tail.split(':')
  const groups = ip.includes('::') ? [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right] : left
  return `${groups.slice(0, 4).map((group) => Number.parseInt(group, 16).toString(16)).join(':')}::/64`
}

/** Counts open streams by principal and by address; refuses one that would pass a cap. */
export class StreamSlots {
  private readonly byPrincipal = new Map<string, number>()
  private readonly byAddress = new Map<string, number>()
  private open = 0

  constructor (private readonly caps: StreamCaps) {}

  /** Takes a slot for a stream of `principal` from `ip`, or says which cap it would pass. `release` is idempotent. */
  acquire (principal: string, ip: string): StreamAdmission {
    const address = addressKey(ip)
    if ((this.byPrincipal.get(principal) ?? 0) >= this.caps.perPrincipal) return refuse('principal', this.caps.perPrincipal)
    if ((this.byAddress.get(address) ?? 0) >= this.caps.perAddress) return refuse('address', this.caps.perAddress)
    if (this.open >= this.caps.total) return refuse('total', this.caps.total)
    add(this.byPrincipal, principal, 1)
    add(this.byAddress, address, 1)
    this.open++
    let released = false
    return {
      admitted: true,
      release: () => {
        if (released) return
        released = true
        add(this.byPrincipal, principal, -1)
        add(this.byAddress, address, -1)
        this.open--
      }
    }
  }

  stats (): StreamSlotStats {
    return { open: this.open, principals: this.byPrincipal.size, addresses: this.byAddress.size }
  }
}

const refuse = (scope: StreamCapScope, limit: number): StreamAdmission => ({ admitted: false, refusal: { scope, limit } })

/** Keeps only keys with a count, so the maps hold no more entries than there are open streams. */
function add (counts: Map<string, number>, key: string, delta: number): void {
  const next = (counts.get(key) ?? 0) + delta
  if (next <= 0) counts.delete(key)
  else counts.set(key, next)
}

/**
 * The soft open-file limit (RLIMIT_NOFILE) as /proc/self/limits gives it, e.g. the line
 * `Max open files            1024                 524288               files`; undefined when unreadable or unlimited.
 */
export function parseOpenFileLimit (limits: string): number | undefined {
  const match = /^Max open files\s+(\d+)\s/m.exec(limits)
  return match?.[1] === undefined ? undefined : Number(match[1])
}

/** The total cap when EVENTS_MAX_TOTAL is unset. */
export const DEFAULT_TOTAL_WITHOUT_LIMIT = 1000
export const DEFAULT_TOTAL_CEILING = 10_000

/**
 * Half the soft open-file limit, so that streams alone can never use the descriptors every other route, the database
 * pool and the logs need; at most DEFAULT_TOTAL_CEILING (the bench measured about 16 MB of RSS per thousand streams), and
 * DEFAULT_TOTAL_WITHOUT_LIMIT where the limit cannot be read.
 */
export function defaultTotalStreams (openFileLimit: number | undefined): number {
  if (openFileLimit === undefined) return DEFAULT_TOTAL_WITHOUT_LIMIT
  return Math.max(1, Math.min(DEFAULT_TOTAL_CEILING, Math.floor(openFileLimit / 2)))
}
