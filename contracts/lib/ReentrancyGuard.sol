// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title ReentrancyGuard — a lock in transient storage (EIP-1153, cancun)
/// @notice `nonReentrant` functions cannot be entered again, directly or through another
/// `nonReentrant` function, before they return. The lock costs two TSTOREs and clears itself at
/// the end of the transaction.
abstract contract ReentrancyGuard {
    /// @notice A `nonReentrant` function was entered while another one was running.
    error ReentrantCall();

    // keccak256("fedmarket.ReentrancyGuard.lock")
    bytes32 private constant LOCK_SLOT = 0xbe47b7603edbb6c6eea28213d81ab339790d1f86b494a5b6e0c5d0b9a7826e90;

    modifier nonReentrant() {
        bytes32 slot = LOCK_SLOT;
        uint256 locked;
        assembly ("memory-safe") {
            locked := tload(slot)
        }
        if (locked != 0) revert ReentrantCall();
        assembly ("memory-safe") {
            tstore(slot, 1)
        }
        _;
        assembly ("memory-safe") {
            tstore(slot, 0)
        }
    }
}
