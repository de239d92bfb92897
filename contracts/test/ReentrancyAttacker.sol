// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title ReentrancyAttacker — TEST ONLY: a market participant whose receive() re-enters the market
/// @notice The test drives it like an account: `execute` forwards any call (with value) to the
/// market, so it can buy a licence, stake, commit, reveal and withdraw. While `armed`, every ether
/// it receives makes it call the market again (by default `withdraw()`) up to `maxReentries` times.
/// A re-entry that reverts is recorded and swallowed (so the outer withdraw can still succeed and
/// the test can see it was paid exactly once), unless `bubble` is set, in which case receive()
/// reverts too and the outer transfer fails.
contract ReentrancyAttacker {
    error NotController(address caller);
    error CallFailed(bytes reason);

    address public immutable market;
    address public immutable controller;

    bytes public reentryCall; // calldata sent to the market from receive(); withdraw() by default
    uint256 public maxReentries = 1;
    bool public armed;
    bool public bubble;

    uint256 public receipts; // ether transfers received
    uint256 public received; // wei received in total
    uint256 public reentries; // re-entries attempted
    uint256 public reentriesSucceeded;
    bytes public lastReentryError;

    constructor(address market_) {
        market = market_;
        controller = msg.sender;
        reentryCall = abi.encodeWithSignature("withdraw()");
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

    function configure(bytes calldata call_, uint256 maxReentries_, bool bubble_) external onlyController {
        reentryCall = call_;
        maxReentries = maxReentries_;
        bubble = bubble_;
    }

    function setArmed(bool armed_) external onlyController {
        armed = armed_;
    }

    /// @notice Arm, withdraw from the market (receive() then re-enters), disarm.
    function attack() external onlyController {
        armed = true;
        (bool ok, bytes memory reason) = market.call(abi.encodeWithSignature("withdraw()"));
        armed = false;
        if (!ok) {
            assembly {
                revert(add(reason, 32), mload(reason))
            }
        }
    }

    receive() external payable {
        receipts += 1;
        received += msg.value;
        if (armed && reentries < maxReentries) {
            reentries += 1;
            (bool ok, bytes memory reason) = market.call(reentryCall);
            if (ok) {
                reentriesSucceeded += 1;
            } else {
                lastReentryError = reason;
                if (bubble) revert CallFailed(reason);
            }
        }
    }
}
