"""The chain layer, one module per concern, lowest first:

    protocol      the contract's caps, BPS, shares, median rule, event names, chain ids
    abi           the Solidity enums, digests, format_eth, Event and EventDecoder (a leaf)
    records       the contract's structs as records, TxResult, commitments
    reverts       the exceptions, revert data decoded by custom error
    embedded      the in-process EVM and its py-evm shortcuts
    rpc           connect, rpc_errors
    compile       the npm solc, cached artifacts, load_market_abi
    transactions  the one sender: gas, fees, funds, nonce, sign, send, wait, failure replay
    deploy        deployment, the address book, the gas limits
    events        EventCursor
    timecontrol   chain time on dev chains
    client        the typed MarketClient (it re-exports records, reverts, rpc)
    anvil         the dev node from node_modules, dev accounts

Each imports only modules above it. Import the module you need: this package imports nothing
eagerly, so commands that talk to a node never load the embedded chain."""
