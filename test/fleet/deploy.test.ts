// The fleet's deploy files, checked without a cluster or a Docker engine: the Kubernetes manifests against the
// Kubernetes API's own schemas (kubernetes-models: its OpenAPI schemas compiled to JSON-schema validators, for values,
// types and required fields; and its TypeScript types, for fields Kubernetes does not know, which the schemas let
// through), what they must say for this service, `kubectl kustomize`; the compose override as the compose file is
// checked; HAProxy's configuration with `haproxy -c`.
import { spawnSync } from 'node:child_process'
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { BlockList, isIP } from 'node:net'
import path from 'node:path'
import { Service } from 'kubernetes-models/v1'
import { Deployment } from 'kubernetes-models/apps/v1'
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1'
import t from 'tap'
import { parseAllDocuments, parse as parseYaml } from 'yaml'
import { findSbin, findTool, needs } from '../helpers/tools.js'
import { ROOT } from '../helpers/server-process.js'
import { HAPROXY_CONFIG } from '../helpers/fleet.js'
import { parseTrustProxy } from '../../src/config.js'

const K8S_DIR = path.join(ROOT, 'deploy/kubernetes')

/** The model class and the TypeScript type (module, interface) for each kind the manifests may hold. */
const KINDS = {
  'apps/v1 Deployment': { model: Deployment, type: ['kubernetes-models/apps/v1/Deployment', 'IDeployment'] },
  'v1 Service': { model: Service, type: ['kubernetes-models/v1/Service', 'IService'] },
  'policy/v1 PodDisruptionBudget': { model: PodDisruptionBudget, type: ['kubernetes-models/policy/v1/PodDisruptionBudget', 'IPodDisruptionBudget'] }
} as const

type Manifest = Record<string, unknown> & { apiVersion: string, kind: string }

