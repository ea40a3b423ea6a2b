// Regenerates sdk_signatures.json from the OFFICIAL @handcash/sdk 1.0.3 (dev-only, not run in CI):
//   mkdir /tmp/hcsdk && cd /tmp/hcsdk && npm init -y && npm install @handcash/sdk@1.0.3
//   cp <repo>/tests/handcash/vectors/capture_sdk_vectors.mjs . && node capture_sdk_vectors.mjs > sdk_signatures.json
// The SDK signs each request against a local server that records what it received. The keys are
// throwaway test keys (sha256 of a label), never real wallets.
import http from 'node:http';
import { createHash } from 'node:crypto';
import { getInstance, Connect } from '@handcash/sdk';

const key = (label) => createHash('sha256').update(label).digest('hex');
const captured = [];
const server = http.createServer((req, res) => {
  let body = '';
  req.on('data', (c) => { body += c; });
  req.on('end', () => {
    captured.push({ method: req.method, url: req.url, headers: req.headers, body });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{}');
  });
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const baseUrl = `http://127.0.0.1:${server.address().port}`;
const sdk = getInstance({ appId: 'vector-app-id', appSecret: 'vector-app-secret', baseUrl });
const cases = [];
for (const label of ['mpp-client handcash vector key 1', 'mpp-client handcash vector key 2']) {
  const authToken = key(label);
  const client = sdk.getAccountClient(authToken);
  await Connect.pay({
    client,
    body: {
      instrumentCurrencyCode: 'BSV',
      denominationCurrencyCode: 'USD',
      note: 'mpp:vector',
      receivers: [{ sendAmount: 0.05, destination: 'merchant' }, { sendAmount: 0.01, destination: 'fee@handcash.io' }],
      attachment: { format: 'json', value: { mpp: { id: 'challenge-id-1', realm: 'api.example.com' } } },
    },
  });
  await Connect.getSpendableBalances({ client });
  await Connect.getPaymentDetails({ client, query: { transactionId: 'ab'.repeat(32) } });
  for (const c of captured.splice(0)) {
    cases.push({
      auth_token: authToken,
      method: c.method,
      url: c.url,
      body: c.body,
      app_id: c.headers['app-id'],
      app_secret: c.headers['app-secret'],
      public_key: c.headers['oauth-publickey'],
      timestamp: c.headers['oauth-timestamp'],
      nonce: c.headers['oauth-nonce'],
      signature: c.headers['oauth-signature'],
    });
  }
}
server.close();
console.log(JSON.stringify({ generator: '@handcash/sdk 1.0.3', cases }, null, 2));
