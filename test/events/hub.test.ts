// The hub's rules with an injected `produce` (no database: what it reads is not the point here, when it reads is).
// The database-backed behaviour is in test/routes/events.test.ts.
import t from 'tap'
import type { HeartbeatEvent } from '../../src/domain/events.js'
import { DELIVERY_SLICE, EventHub, type EventSink } from '../../src/events/hub.js'
import { delay, eventually } from '../helpers/wait.js'

const INTERVAL_MS = 20

function event (id: string): HeartbeatEvent {
  return { id, data: { heartbeat: null, liveness: { status: 'fail', state: 'unknown', checked_at: '2026-02-15T12:00:00.000Z', last_poll_at: null, next_poll_at: null, seconds_since_last_poll: null, seconds_overdue: null, grace_seconds: null } } }
}

class RecordingSink implements EventSink {
  frames: string[] = []
  ended = false
  write (frame: string): void { this.frames.push(frame) }
  end (): void { this.ended = true }
  get ids (): string[] { return this.frames.filter((f) => f.startsWith('id: ')).map((f) => f.slice(4, f.indexOf('\n'))) }
}

/** A produce whose answers the test controls: each call waits for `release`, then returns `next`. */
function controlledProduce () {
  let next: HeartbeatEvent | Error = event('a')
  let gate: Promise<void> = Promise.resolve()
  let open: () => void = () => {}
  let calls = 0
  return {
    produce: async (): Promise<HeartbeatEvent> => {
      calls++
      await gate
      if (next instanceof Error) throw next
      return next
    },
    set: (value: HeartbeatEvent | Error) => { next = value },
    hold: () => { gate = new Promise((resolve) => { open = resolve }) },
    release: () => { open(); gate = Promise.resolve() },
    calls: () => calls
  }
}

function hubWith (control: ReturnType<typeof controlledProduce>, errors: unknown[] = [], keepAliveMs = 60_000): EventHub {
  const hub = new EventHub({ intervalMs: INTERVAL_MS, keepAliveMs, produce: control.produce, onError: (error) => { errors.push(error) } })
  t.teardown(async () => { await hub.close() })
  return hub
}

t.test('a client that arrives while a read is in flight gets that read\'s event, with no read of its own', async (t) => {
  const control = controlledProduce()
  const hub = hubWith(control)
  control.hold()
  const first = new RecordingSink()
  const second = new RecordingSink()
  hub.subscribe(first)
  hub.subscribe(second)
  t.equal(control.calls(), 1)
  control.release()
  await eventually(() => first.ids.length === 1 && second.ids.length === 1)
  t.same([first.ids, second.ids], [['a'], ['a']])
})

t.test('a failing read is reported, sends nothing, and polling goes on', async (t) => {
  const control = controlledProduce()
  const errors: unknown[] = []
  const hub = hubWith(control, errors)
  control.set(new Error('permission denied for table'))
  const sink = new RecordingSink()
  hub.subscribe(sink)
  await eventually(() => errors.length >= 2, 5000, 'two failed reads')
  t.same(sink.frames, [])
  control.set(event('b'))
  await eventually(() => sink.ids.length === 1)
  t.same(sink.ids, ['b'])
  t.ok(hub.stats().polling)
})

t.test('a read that finishes after the last client left is dropped, and polling stays stopped', async (t) => {
  const control = controlledProduce()
  const hub = hubWith(control)
  control.hold()
  const sink = new RecordingSink()
  const leave = hub.subscribe(sink)
  leave()
  t.same(hub.stats(), { clients: 0, polling: false, reads: 1 })
  control.release()
  await delay(INTERVAL_MS * 5)
  t.same(sink.frames, [], 'nothing written to a client that left')
  t.equal(control.calls(), 1, 'no further read')
  t.notOk(hub.stats().polling)
  leave()
  t.equal(hub.stats().clients, 0, 'leaving twice is harmless')
})

t.test('after a stop, a new client gets a fresh read, not the state from before', async (t) => {
  const control = controlledProduce()
  const hub = hubWith(control)
  const first = new RecordingSink()
  const leave = hub.subscribe(first)
  await eventually(() => first.ids.length === 1)
  leave()
  control.set(event('c'))
  control.hold()
  const later = new RecordingSink()
  hub.subscribe(later)
  t.same(later.frames, [], 'not served the state remembered from before the stop')
  control.release()
  await eventually(() => later.ids.length === 1)
  t.same(later.ids, ['c'])
})

t.test('keep-alive comments reach every client', async (t) => {
  const control = controlledProduce()
  const hub = hubWith(control, [], 30)
  const sinks = [new RecordingSink(), new RecordingSink()]
  for (const sink of sinks) hub.subscribe(sink)
  await eventually(() => sinks.every((sink) => sink.frames.includes(': keep-alive\n\n')))
  t.pass('both got one')
})

t.test('close ends every stream, waits for the read in flight, and ends later subscribers at once', async (t) => {
  const control = controlledProduce()
  const hub = hubWith(control)
  control.hold()
  const sink = new RecordingSink()
  hub.subscribe(sink)
  let closed = false
  const closing = hub.close().then(() => { closed = true })
  t.ok(sink.ended, 'ended at once')
  await delay(INTERVAL_MS * 2)
  t.notOk(closed, 'still waiting for the read in flight')
  control.release()
  await closing
  t.same(sink.frames, [], 'the late read is not sent')
  const late = new RecordingSink()
  hub.subscribe(late)
  t.ok(late.ended)
  t.same(hub.stats(), { clients: 0, polling: false, reads: 1 })
})

t.test('many clients: each gets one frame of the event, written in slices with the event loop free between them', async (t) => {
  const control = controlledProduce()
  const hub = hubWith(control)
  const sinks = Array.from({ length: 2 * DELIVERY_SLICE + 7 }, () => new RecordingSink())
  control.hold()
  for (const sink of sinks) hub.subscribe(sink)
  // A client that leaves while the broadcast is under way gets nothing more.
  const leaving = new RecordingSink()
  const leave = hub.subscribe(leaving)
  let laterWork = -1
  control.release()
  // Queued before the hub's first pause: it runs once the first slice is written (in the read's own turn).
  setImmediate(() => { laterWork = sinks.filter((sink) => sink.ids.length === 1).length; leave() })
  await eventually(() => sinks.every((sink) => sink.ids.length === 1))
  t.ok(laterWork >= DELIVERY_SLICE && laterWork < sinks.length, `other work ran part-way (after ${laterWork} of ${sinks.length} clients)`)
  t.same(leaving.ids, [], 'the client that left in between got nothing')
  t.ok(sinks.every((sink) => sink.frames[0] === sinks[0]?.frames[0]), 'the same frame for everyone')
})