async function manifests (): Promise<Array<{ file: string, doc: Manifest }>> {
  const files = (await readdir(K8S_DIR)).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml').sort()
  const all = []
  for (const file of files) {
    for (const doc of parseAllDocuments(await readFile(path.join(K8S_DIR, file), 'utf8'))) {
      if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors.map((e) => e.message).join('; ')}`)
      all.push({ file, doc: doc.toJS() as Manifest })
    }
  }
  return all
}

/** The schema's verdict: undefined when valid, else the validator's message. */
function schemaErrors (doc: Manifest): string | undefined {
  const kind = KINDS[`${doc.apiVersion} ${doc.kind}` as keyof typeof KINDS]
  if (kind === undefined) return `no schema for ${doc.apiVersion} ${doc.kind}`
  try {
    const Model = kind.model
    new Model(doc as never).validate()
    return undefined
  } catch (error) {
    return (error as Error).message
  }
}

/**
 * TypeScript's excess-property check on each manifest as an object literal of its kind's type: a misspelt or
 * misplaced field, at any depth, is an error. Gives tsc's output (empty when every manifest passes).
 */
async function unknownFields (docs: Manifest[]): Promise<string> {
  // Under node_modules so that the file resolves kubernetes-models as the project does.
  const dir = path.join(ROOT, 'node_modules/.cache/eva-k8s-check')
  await mkdir(dir, { recursive: true })
  const lines = docs.map((doc, i) => {
    const [module, name] = KINDS[`${doc.apiVersion} ${doc.kind}` as keyof typeof KINDS].type
    return `import type { ${name} as T${i} } from '${module}'\nexport const m${i}: T${i} = ${JSON.stringify(doc, null, 2)}\n`
  })
  const file = path.join(dir, 'manifests.ts')
  await writeFile(file, lines.join('\n'))
  const tsc = spawnSync(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '--noEmit', '--strict', '--skipLibCheck',
    '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', file], { cwd: ROOT, encoding: 'utf8' })
  await rm(dir, { recursive: true, force: true })
  return tsc.status === 0 ? '' : tsc.stdout + tsc.stderr
}

const docs = await manifests()
const find = <T>(kind: string): T => docs.find((d) => d.doc.kind === kind)?.doc as T

t.test('the Kubernetes manifests are valid for the Kubernetes API: schemas, and no field it does not know', async (t) => {
  t.same(docs.map((d) => d.doc.kind).sort(), ['Deployment', 'PodDisruptionBudget', 'Service'])
  for (const { file, doc } of docs) t.equal(schemaErrors(doc), undefined, `${file}: ${doc.kind} passes the schema`)
  t.equal(await unknownFields(docs.map((d) => d.doc)), '', 'no field that its kind does not have')
})

t.test('the validators can fail: a wrong type, a missing required field, a misspelt field', async (t) => {
  const deployment = find<Manifest & { spec: { replicas: unknown, template: { spec: { containers: Array<Record<string, unknown>> } } } }>('Deployment')
  const wrongType = structuredClone(deployment)
  wrongType.spec.replicas = 'three'
  t.match(schemaErrors(wrongType), /replicas must be integer/)
  const noName = structuredClone(deployment)
  delete noName.spec.template.spec.containers[0]!.name
  t.match(schemaErrors(noName), /containers\/0 must have required property '?name'?/)
  const misspelt = structuredClone(deployment)
  misspelt.spec.template.spec.containers[0]!.readinesProbe = { httpGet: { path: '/readyz', port: 'http' } }
  t.equal(schemaErrors(misspelt), undefined, 'the schemas let an unknown field through')
  t.match(await unknownFields([misspelt]), /readinesProbe/, 'the type check does not')
})

interface Probe { httpGet: { path: string, port: string } }
interface Container {
  name: string
  ports: Array<{ name: string, containerPort: number }>
  env: Array<{ name: string, value?: string, valueFrom?: { secretKeyRef?: { name: string, key: string } } }>
  livenessProbe: Probe
  readinessProbe: Probe
  resources: { requests: { memory: string, cpu: string } }
  lifecycle: { preStop: { exec: { command: string[] } } }
}
interface DeploymentShape {
  metadata: { name: string }
  spec: {
    replicas: number
    selector: { matchLabels: Record<string, string> }
    template: { metadata: { labels: Record<string, string> }, spec: { terminationGracePeriodSeconds: number, containers: Container[] } }
  }
}

t.test('the Deployment: 3 replicas, /livez and /readyz probes, secrets by reference, a grace longer than the shutdown', async (t) => {
  const deployment = find<DeploymentShape>('Deployment')
  const pod = deployment.spec.template
  const container = pod.spec.containers[0]!
  t.equal(deployment.spec.replicas, 3)
  t.equal(container.livenessProbe.httpGet.path, '/livez')
  t.equal(container.readinessProbe.httpGet.path, '/readyz')
  const env = Object.fromEntries(container.env.map((e) => [e.name, e]))
  for (const name of ['DATABASE_URL', 'JWT_SECRET']) {
    t.equal(env[name]?.value, undefined, `${name} is not written in the manifest`)
    t.equal(env[name]?.valueFrom?.secretKeyRef?.name, 'eva-heartbeat-api', `${name} comes from the Secret`)
  }
  t.equal(env.HOST?.value, '0.0.0.0', 'listens beyond loopback, inside its pod')
  // The process's own grace (close-with-grace's delay in src/server.ts), plus the preStop pause before SIGTERM.
  const graceMs = Number(/closeWithGrace\(\{ delay: ([\d_]+)/.exec(await readFile(path.join(ROOT, 'src/server.ts'), 'utf8'))?.[1]?.replaceAll('_', ''))
  t.ok(graceMs > 0, `the shutdown grace is ${graceMs} ms`)
  const preStop = container.lifecycle.preStop.exec.command
  t.same(preStop.slice(0, 1), ['sleep'])
  const preStopSeconds = Number(preStop[1])
  t.ok(pod.spec.terminationGracePeriodSeconds > preStopSeconds + graceMs / 1000,
    `terminationGracePeriodSeconds ${pod.spec.terminationGracePeriodSeconds} > preStop ${preStopSeconds} s + shutdown grace ${graceMs / 1000} s`)
  t.match(container.resources.requests, { memory: /^\d+Mi$/, cpu: /^\d+m$/ })
  // Selectors and ports that point at nothing are valid YAML and a dead Service.
  t.same(deployment.spec.selector.matchLabels, pod.metadata.labels)
  const service = find<{ spec: { selector: Record<string, string>, ports: Array<{ targetPort: string }> } }>('Service')
  t.same(service.spec.selector, pod.metadata.labels, 'the Service selects the pods')
  t.ok(container.ports.some((p) => p.name === service.spec.ports[0]?.targetPort), 'its targetPort names a container port')
  const pdb = find<{ spec: { minAvailable: number, selector: { matchLabels: Record<string, string> } } }>('PodDisruptionBudget')
  t.same(pdb.spec.selector.matchLabels, pod.metadata.labels, 'the PodDisruptionBudget covers the pods')
  t.ok(pdb.spec.minAvailable < deployment.spec.replicas, 'and lets one go at a time')
})

const kubectl = findTool('kubectl')
t.test('kubectl kustomize renders the three objects', needs(kubectl, 'kubectl', 'kubernetes-client'), async (t) => {
  const rendered = spawnSync(kubectl!, ['kustomize', K8S_DIR], { encoding: 'utf8' })
  t.equal(rendered.status, 0, rendered.stderr)
  t.same(parseAllDocuments(rendered.stdout).map((d) => (d.toJS() as Manifest).kind).sort(), ['Deployment', 'PodDisruptionBudget', 'Service'])
})

const compose = findTool('docker-compose') ?? (spawnSync('docker', ['compose', 'version']).status === 0 ? 'docker' : undefined)
t.test('docker-compose.fleet.yml merges with docker-compose.yml and passes the compose check', needs(compose, 'docker-compose', 'docker-compose'), async (t) => {
  const check = spawnSync('bash', ['scripts/check-compose.sh', 'docker-compose.yml', 'docker-compose.fleet.yml'], { cwd: ROOT, encoding: 'utf8' })
  t.equal(check.status, 0, 'scripts/check-compose.sh passes', { output: check.stdout + check.stderr })
  t.match(check.stdout, /ok: \.\/deploy\/haproxy\/haproxy\.cfg/, 'the HAProxy configuration it mounts exists')
})

const haproxy = findSbin('haproxy')
t.test('haproxy -c accepts deploy/haproxy/haproxy.cfg, with the compose defaults and with loopback addresses', needs(haproxy, 'HAProxy', 'haproxy'), async (t) => {
  for (const env of [{}, { EVA_API_1: '127.0.0.1:3001', EVA_API_2: '127.0.0.1:3002', EVA_API_3: '127.0.0.1:3003', HAPROXY_ADMIN_SOCKET: path.join(ROOT, '.tap/none.sock') }]) {
    const check = spawnSync(haproxy!, ['-c', '-f', HAPROXY_CONFIG], { encoding: 'utf8', env: { PATH: process.env.PATH, ...env } })
    t.equal(check.status, 0, `valid with ${JSON.stringify(env)}`, { output: check.stdout + check.stderr })
  }
})

type Tap = Parameters<Parameters<typeof t.test>[0]>[0]

/** TRUST_PROXY as the service reads it: a list of addresses and CIDRs, never `true` (any client writes the header) or a hop count. */
function trustedList (t: Tap, value: unknown, where: string): string[] {
  const parsed = parseTrustProxy(typeof value === 'string' ? value : undefined)
  t.ok(Array.isArray(parsed), `${where}: TRUST_PROXY is a list of proxy addresses (got ${JSON.stringify(value)})`)
  return Array.isArray(parsed) ? [...parsed as string[]] : []
}

interface ComposeService { environment?: Record<string, string>, ports?: string[], networks?: Record<string, { ipv4_address?: string }> }
const composeFleet = async (): Promise<{ services: Record<string, ComposeService>, networks: { default: { ipam: { config: Array<{ subnet: string }> } } } }> =>
  parseYaml(await readFile(path.join(ROOT, 'docker-compose.fleet.yml'), 'utf8'), { merge: true }) as never

t.test('docker-compose.fleet.yml: every replica believes X-Forwarded-For from HAProxy\'s fixed address, and only from it', async (t) => {
  const { services, networks } = await composeFleet()
  const haproxyAddress = services.haproxy?.networks?.default?.ipv4_address
  t.equal(isIP(haproxyAddress ?? ''), 4, `HAProxy has a fixed address (${String(haproxyAddress)})`)
  const [network, bits] = (networks.default.ipam.config[0]?.subnet ?? '').split('/')
  const subnet = new BlockList()
  subnet.addSubnet(network ?? '', Number(bits))
  t.ok(subnet.check(haproxyAddress ?? ''), 'inside the fleet network\'s subnet')
  for (const name of ['api', 'api-2', 'api-3']) {
    t.same(trustedList(t, services[name]?.environment?.TRUST_PROXY, name), [haproxyAddress], `${name} trusts HAProxy alone`)
  }
})

t.test('the Kubernetes Deployment trusts the ingress in front as a list of networks, never any peer', async (t) => {
  const container = find<DeploymentShape>('Deployment').spec.template.spec.containers[0]!
  const value = container.env.find((e) => e.name === 'TRUST_PROXY')?.value
  const list = trustedList(t, value, 'the Deployment')
  t.ok(list.length > 0 && list.every((entry) => entry.includes('/')), `CIDRs: ${list.join(', ')}`)
})

t.test('HAProxy\'s runtime API (admin level) is reachable by its owner only: a 0600 socket or the container\'s loopback, never published', async (t) => {
  const config = await readFile(HAPROXY_CONFIG, 'utf8')
  const sockets = config.split('\n').map((line) => line.trim()).filter((line) => line.startsWith('stats socket'))
  t.equal(sockets.length, 1, 'one runtime API socket')
  const socket = sockets[0] ?? ''
  t.match(socket, / mode 600 /, 'mode 600')
  t.match(socket, /"\$\{HAPROXY_ADMIN_SOCKET-\/[^}@:]+\}"/, 'its default is a Unix socket path')
  t.notMatch(config, /^\s*stats admin/m, 'the stats page cannot take servers out (no `stats admin`)')

  const { services } = await composeFleet()
  const haproxy = services.haproxy!
  const admin = haproxy.environment?.HAPROXY_ADMIN_SOCKET ?? '/tmp/haproxy-admin.sock'
  t.ok(admin.startsWith('/') || /^ipv4@127\.0\.0\.1:\d+$|^ipv6@::1:\d+$/.test(admin), `compose's HAPROXY_ADMIN_SOCKET is a path or loopback (${admin})`)
  const adminPort = /:(\d+)$/.exec(admin)?.[1]
  for (const [name, service] of Object.entries(services)) {
    for (const port of service.ports ?? []) {
      t.ok(adminPort === undefined || !port.endsWith(`:${adminPort}`), `${name} does not publish the runtime API's port (${port})`)
      t.match(port, /^127\.0\.0\.1:/, `${name} publishes on the host's loopback only (${port})`)
    }
  }
})
