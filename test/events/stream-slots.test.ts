// The stream caps' counting and the default total, as pure functions. Over HTTP: test/routes/event-stream-caps.test.ts.
import t from 'tap'
import { addressKey, defaultTotalStreams, parseOpenFileLimit, StreamSlots } from '../../src/events/stream-slots.js'

t.test('addressKey: IPv4 itself (also IPv4-mapped), IPv6 by its /64', async (t) => {
  t.equal(addressKey('203.0.113.5'), '203.0.113.5')
  t.equal(addressKey('::ffff:203.0.113.5'), '203.0.113.5')
  t.equal(addressKey('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64')
  t.equal(addressKey('2001:0DB8:0001:0002:ffff:1:2:3'), '2001:db8:1:2::/64', 'leading zeros and case do not make another key')
  t.equal(addressKey('2001:db8::1'), '2001:db8:0:0::/64')
  t.equal(addressKey('::1'), '0:0:0:0::/64')
  t.equal(addressKey('fe80::1%eth0'), 'fe80:0:0:0::/64')
  t.equal(addressKey('not-an-address'), 'not-an-address')
})

t.test('StreamSlots: principal, then address, then total; a release frees each count once', async (t) => {
  const slots = new StreamSlots({ perPrincipal: 2, perAddress: 3, total: 4 })
  const take = (principal: string, ip: string): () => void => {
    const admission = slots.acquire(principal, ip)
    if (!admission.admitted) throw new Error(`refused: ${JSON.stringify(admission.refusal)}`)
    return admission.release
  }
  const a1 = take('sub:a', '10.0.0.1')
  take('sub:a', '10.0.0.2')
  t.same(slots.acquire('sub:a', '10.0.0.3'), { admitted: false, refusal: { scope: 'principal', limit: 2 } })
  take('sub:b', '10.0.0.1')
  take('sub:c', '10.0.0.1')
  t.same(slots.acquire('sub:d', '10.0.0.1'), { admitted: false, refusal: { scope: 'address', limit: 3 } })
  t.same(slots.acquire('sub:d', '10.0.0.9'), { admitted: false, refusal: { scope: 'total', limit: 4 } })
  t.same(slots.stats(), { open: 4, principals: 3, addresses: 2 })

  a1()
  a1()
  t.same(slots.stats(), { open: 3, principals: 3, addresses: 2 }, 'a second release of the same slot changes nothing')
  t.equal(slots.acquire('sub:a', '10.0.0.1').admitted, true, 'the freed slot is taken again')
  t.same(slots.acquire('sub:x', '2001:db8:1:2::7'), { admitted: false, refusal: { scope: 'total', limit: 4 } })
})

t.test('StreamSlots forgets principals and addresses with nothing open', async (t) => {
  const slots = new StreamSlots({ perPrincipal: 5, perAddress: 5, total: 100 })
  const releases = Array.from({ length: 50 }, (_, i) => slots.acquire(`sub:${i}`, `2001:db8:${i}::1`))
  for (const admission of releases) if (admission.admitted) admission.release()
  t.same(slots.stats(), { open: 0, principals: 0, addresses: 0 })
})

t.test('the default total: half the soft open-file limit, at most 10,000; 1000 when it cannot be read', async (t) => {
  const limits = [
    'Limit                     Soft Limit           Hard Limit           Units     ',
    'Max stack size            8388608              unlimited            bytes     ',
    'Max open files            1024                 524288               files     ',
    'Max locked memory         8388608              8388608              bytes     '
  ].join('\n')
  t.equal(parseOpenFileLimit(limits), 1024)
  t.equal(parseOpenFileLimit(limits.replace('1024      ', 'unlimited ')), undefined)
  t.equal(parseOpenFileLimit(''), undefined)
  t.equal(defaultTotalStreams(1024), 512)
  t.equal(defaultTotalStreams(65536), 10_000)
  t.equal(defaultTotalStreams(1), 1)
  t.equal(defaultTotalStreams(undefined), 1000)
})
