// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title ReentrancyGuard — a storage lock for the functions that send ether
/// @notice `nonReentrant` functions cannot be entered again, directly or through another
/// `nonReentrant` function, before they return. The lock holds 1 (free) or 2 (taken), never 0,
/// so taking it rewrites a non-zero slot (cheap) instead of creating one.
abstract contract ReentrancyGuard {
    /// @notice A `nonReentrant` function was entered while another one was running.
    error ReentrantCall();

    uint256 private constant FREE = 1;
    uint256 private constant TAKEN = 2;

    uint256 private _lock = FREE;

    modifier nonReentrant() {
        if (_lock == TAKEN) revert ReentrantCall();
        _lock = TAKEN;
        _;
        _lock = FREE;
    }
}
