// A real mppx 0.11 MPP server (tempo/charge) for interop tests and the demo.
//
//   NODE_PATH=.tools/mppx/node_modules node tests/peers/mppx_server.mjs
//
// Environment: PORT, RPC_URL (the anvil chain), CHAIN_ID, RECIPIENT, SPLIT_RECIPIENT,
// FEE_PAYER_KEY (a funded test key: the sponsor of /sponsored), MPP_SECRET_KEY (optional).
// Routes (GET): /free, /health, /paid (?amount= in dollars, default 0.01; pull or push),
// /sponsored (server pays the fee), /split (0.01 with a 0.0025 split), /proof (amount 0).
// Listens on 127.0.0.1 only. Prints "ready <port>" on stdout when listening.
import * as http from 'node:http'
import { createRequire } from 'node:module'
import { pathToFileURL } from 'node:url'
import * as path from 'node:path'

// Resolve mppx and viem from NODE_PATH (the .tools/mppx install), not from this folder.
const roots = (process.env.NODE_PATH || '').split(path.delimiter).filter(Boolean)
const require_ = createRequire(path.join(roots[0] || process.cwd(), 'noop.js'))
const load = (name) => import(pathToFileURL(require_.resolve(name)).href)
const { Mppx, tempo } = await load('mppx/server')
const { createClient, http: viemHttp } = await load('viem')
const { privateKeyToAccount } = await load('viem/accounts')
const { tempoLocalnet } = await load('viem/tempo/chains')

const PATH_USD = '0x20c0000000000000000000000000000000000000'
const port = Number(process.env.PORT || 0)
const rpcUrl = process.env.RPC_URL
const chainId = Number(process.env.CHAIN_ID)
const recipient = process.env.RECIPIENT
const splitRecipient = process.env.SPLIT_RECIPIENT
const secretKey = process.env.MPP_SECRET_KEY || 'mppx-peer-secret-for-mpp-client-tests-only'

const chain = { ...tempoLocalnet, id: chainId, rpcUrls: { default: { http: [rpcUrl] } } }
const getClient = () => createClient({ chain, transport: viemHttp(rpcUrl) })
const common = { currency: PATH_USD, recipient, getClient, chainId }

const plain = Mppx.create({
  methods: [tempo.charge(common)],
  secretKey,
  realm: '127.0.0.1',
})
const sponsor = Mppx.create({
  methods: [
    tempo.charge({
      ...common,
      feePayer: privateKeyToAccount(process.env.FEE_PAYER_KEY),
      feeToken: PATH_USD,
    }),
  ],
  secretKey,
  realm: '127.0.0.1',
})

function options(url) {
  const amount = url.searchParams.get('amount') || '0.01'
  switch (url.pathname) {
    case '/paid':
      return [plain, { amount }]
    case '/sponsored':
      return [sponsor, { amount, feePayer: true }]
    case '/split':
      return [plain, { amount: '0.01', splits: [{ amount: '0.0025', recipient: splitRecipient }] }]
    case '/proof':
      return [plain, { amount: '0' }]
    default:
      return null
  }
}

const server = http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url, 'http://127.0.0.1')
    if (url.pathname === '/free' || url.pathname === '/health') {
      res.setHeader('content-type', 'application/json')
      return res.end(JSON.stringify({ free: true }))
    }
    const route = options(url)
    if (!route) {
      res.statusCode = 404
      return res.end('not found')
    }
    const [mppx, opts] = route
    const result = await Mppx.toNodeListener(mppx['tempo/charge'](opts))(req, res)
    if (result.status === 402) return
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ paid: true, path: url.pathname }))
  } catch (error) {
    console.error(error)
    if (!res.headersSent) res.statusCode = 500
    res.end('server error')
  }
})

server.listen(port, '127.0.0.1', () => {
  console.log(`ready ${server.address().port}`)
})
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => server.close(() => process.exit(0)))
