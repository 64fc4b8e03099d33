// Keeps the status page (src/status/page.ts) current without reloading: asks /heartbeat/liveness every
// data-refresh-seconds and counts the relative times every second, on the database's clock (the page's own
// checked_at), so that a browser whose clock is off still shows the right ages. Served as a file: the page's
// Content-Security-Policy allows no inline script. Text is only ever set with textContent, never as HTML.
'use strict'
;(() => {
  const main = document.querySelector('main')
  if (main === null) return
  const refreshMs = Math.max(1, Number(main.dataset.refreshSeconds) || 5) * 1000
  /** @type {Record<string, string>} */
  const words = JSON.parse(main.dataset.words || '{}')
  /** @type {Record<string, string>} */
  const symbols = JSON.parse(main.dataset.symbols || '{}')
  const byId = (id) => document.getElementById(id)
  const verdict = byId('verdict')
  const refresh = byId('refresh')

  // Database time minus this browser's time, taken from the last verdict's checked_at.
  const checked = byId('checked')
  let offsetMs = checked !== null && checked.getAttribute('datetime') !== null ? Date.parse(checked.getAttribute('datetime')) - Date.now() : 0
  let shownState = verdict === null ? '' : verdict.dataset.state

  // The same wording as src/domain/verdict-display.ts.
  const spoken = (seconds) => {
    const s = Math.floor(Math.abs(seconds))
    if (s < 60) return `${s} s`
    if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`
    if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`
    return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`
  }
  const relative = (seconds) => seconds <= 0 ? `${spoken(seconds)} ago` : `in ${spoken(seconds)}`
  const utc = (iso) => iso.replace('T', ' ').replace(/\.\d+Z$|Z$/, ' UTC')
  const toneOf = (liveness) => liveness.state === 'unknown' ? 'unknown' : liveness.status === 'pass' ? 'good' : liveness.status === 'warn' ? 'warn' : 'bad'
  const capitalised = (text) => text.charAt(0).toUpperCase() + text.slice(1)

  const tick = () => {
    const now = Date.now() + offsetMs
    for (const time of document.querySelectorAll('time[data-relative]')) {
      const at = Date.parse(time.getAttribute('datetime') || '')
      if (!Number.isNaN(at)) time.textContent = relative((at - now) / 1000)
    }
  }

  /** Replaces a fact's content: a counting <time> with the exact moment beside it, or a word for "none". */
  const setMoment = (id, iso, none) => {
    const old = byId(id)
    if (old === null) return
    const parent = old.parentElement
    if (parent === null) return
    const exact = old.nextElementSibling !== null && old.nextElementSibling.classList.contains('exact') ? old.nextElementSibling : null
    if (iso === null) {
      const span = document.createElement('span')
      span.id = id
      span.className = 'none'
      span.textContent = none
      old.replaceWith(span)
      if (exact !== null) exact.remove()
      return
    }
    const time = document.createElement('time')
    time.id = id
    time.dateTime = iso
    time.dataset.relative = ''
    old.replaceWith(time)
    const label = exact ?? document.createElement('span')
    label.className = 'exact'
    label.textContent = utc(iso)
    if (exact === null) time.after(' ', label)
  }

  const show = (liveness) => {
    offsetMs = Date.parse(liveness.checked_at) - Date.now()
    const tone = toneOf(liveness)
    const word = words[liveness.state] || liveness.state
    if (verdict !== null) {
      verdict.className = `verdict tone-${tone}`
      verdict.dataset.state = liveness.state
    }
    byId('symbol').textContent = symbols[tone] || ''
    byId('state').textContent = capitalised(word)
    byId('status').textContent = liveness.status
    const output = byId('output')
    output.textContent = liveness.output || ''
    output.hidden = liveness.output === undefined
    document.title = `${liveness.demo === true ? 'Demo: ' : ''}Scheduler ${word} · eva-heartbeat-api`
    setMoment('last-poll', liveness.last_poll_at, 'none recorded')
    setMoment('next-poll', liveness.next_poll_at, 'not announced')
    setMoment('checked', liveness.checked_at, '')
    byId('grace').textContent = liveness.grace_seconds === null ? 'not applicable (no row to judge)' : `${liveness.grace_seconds} s after the expected poll, then stale`
    if (liveness.state !== shownState) {
      // Only what this page saw: the service itself keeps no history.
      const since = byId('since')
      since.textContent = `Changed from ${words[shownState] || shownState} to ${word} `
      const time = document.createElement('time')
      time.dateTime = liveness.checked_at
      time.dataset.relative = ''
      since.append(time, ` (seen by this page at ${utc(liveness.checked_at)}).`)
      shownState = liveness.state
    }
    tick()
  }

  const note = (text, failed) => {
    if (refresh === null) return
    refresh.textContent = text
    refresh.classList.toggle('failed', failed)
  }

  const poll = async () => {
    try {
      const response = await fetch('heartbeat/liveness', { cache: 'no-store', headers: { accept: 'application/health+json' } })
      if (!(response.headers.get('content-type') || '').startsWith('application/health+json')) throw new Error(`HTTP ${response.status}`)
      show(await response.json())
      note(`Updates itself every ${refreshMs / 1000} s.`, false)
    } catch (error) {
      note(`Could not check again (${error instanceof Error ? error.message : 'no answer'}): the verdict above may be out of date. Trying again in ${refreshMs / 1000} s.`, true)
    }
  }

  const loop = async () => {
    if (document.visibilityState !== 'hidden') await poll()
    setTimeout(loop, refreshMs)
  }

  note(`Updates itself every ${refreshMs / 1000} s.`, false)
  setInterval(tick, 1000)
  document.addEventListener('visibilitychange', () => { if (document.visibilityState === 'visible') void poll() })
  setTimeout(loop, refreshMs)
})()
