// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title RevertingReceiver — TEST ONLY: a market participant that refuses ether
/// @notice `execute` forwards any call (with value) to the market, so the test can stake with it
/// and call withdraw. While `rejecting`, its receive() reverts, so every transfer to it fails; the
/// test checks that this blocks nobody else and that its own credit stays intact.
contract RevertingReceiver {
    error NotController(address caller);
    error EtherRefused(uint256 amount);

    address public immutable market;
    address public immutable controller;
    bool public rejecting = true;
    uint256 public received;

    constructor(address market_) {
        market = market_;
        controller = msg.sender;
    }

    modifier onlyController() {
        if (msg.sender != controller) revert NotController(msg.sender);
        _;
    }

    /// @notice Call the market as this contract (msg.value forwarded); bubbles the market's revert data.
    function execute(bytes calldata data) external payable onlyController returns (bytes memory result) {
        bool ok;
        (ok, result) = market.call{value: msg.value}(data);
        if (!ok) {
            assembly {
                revert(add(result, 32), mload(result))
            }
        }
    }

    function setRejecting(bool rejecting_) external onlyController {
        rejecting = rejecting_;
    }

    receive() external payable {
        if (rejecting) revert EtherRefused(msg.value);
        received += msg.value;
    }
}
