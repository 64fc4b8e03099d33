// Checks every relative link and #anchor in the given Markdown files (default: README.md, CONTRIBUTING.md and docs/*.md): the file
// or directory must exist, and an anchor must be a heading of the target page, slugged as GitHub does. Links to
// other sites are not fetched: CI runs offline. Prints one line per broken link and exits 1 if there is any.
// `--pending FILE` (repeatable) names a page another branch is still writing: links to it pass while it is missing,
// and are checked like any other once it exists.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export interface BrokenLink { file: string, line: number, target: string, reason: string }

/** GitHub's heading anchor: lower case, punctuation dropped (letters, digits, `-`, `_` and spaces kept), spaces to `-`. */
export function slug (heading: string): string {
  return heading.trim().toLowerCase().replace(/[^\p{L}\p{N}\p{M}\- _]/gu, '').replace(/ /g, '-')
}

/** The Markdown text with fenced code blocks blanked out (lines kept, so line numbers stay right). */
function withoutFences (text: string): string[] {
  let fence: string | undefined
  return text.split('\n').map((line) => {
    const marker = /^\s{0,3}(`{3,}|~{3,})/.exec(line)?.[1]
    if (fence === undefined && marker !== undefined) { fence = marker; return '' }
    if (fence !== undefined) {
      if (marker !== undefined && marker[0] === fence[0] && marker.length >= fence.length) fence = undefined
      return ''
    }
    return line
  })
}

/** The anchors a page offers: its headings' slugs (repeats get -1, -2, … as on GitHub) and explicit `id`/`name`s. */
export function anchorsOf (text: string): Set<string> {
  const anchors = new Set<string>()
  const seen = new Map<string, number>()
  for (const line of withoutFences(text)) {
    const heading = /^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$/.exec(line)?.[1]
    if (heading !== undefined) {
      const base = slug(heading.replace(/\[([^\]]*)\]\([^)]*\)/g, '$1'))
      const count = seen.get(base) ?? 0
      seen.set(base, count + 1)
      anchors.add(count === 0 ? base : `${base}-${count}`)
    }
    for (const match of line.matchAll(/<a\s[^>]*(?:id|name)="([^"]+)"/g)) anchors.add(match[1] ?? '')
  }
  return anchors
}

/** Every `[text](target)` link outside code, with its line number. */
export function linksOf (text: string): Array<{ line: number, target: string }> {
  const links: Array<{ line: number, target: string }> = []
  withoutFences(text).forEach((line, index) => {
    const prose = line.replace(/`[^`]*`/g, '')
    for (const match of prose.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
      links.push({ line: index + 1, target: match[1] ?? '' })
    }
  })
  return links
}

export function checkFiles (files: string[], pending: string[] = []): BrokenLink[] {
  const broken: BrokenLink[] = []
  const anchorCache = new Map<string, Set<string>>()
  const anchorsIn = (file: string): Set<string> => {
    let anchors = anchorCache.get(file)
    if (anchors === undefined) {
      anchors = anchorsOf(readFileSync(file, 'utf8'))
      anchorCache.set(file, anchors)
    }
    return anchors
  }
  for (const file of files) {
    for (const { line, target } of linksOf(readFileSync(file, 'utf8'))) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith('//')) continue
      const [pathPart = '', anchor] = target.split('#', 2)
      const resolved = pathPart === '' ? file : path.resolve(path.dirname(file), decodeURI(pathPart))
      const report = (reason: string): void => { broken.push({ file, line, target, reason }) }
      if (!existsSync(resolved)) {
        if (!pending.includes(resolved)) report('no such file')
        continue
      }
      if (anchor === undefined || anchor === '') continue
      if (statSync(resolved).isDirectory() || !resolved.endsWith('.md')) { report('an anchor into a file that is not Markdown'); continue }
      if (!anchorsIn(resolved).has(decodeURIComponent(anchor).toLowerCase())) report(`no heading #${anchor}`)
    }
  }
  return broken
}

export function defaultFiles (root: string): string[] {
  const docs = path.join(root, 'docs')
  const pages = existsSync(docs) ? readdirSync(docs).filter((name) => name.endsWith('.md')).sort().map((name) => path.join(docs, name)) : []
  const contributing = path.join(root, 'CONTRIBUTING.md')
  return [path.join(root, 'README.md'), ...(existsSync(contributing) ? [contributing] : []), ...pages]
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
  const args = process.argv.slice(2)
  const pending = args.flatMap((arg, i) => args[i - 1] === '--pending' ? [path.resolve(arg)] : [])
  const named = args.filter((arg, i) => arg !== '--pending' && args[i - 1] !== '--pending').map((file) => path.resolve(file))
  const files = named.length > 0 ? named : defaultFiles(root)
  const broken = checkFiles(files, pending)
  for (const page of pending) if (!existsSync(page)) console.log(`${path.relative(process.cwd(), page)}: not there yet (--pending): links to it pass`)
  for (const link of broken) console.log(`${path.relative(process.cwd(), link.file)}:${link.line}: ${link.target}: ${link.reason}`)
  const count = files.reduce((sum, file) => sum + linksOf(readFileSync(file, 'utf8')).length, 0)
  console.log(`${files.length} files, ${count} links, ${broken.length} broken`)
  process.exitCode = broken.length === 0 ? 0 : 1
}
