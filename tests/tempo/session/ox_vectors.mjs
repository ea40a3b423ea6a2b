// Session vectors computed by ox (the encoder viem and mppx use), for test_vectors_ox.py.
// Reads JSON cases on stdin; writes, per case, the v2 channel id and voucher digest
// (ox/tempo Channel), the v1 voucher digest (ox TypedData, EIP-712) and the v2 precompile
// calldata (ox AbiFunction: open, topUp, requestClose, withdraw).
import { createRequire } from "node:module";
import { join } from "node:path";

const modules = process.argv[2];
const require = createRequire(join(modules, "ox", "package.json"));
const { AbiFunction, TypedData } = await import(require.resolve("ox"));
const D = "(address payer,address payee,address operator,address token,bytes32 salt,address authorizedSigner,bytes32 expiringNonceHash) descriptor";
const open = AbiFunction.from("function open(address payee,address operator,address token,uint96 deposit,bytes32 salt,address authorizedSigner)");
const topUp = AbiFunction.from(`function topUp(${D},uint96 additionalDeposit)`);
const requestClose = AbiFunction.from(`function requestClose(${D})`);
const withdraw = AbiFunction.from(`function withdraw(${D})`);
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
  const amount = BigInt(c.cumulative);
  const calldata = {
    open: AbiFunction.encodeData(open, [c.payee, c.operator, c.token, amount, c.salt, c.authorizedSigner]),
    topUp: AbiFunction.encodeData(topUp, [descriptor, amount]),
    requestClose: AbiFunction.encodeData(requestClose, [descriptor]),
    withdraw: AbiFunction.encodeData(withdraw, [descriptor]),
  };
  return { v2Id, v2Digest, v1Digest, calldata };
});
process.stdout.write(JSON.stringify(out));
