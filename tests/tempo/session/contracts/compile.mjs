// Compile the test escrow with solc-js (installed by scripts/install-solc.sh) and print
// {"abi": [...], "bytecode": "0x..."} on stdout. Usage: node compile.mjs <solc dir> <file.sol>
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { basename, join } from "node:path";

const [solcDir, file] = process.argv.slice(2);
const require = createRequire(join(solcDir, "node_modules", "solc", "package.json"));
const solc = require("solc");
const name = basename(file);
const input = {
  language: "Solidity",
  sources: { [name]: { content: readFileSync(file, "utf8") } },
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: "cancun",
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } },
  },
};
const output = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (output.errors || []).filter((e) => e.severity === "error");
if (errors.length) {
  console.error(errors.map((e) => e.formattedMessage).join("\n"));
  process.exit(1);
}
const contract = output.contracts[name][name.replace(/\.sol$/, "")];
process.stdout.write(JSON.stringify({ abi: contract.abi, bytecode: "0x" + contract.evm.bytecode.object }));
