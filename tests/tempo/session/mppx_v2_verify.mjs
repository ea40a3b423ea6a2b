// mppx 0.11's own v2 (TIP-1034 precompile) server-side verification, run on what our Python
// client produced, for test_v2_encoding.py. Nothing here re-implements a check: every verdict
// comes from mppx's functions (the ones its session server calls before it broadcasts).
//
//   node mppx_v2_verify.mjs <node_modules>   < cases.json   > verdicts.json
//
// A case: {kind: "open"|"topUp"|"voucher", chainId, escrow, payee, currency, operator,
// feePayer (bool), payload (the credential payload we built), source?}. A verdict: {ok, error?,
// ...what mppx derived (channelId, expiringNonceHash, deposit, descriptor)}.
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

const modules = resolve(process.argv[2]);
const require = createRequire(join(modules, "mppx", "package.json"));
const dist = dirname(require.resolve("mppx"));
const load = (path) => import(pathToFileURL(join(dist, path)).href);
const Chain = await load("tempo/session/precompile/Chain.js");
const Channel = await load("tempo/session/precompile/Channel.js");
const Voucher = await load("tempo/session/precompile/Voucher.js");
const Verification = await load("tempo/session/server/CredentialVerification.js");

let input = "";
for await (const chunk of process.stdin) input += chunk;

function verify(c) {
  const p = Verification.requireSessionCredentialPayload(c.payload);
  const channelId = Channel.computeId({ ...p.descriptor, chainId: c.chainId, escrow: c.escrow });
  Verification.validateChannelDescriptor(
    p.descriptor, p.channelId, c.chainId, c.escrow, c.payee, c.currency, c.operator,
  );
  const out = { channelId };
  if (p.action === "open") {
    const opened = Chain.validateOpenCredentialTransaction({
      chainId: c.chainId, escrowContract: c.escrow, expectedAuthorizedSigner: p.descriptor.authorizedSigner,
      expectedChannelId: p.channelId, expectedCurrency: c.currency, expectedOperator: c.operator,
      expectedPayee: c.payee, expectedExpiringNonceHash: p.descriptor.expiringNonceHash,
      expectedPayer: p.descriptor.payer, feePayer: c.feePayer, serializedTransaction: p.transaction,
    });
    Verification.assertSameDescriptor(opened.descriptor, p.descriptor);
    out.expiringNonceHash = opened.expiringNonceHash;
    out.deposit = opened.openDeposit.toString();
    out.from = opened.transaction.from;
    out.feeToken = opened.transaction.feeToken ?? null;
  } else if (p.action === "topUp") {
    Chain.validateTopUpCredentialTransaction({
      additionalDeposit: BigInt(p.additionalDeposit), chainId: c.chainId, descriptor: p.descriptor,
      escrowContract: c.escrow, expectedChannelId: p.channelId, expectedCurrency: c.currency,
      feePayer: c.feePayer, serializedTransaction: p.transaction,
    });
  }
  if (p.signature !== undefined) {
    const valid = Voucher.verifyVoucher(
      c.escrow, c.chainId,
      { channelId: p.channelId, cumulativeAmount: BigInt(p.cumulativeAmount), signature: p.signature },
      Verification.authorizedSigner(p.descriptor),
    );
    if (!valid) throw new Error("invalid voucher signature");
  }
  if (c.source !== undefined) {
    Verification.assertCredentialSourceCanSpend({
      chainId: c.chainId, source: c.source,
      channel: { payer: p.descriptor.payer, authorizedSigner: Verification.authorizedSigner(p.descriptor) },
    });
  }
  return { ok: true, ...out };
}

const verdicts = JSON.parse(input).map((c) => {
  try {
    return verify(c);
  } catch (error) {
    return { ok: false, error: String(error?.shortMessage ?? error?.message ?? error).slice(0, 300) };
  }
});
process.stdout.write(JSON.stringify(verdicts));
