// The status page's script, stylesheet and icon: files under public/status/, read once at start and served from
// memory. Their URLs carry a hash of their content, so a browser may keep them for good and still never runs an old one.
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'

/** public/status/, from src/status/ and from dist/status/ alike. */
const ASSET_DIR = new URL('../../public/status/', import.meta.url)

export interface Asset {
  /** The route, relative to the site root without the leading slash: "status/status.js". */
  path: string
  /** The path with ?v=<hash>, as the page links it. */
  href: string
  type: string
  body: Buffer
}

const FILES = [
  { name: 'status.js', type: 'text/javascript; charset=utf-8' },
  { name: 'status.css', type: 'text/css; charset=utf-8' },
  { name: 'favicon.svg', type: 'image/svg+xml' }
] as const

export type AssetName = typeof FILES[number]['name']

export async function loadAssets (): Promise<Record<AssetName, Asset>> {
  const entries = await Promise.all(FILES.map(async ({ name, type }) => {
    const body = await readFile(new URL(name, ASSET_DIR))
    const hash = createHash('sha256').update(body).digest('base64url').slice(0, 12)
    const path = `status/${name}`
    return [name, { path, href: `${path}?v=${hash}`, type, body }] as const
  }))
  return Object.fromEntries(entries) as Record<AssetName, Asset>
}
