// The failed-authentication count as pure logic: IPv6 addresses read in every textual form, the buckets an address
// counts in (a /48 cannot rotate its /64s to escape), and the bounded table (a flood of new addresses neither grows
// it nor evicts the addresses it limits), against a plain reference model.
import fc from 'fast-check'
import t from 'tap'
import { bucketsOf, FailureTable, ipv6Groups, WIDE_FACTOR, type Bucket } from '../../src/auth/failure-table.js'

const LIMIT = 20
const WINDOW = 60_000
const group = fc.integer({ min: 0, max: 0xffff })
const groups8 = fc.array(group, { minLength: 8, maxLength: 8 })

/** Every way of writing the address: full, without leading zeros, uppercase, each run of zeros compressed, an IPv4 tail. */
function spellings (g: number[]): string[] {
  const hex = g.map((n) => n.toString(16))
  const out = [g.map((n) => n.toString(16).padStart(4, '0')).join(':'), hex.join(':'), hex.join(':').toUpperCase()]
  for (let start = 0; start < 8; start++) {
    for (let end = start + 1; end <= 8; end++) {
      if (g.slice(start, end).every((n) => n === 0)) out.push(`${hex.slice(0, start).join(':')}::${hex.slice(end).join(':')}`)
    }
  }
  const [x = 0, y = 0] = g.slice(6)
  out.push(`${hex.slice(0, 6).join(':')}:${x >> 8}.${x & 255}.${y >> 8}.${y & 255}`)
  return out
}

t.test('ipv6Groups reads every spelling of an address as the same eight groups', async (t) => {
  fc.assert(fc.property(groups8, (g) => spellings(g).every((text) => JSON.stringify(ipv6Groups(text)) === JSON.stringify(g))), { numRuns: 500 })
  t.same(ipv6Groups('fe80::1%eth0'), [0xfe80, 0, 0, 0, 0, 0, 0, 1], 'a zone id is dropped')
  t.same(ipv6Groups('::'), [0, 0, 0, 0, 0, 0, 0, 0])
  for (const text of ['127.0.0.1', 'x', '1::2::3', '']) t.equal(ipv6Groups(text), undefined, `${JSON.stringify(text)} is not IPv6`)
})

t.test('buckets: IPv4 alone; IPv6 per /64 at the limit and per /48 at WIDE_FACTOR times it; IPv4-mapped as IPv4', async (t) => {
  t.same(bucketsOf('192.0.2.7', LIMIT), [{ key: '192.0.2.7', threshold: LIMIT }])
  t.same(bucketsOf('::ffff:192.0.2.7', LIMIT), [{ key: '192.0.2.7', threshold: LIMIT }])
  t.same(bucketsOf('::ffff:c000:207', LIMIT), [{ key: '192.0.2.7', threshold: LIMIT }])
  t.same(bucketsOf('2001:DB8:0:1:a:b:c:d', LIMIT), [
    { key: '2001:db8:0:1::/64', threshold: LIMIT },
    { key: '2001:db8:0::/48', threshold: LIMIT * WIDE_FACTOR }
  ])
  fc.assert(fc.property(groups8, groups8, (a, b) => {
    const same = (x: Bucket[], y: Bucket[], i: number): boolean => x[i]?.key === y[i]?.key
    const mapped = (g: number[]): boolean => g.slice(0, 5).every((n) => n === 0) && g[5] === 0xffff
    if (mapped(a) || mapped(b)) return true
    const [x, y] = [bucketsOf(spellings(a)[1]!, LIMIT), bucketsOf(spellings(b)[3] ?? spellings(b)[0]!, LIMIT)]
    return same(x, y, 0) === (a.slice(0, 4).join() === b.slice(0, 4).join()) && same(x, y, 1) === (a.slice(0, 3).join() === b.slice(0, 3).join())
  }), { numRuns: 1000 })
})

/** An IPv6 address in the /48 `site`, in its /64 number `net`, host `host`. */
const inSite = (site: number[], net: number, host: number): string => `${site.map((n) => n.toString(16)).join(':')}:${net.toString(16)}::${host.toString(16)}`

t.test('a /48 rotating its /64s is limited after WIDE_FACTOR times the limit, every address in it; other /48s are not', async (t) => {
  const site = fc.array(group, { minLength: 3, maxLength: 3 })
  fc.assert(fc.property(site, fc.uniqueArray(group, { minLength: LIMIT * WIDE_FACTOR, maxLength: LIMIT * WIDE_FACTOR }), group, (s, nets, other) => {
    const table = new FailureTable({ capacity: 10_000, windowMs: WINDOW, overflowThreshold: LIMIT })
    for (const [i, net] of nets.entries()) {
      if (table.limitedFor(bucketsOf(inSite(s, net, 1), LIMIT), 1000 + i) !== 0) return false
      table.fail(bucketsOf(inSite(s, net, 1), LIMIT), 1000 + i)
    }
    const elsewhere = [...s.slice(0, 2), (s[2]! + 1) & 0xffff]
    return table.limitedFor(bucketsOf(inSite(s, other, 7), LIMIT), 2000) > 0 &&
      table.limitedFor(bucketsOf(inSite(elsewhere, other, 7), LIMIT), 2000) === 0
  }), { numRuns: 30 })
})

