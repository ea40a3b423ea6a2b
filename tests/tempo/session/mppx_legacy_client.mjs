// mppx 0.11's own v1 session client (tempo.sessionLegacy, deprecated but shipped) paying our
// session server: proof that the server speaks the protocol as mppx does.
//
//   NODE_PATH=.tools/mppx/node_modules node mppx_legacy_client.mjs
//
// Environment: URL (the /stream resource), RPC_URL, CHAIN_ID, ESCROW, PAYER_KEY, CHUNKS.
// Prints one JSON line: {chunks, channelId, cumulative, receipt}.
import { createRequire } from 'node:module'
import { pathToFileURL } from 'node:url'
import * as path from 'node:path'

const roots = (process.env.NODE_PATH || '').split(path.delimiter).filter(Boolean)
const require_ = createRequire(path.join(roots[0] || process.cwd(), 'noop.js'))
const load = (name) => import(pathToFileURL(require_.resolve(name)).href)
const { tempo } = await load('mppx/client')
const { createClient, custom, http: viemHttp } = await load('viem')
const { privateKeyToAccount } = await load('viem/accounts')
const { tempoLocalnet } = await load('viem/tempo/chains')

const rpcUrl = process.env.RPC_URL
const chain = { ...tempoLocalnet, id: Number(process.env.CHAIN_ID), rpcUrls: { default: { http: [rpcUrl] } } }
// anvil 1.7.1 estimates every Tempo transaction at a constant ~0.8M gas, whatever its calls;
// a v1 open (approve + open) needs ~1.6M. The real chain estimates correctly: here the
// estimate is raised, nothing else of mppx is touched.
const GAS = '0x2dc6c0' // 3,000,000
const node = viemHttp(rpcUrl)({ chain })
const transport = custom({
  async request({ method, params }) {
    if (method === 'eth_estimateGas') return GAS
    const result = await node.request({ method, params })
    // mppx fills its transactions with eth_fillTransaction, which carries the same estimate.
    if (method === 'eth_fillTransaction' && result?.tx?.gas) result.tx.gas = GAS
    return result
  },
})
const client = createClient({ chain, transport })
const manager = tempo.sessionLegacy({
  account: privateKeyToAccount(process.env.PAYER_KEY),
  client,
  escrowContract: process.env.ESCROW,
  allowCustomEscrow: true,
  maxDeposit: '0.05',
})
const stream = await manager.sse(process.env.URL)
let chunks = 0
for await (const data of stream) {
  if (String(data).startsWith('chunk ')) chunks += 1
}
const receipt = await manager.close()
process.stdout.write(JSON.stringify({
  chunks, channelId: manager.channelId, cumulative: manager.cumulative.toString(), receipt,
}) + '\n')
