// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title Shares — the settlement arithmetic of docs/protocol.md, in wei
/// @notice Every division rounds down; callers return the remainder (the dust) to the buyer.
library Shares {
    /// @notice Basis points in a whole.
    uint256 internal constant BPS = 10_000;

    /// @notice The budget of round `round` (1-based) of `rounds`: reward / rounds, the last round
    /// taking the remainder of the division, so the budgets sum to `reward` exactly.
    function roundBudget(uint256 reward, uint256 rounds, uint256 round) internal pure returns (uint256) {
        // W - (R - 1) * (W / R) == W / R + W % R: the last round adds the remainder.
        if (round < rounds) return reward / rounds;
        return reward / rounds + reward % rounds;
    }

    /// @notice `amount * bps / BPS`, rounded down.
    function ofBps(uint256 amount, uint256 bps) internal pure returns (uint256) {
        return amount * bps / BPS;
    }

    /// @notice `amount * part / total`, rounded down (total > 0, part <= total).
    /// @dev amount is below 2^128 and part below 2^64 wherever this is used, so the product fits.
    function proRata(uint256 amount, uint256 part, uint256 total) internal pure returns (uint256) {
        return amount * part / total;
    }

    /// @notice A slash of `bps` of the original `stake`, capped at what remains of it.
    function slashAmount(uint256 stake, uint256 alreadySlashed, uint256 bps) internal pure returns (uint256) {
        uint256 amount = ofBps(stake, bps);
        uint256 remaining = stake - alreadySlashed;
        return amount < remaining ? amount : remaining;
    }
}
