// Session vectors computed by ox (the encoder viem and mppx use), for test_vectors_ox.py.
// Reads JSON cases on stdin; writes, per case, the v2 channel id and voucher digest
// (ox/tempo Channel) and the v1 voucher digest (ox TypedData, EIP-712).
import { createRequire } from "node:module";
import { join } from "node:path";

const modules = process.argv[2];
const require = createRequire(join(modules, "ox", "package.json"));
const { TypedData } = await import(require.resolve("ox"));
const { Channel } = await import(require.resolve("ox/tempo"));

let input = "";
for await (const chunk of process.stdin) input += chunk;
const cases = JSON.parse(input);
const out = cases.map((c) => {
  const descriptor = {
    payer: c.payer, payee: c.payee, operator: c.operator, token: c.token, salt: c.salt,
    authorizedSigner: c.authorizedSigner, expiringNonceHash: c.expiringNonceHash,
  };
  const v2Id = Channel.computeId(descriptor, { chainId: c.chainId });
  const v2Digest = Channel.getVoucherSignPayload({
    chainId: c.chainId, channelId: v2Id, cumulativeAmount: BigInt(c.cumulative),
  });
  const v1Digest = TypedData.getSignPayload({
    domain: { name: "Tempo Stream Channel", version: "1", chainId: c.chainId, verifyingContract: c.escrow },
    types: { Voucher: [{ name: "channelId", type: "bytes32" }, { name: "cumulativeAmount", type: "uint128" }] },
    primaryType: "Voucher",
    message: { channelId: c.channelId, cumulativeAmount: BigInt(c.cumulative) },
  });
  return { v2Id, v2Digest, v1Digest };
});
process.stdout.write(JSON.stringify(out));