t.test('one /64 is limited after the limit, its /48 neighbours are not', async (t) => {
  const table = new FailureTable({ capacity: 100, windowMs: WINDOW, overflowThreshold: LIMIT })
  for (let i = 0; i < LIMIT; i++) table.fail(bucketsOf(`2001:db8:1:2::${i + 1}`, LIMIT), 0)
  t.equal(table.limitedFor(bucketsOf('2001:db8:1:2::ffff', LIMIT), 0), WINDOW, 'another host of the /64: limited, for the window')
  t.equal(table.limitedFor(bucketsOf('2001:db8:1:3::1', LIMIT), 0), 0, 'the next /64: not limited')
  t.equal(table.limitedFor(bucketsOf('2001:db8:1:2::1', LIMIT), WINDOW), 0, 'the window ends: served again')
})

t.test('a flood of new addresses neither grows the table past its capacity nor evicts an address it limits', async (t) => {
  const capacity = 50
  fc.assert(fc.property(fc.uniqueArray(fc.tuple(fc.integer({ min: 1, max: 254 }), fc.integer({ min: 1, max: 254 })), { minLength: capacity + 1, maxLength: 400, size: 'max' }), fc.integer({ min: 0, max: WINDOW - 1 }), (flood, spread) => {
    const table = new FailureTable({ capacity, windowMs: WINDOW, overflowThreshold: LIMIT })
    const limited = bucketsOf('198.51.100.1', LIMIT)
    for (let i = 0; i < LIMIT; i++) table.fail(limited, 0)
    const almost = bucketsOf('198.51.100.2', LIMIT)
    for (let i = 0; i < LIMIT - 1; i++) table.fail(almost, 0)
    for (const [i, [a, b]] of flood.entries()) {
      table.fail(bucketsOf(`10.0.${a}.${b}`, LIMIT), Math.floor(spread * i / flood.length))
      if (table.size > capacity) return false
    }
    // The one with 19 failures is the most-failed of those not limited: new addresses with one failure go first.
    if (table.limitedFor(limited, spread) === 0) return false
    table.fail(almost, spread)
    return table.limitedFor(almost, spread) > 0
  }), { numRuns: 200 })
})

t.test('when every bucket kept is limited, new addresses share one overflow count and are limited together', async (t) => {
  const table = new FailureTable({ capacity: 3, windowMs: WINDOW, overflowThreshold: 2 })
  for (const a of ['192.0.2.1', '192.0.2.2', '192.0.2.3']) for (let i = 0; i < 2; i++) table.fail(bucketsOf(a, 2), 0)
  t.equal(table.limitedFor(bucketsOf('192.0.2.9', 2), 0), 0, 'a new address: not limited yet')
  table.fail(bucketsOf('192.0.2.4', 2), 1)
  table.fail(bucketsOf('192.0.2.5', 2), 2)
  t.equal(table.size, 3, 'none of the limited was given up')
  t.ok(table.limitedFor(bucketsOf('192.0.2.9', 2), 3) > 0, 'the overflow count is used up: an address the table does not hold is limited')
  t.ok(table.limitedFor(bucketsOf('192.0.2.1', 2), 3) > 0, 'the limited are still limited')
  t.equal(table.limitedFor(bucketsOf('192.0.2.9', 2), WINDOW + 3), 0, 'after the window, nothing is limited')
  table.fail(bucketsOf('192.0.2.9', 2), WINDOW + 3)
  t.equal(table.size, 1, 'the ended windows made room')
})

t.test('against a reference model (no eviction): limited exactly when a bucket has its threshold of failures in its window', async (t) => {
  const address = fc.oneof(
    fc.constantFrom('192.0.2.1', '192.0.2.2', '::ffff:192.0.2.1'),
    fc.tuple(fc.constantFrom('2001:db8:0', '2001:db8:1'), fc.integer({ min: 0, max: 3 }), fc.integer({ min: 1, max: 3 })).map(([s, n, h]) => `${s}:${n}::${h}`)
  )
  const step = fc.record({ address, dt: fc.integer({ min: 0, max: 700 }), fail: fc.boolean() })
  fc.assert(fc.property(fc.array(step, { maxLength: 300, size: 'max' }), (steps) => {
    const limit = 3
    const windowMs = 2000
    const table = new FailureTable({ capacity: 1000, windowMs, overflowThreshold: limit })
    const model = new Map<string, { count: number, start: number }>()
    let now = 0
    for (const { address, dt, fail } of steps) {
      now += dt
      const buckets = bucketsOf(address, limit)
      const current = (b: Bucket): { count: number, start: number } | undefined => {
        const m = model.get(b.key)
        return m !== undefined && m.start + windowMs > now ? m : undefined
      }
      const expected = Math.max(0, ...buckets.map((b) => {
        const m = current(b)
        return m !== undefined && m.count >= b.threshold ? m.start + windowMs - now : 0
      }))
      if (table.limitedFor(buckets, now) !== expected) return false
      if (fail) {
        for (const b of buckets) {
          const m = current(b)
          model.set(b.key, m === undefined ? { count: 1, start: now } : { count: m.count + 1, start: m.start })
        }
        table.fail(buckets, now)
      }
    }
    return true
  }), { numRuns: 300 })
})
