// A real mppx 0.11 MCP server (@modelcontextprotocol/sdk 1.32) whose tool `premium` charges
// through tempo/charge, for the MCP interop tests (tests/mcp/test_mppx_interop.py).
//
//   NODE_PATH=.tools/mppx/node_modules node tests/peers/mppx_mcp_server.mjs [--stdio]
//
// Environment: PORT, RPC_URL (the anvil chain), CHAIN_ID, RECIPIENT, MPP_SECRET_KEY (optional).
// Tools: `echo` ({text}, free), `premium` (0.01 pathUSD, mppx's Transport.mcpSdk(): -32042 with
// the challenge, the credential read from _meta["org.paymentauth/credential"], the receipt in
// the result's _meta["org.paymentauth/receipt"]).
// Streamable HTTP (default): POST /mcp on 127.0.0.1 only (stateless: one McpServer per request,
// one Mppx instance, so its replay store is shared), GET /health. Prints "ready <port>".
// --stdio: the same tools over standard input/output.
import * as fs from 'node:fs'
import * as http from 'node:http'
import { createRequire } from 'node:module'
import { pathToFileURL } from 'node:url'
import * as path from 'node:path'

// Resolve the packages from NODE_PATH (the .tools/mppx install), not from this folder, and
// load their ES module builds: mppx imports the MCP SDK as ESM, and McpServer only passes a
// -32042 through (instead of an isError result) when it is the same McpError class, so the
// SDK's CommonJS build (what require.resolve picks) must not be loaded next to it.
const roots = (process.env.NODE_PATH || '').split(path.delimiter).filter(Boolean)
const require_ = createRequire(path.join(roots[0] || process.cwd(), 'noop.js'))
function resolveEsm(name) {
  const parts = name.split('/')
  const pkg = parts.slice(0, name.startsWith('@') ? 2 : 1).join('/')
  const sub = ['.', ...parts.slice(pkg.split('/').length)].join('/')
  const manifest = roots.map((root) => path.join(root, pkg, 'package.json')).find(fs.existsSync)
  if (!manifest) return require_.resolve(name)
  const { exports } = JSON.parse(fs.readFileSync(manifest, 'utf8'))
  let target = exports?.[sub]
  if (target === undefined && exports) {
    for (const [key, value] of Object.entries(exports)) {
      const star = key.indexOf('*')
      if (star < 0) continue
      const [head, tail] = [key.slice(0, star), key.slice(star + 1)]
      if (sub.startsWith(head) && sub.endsWith(tail) && sub.length >= key.length - 1) {
        const middle = sub.slice(head.length, sub.length - tail.length)
        target = JSON.parse(JSON.stringify(value).replaceAll('*', middle))
        break
      }
    }
  }
  while (target && typeof target === 'object') target = target.import ?? target.default
  if (typeof target !== 'string') return require_.resolve(name)
  return path.join(path.dirname(manifest), target)
}
const load = (name) => import(pathToFileURL(resolveEsm(name)).href)
const { Mppx, Transport, tempo } = await load('mppx/server')
const { createClient, http: viemHttp } = await load('viem')
const { tempoLocalnet } = await load('viem/tempo/chains')
const { McpServer } = await load('@modelcontextprotocol/sdk/server/mcp.js')
const { StreamableHTTPServerTransport } = await load(
  '@modelcontextprotocol/sdk/server/streamableHttp.js',
)
const { StdioServerTransport } = await load('@modelcontextprotocol/sdk/server/stdio.js')
const { z } = await load('zod')

const PATH_USD = '0x20c0000000000000000000000000000000000000'
const AMOUNT = '0.01'
const rpcUrl = process.env.RPC_URL
const chainId = Number(process.env.CHAIN_ID)
const secretKey = process.env.MPP_SECRET_KEY || 'mppx-peer-secret-for-mpp-client-tests-only'

const chain = { ...tempoLocalnet, id: chainId, rpcUrls: { default: { http: [rpcUrl] } } }
const getClient = () => createClient({ chain, transport: viemHttp(rpcUrl) })
const payment = Mppx.create({
  methods: [
    tempo.charge({ currency: PATH_USD, recipient: process.env.RECIPIENT, getClient, chainId }),
  ],
  secretKey,
  realm: '127.0.0.1',
  transport: Transport.mcpSdk(),
})

function mcpServer() {
  const server = new McpServer(
    { name: 'mppx-mcp-peer', version: '0.11.0' },
    {
      capabilities: {
        tools: {},
        experimental: { payment: { methods: { tempo: { intents: ['charge'] } } } },
      },
    },
  )
  server.registerTool(
    'echo',
    { description: 'Free: returns its text.', inputSchema: { text: z.string() } },
    async ({ text }) => ({ content: [{ type: 'text', text }] }),
  )
  server.registerTool(
    'premium',
    { description: `Paid: ${AMOUNT} pathUSD per call.` },
    async (extra) => {
      const result = await payment['tempo/charge']({ amount: AMOUNT })(extra)
      if (result.status === 402) throw result.challenge
      return result.withReceipt({ content: [{ type: 'text', text: 'premium content' }] })
    },
  )
  return server
}

if (process.argv.includes('--stdio')) {
  await mcpServer().connect(new StdioServerTransport())
} else {
  const readBody = (req) =>
    new Promise((resolve, reject) => {
      const chunks = []
      req.on('data', (chunk) => chunks.push(chunk))
      req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
      req.on('error', reject)
    })
  const httpServer = http.createServer(async (req, res) => {
    try {
      const url = new URL(req.url, 'http://127.0.0.1')
      if (url.pathname === '/health') {
        res.setHeader('content-type', 'application/json')
        return res.end(JSON.stringify({ ok: true }))
      }
      if (url.pathname !== '/mcp') {
        res.statusCode = 404
        return res.end('not found')
      }
      if (req.method !== 'POST') {
        // Stateless: no standalone SSE stream and no session to delete.
        res.statusCode = 405
        res.setHeader('allow', 'POST')
        return res.end()
      }
      const body = JSON.parse(await readBody(req))
      const server = mcpServer()
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined })
      res.on('close', () => {
        transport.close()
        server.close()
      })
      await server.connect(transport)
      await transport.handleRequest(req, res, body)
    } catch (error) {
      console.error(error)
      if (!res.headersSent) res.statusCode = 500
      res.end('server error')
    }
  })
  httpServer.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
    console.log(`ready ${httpServer.address().port}`)
  })
  for (const signal of ['SIGTERM', 'SIGINT'])
    process.on(signal, () => httpServer.close(() => process.exit(0)))
}
