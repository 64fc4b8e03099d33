// The failed-authentication count, pure: which buckets an address's failures count in, and a bounded table of
// fixed-window counters that a flood of new addresses cannot empty of the addresses it currently limits.
import { isIPv4, isIPv6 } from 'node:net'

/** One counter an address's failures go to, and how many failures in a window limit it. */
export interface Bucket { key: string, threshold: number }

/**
 * A /48 is one site's allocation: 65,536 /64s, one per failure if each /64 had its own count only. It is counted too,
 * with this many times the limit, so that a site's many hosts are not limited by a few of them.
 */
export const WIDE_FACTOR = 16

/** The eight 16-bit groups of an IPv6 address (a zone id dropped, an embedded IPv4 tail read); undefined if not IPv6. */
export function ipv6Groups (address: string): number[] | undefined {
  const text = address.replace(/%.*$/, '')
  if (!isIPv6(text)) return undefined
  const parts = (half: string): number[] => {
    if (half === '') return []
    return half.split(':').flatMap((part) => {
      if (!part.includes('.')) return [Number.parseInt(part, 16)]
      const [a = 0, b = 0, c = 0, d = 0] = part.split('.').map(Number)
      return [(a << 8) | b, (c << 8) | d]
    })
  }
  const [head = '', tail] = text.split('::')
  const first = parts(head)
  if (tail === undefined) return first
  const last = parts(tail)
  return [...first, ...Array<number>(8 - first.length - last.length).fill(0), ...last]
}

const prefix = (groups: number[], bits: 64 | 48): string =>
  `${groups.slice(0, bits / 16).map((g) => g.toString(16)).join(':')}::/${bits}`

/**
 * IPv4: the address. IPv6: its /64 (one host or one network's hosts: the smallest unit one is given) at the limit,
 * and its /48 at WIDE_FACTOR times it. An IPv4-mapped IPv6 address is its IPv4 address.
 */
export function bucketsOf (address: string, limit: number): Bucket[] {
  if (isIPv4(address)) return [{ key: address, threshold: limit }]
  const groups = ipv6Groups(address)
  if (groups === undefined) return [{ key: address, threshold: limit }]
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    const [high = 0, low = 0] = groups.slice(6)
    return [{ key: `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`, threshold: limit }]
  }
  return [{ key: prefix(groups, 64), threshold: limit }, { key: prefix(groups, 48), threshold: limit * WIDE_FACTOR }]
}

interface Entry { count: number, resetAt: number, threshold: number }

/**
 * Fixed-window counters for at most `capacity` buckets. When full, a new bucket first takes the place of one whose
 * window has ended, else of the least-failed one that is not limited (the oldest of those). Limited buckets are never
 * given up before their window ends: when all are limited, new buckets share one overflow counter instead, which
 * limits them together (a token verified before is still served: the limit only withholds signature checks).
 */
export class FailureTable {
  /** In order of window start: the windows have one length, so those that end first come first. */
  private readonly entries = new Map<string, Entry>()
  /** Buckets not limited, by count; each set in order of arrival at that count. */
  private readonly byCount = new Map<number, Set<string>>()
  private overflow: Entry | undefined

  constructor (private readonly options: { capacity: number, windowMs: number, overflowThreshold: number }) {}

  get size (): number { return this.entries.size }

  /** Milliseconds until every limiting window of these buckets has ended; 0 when none limits. */
  limitedFor (buckets: readonly Bucket[], now: number): number {
    let ms = 0
    let untracked = false
    for (const { key } of buckets) {
      const entry = this.live(key, now)
      if (entry === undefined) untracked = true
      else if (entry.count >= entry.threshold) ms = Math.max(ms, entry.resetAt - now)
    }
    const overflow = this.overflow
    if (untracked && overflow !== undefined && overflow.resetAt > now && overflow.count >= overflow.threshold) ms = Math.max(ms, overflow.resetAt - now)
    return ms
  }

  /** Counts one failure in each bucket. */
  fail (buckets: readonly Bucket[], now: number): void {
    let untracked = false
    for (const bucket of buckets) {
      const entry = this.live(bucket.key, now)
      if (entry !== undefined) this.increment(bucket.key, entry)
      else if (!this.insert(bucket, now)) untracked = true
    }
    if (untracked) {
      if (this.overflow === undefined || this.overflow.resetAt <= now) {
        this.overflow = { count: 0, resetAt: now + this.options.windowMs, threshold: this.options.overflowThreshold }
      }
      this.overflow.count++
    }
  }

  /** The bucket's entry while its window runs; an ended one is removed. */
  private live (key: string, now: number): Entry | undefined {
    const entry = this.entries.get(key)
    if (entry === undefined || entry.resetAt > now) return entry
    this.remove(key, entry)
    return undefined
  }

  private remove (key: string, entry: Entry): void {
    this.entries.delete(key)
    this.unindex(key, entry.count)
  }

  private unindex (key: string, count: number): void {
    const set = this.byCount.get(count)
    if (set === undefined) return
    set.delete(key)
    if (set.size === 0) this.byCount.delete(count)
  }

  private index (key: string, entry: Entry): void {
    if (entry.count >= entry.threshold) return
    const set = this.byCount.get(entry.count) ?? new Set<string>()
    set.add(key)
    this.byCount.set(entry.count, set)
  }

  private increment (key: string, entry: Entry): void {
    this.unindex(key, entry.count)
    entry.count++
    this.index(key, entry)
  }

  /** Makes room if needed; false when every bucket kept is limited. */
  private insert (bucket: Bucket, now: number): boolean {
    if (this.entries.size >= this.options.capacity) {
      for (const [key, entry] of this.entries) {
        if (entry.resetAt > now) break
        this.remove(key, entry)
      }
    }
    if (this.entries.size >= this.options.capacity) {
      const victim = this.leastFailed()
      if (victim === undefined) return false
      const entry = this.entries.get(victim)
      if (entry !== undefined) this.remove(victim, entry)
    }
    const entry = { count: 0, resetAt: now + this.options.windowMs, threshold: bucket.threshold }
    this.entries.set(bucket.key, entry)
    this.increment(bucket.key, entry)
    return true
  }

  private leastFailed (): string | undefined {
    let least: number | undefined
    for (const count of this.byCount.keys()) if (least === undefined || count < least) least = count
    if (least === undefined) return undefined
    return this.byCount.get(least)?.values().next().value
  }
}
