// Hardhat compiles contracts/ offline with the npm solc (node_modules/solc/soljson.js) instead of
// downloading a compiler: the TASK_COMPILE_SOLIDITY_GET_SOLC_BUILD subtask is overridden. Settings
// match agents/fedmarket/chain/compile.py (optimizer 200 runs, viaIR, evmVersion cancun, which
// py-evm runs; solc 0.8.37 would default to osaka). `npx hardhat compile` writes artifacts/hardhat.
const path = require("path");
const { subtask } = require("hardhat/config");
const { TASK_COMPILE_SOLIDITY_GET_SOLC_BUILD } = require("hardhat/builtin-tasks/task-names");

const solcPackage = require("solc/package.json");

subtask(TASK_COMPILE_SOLIDITY_GET_SOLC_BUILD, async (args, hre, runSuper) => {
  if (args.solcVersion !== solcPackage.version) {
    throw new Error(
      `hardhat.config.js compiles offline with the npm solc ${solcPackage.version} only, not ${args.solcVersion}`,
    );
  }
  return {
    compilerPath: path.join(__dirname, "node_modules", "solc", "soljson.js"),
    isSolcJs: true,
    version: args.solcVersion,
    longVersion: require("solc").version(),
  };
});

/** @type import('hardhat/config').HardhatUserConfig */
module.exports = {
  solidity: {
    version: solcPackage.version,
    settings: {
      optimizer: { enabled: true, runs: 200 },
      viaIR: true,
      evmVersion: "cancun",
    },
  },
  paths: {
    sources: "./contracts",
    artifacts: "./artifacts/hardhat",
    cache: "./cache/hardhat",
  },
};
