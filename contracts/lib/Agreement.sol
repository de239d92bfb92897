// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title Agreement — how far a committee member's scores are from a round's utilities
/// @notice Validator pay by agreement (docs/protocol.md, "Validator pay"): a member's distance is
/// D = sum_k |s_k - u_k| over the round's n updates (s its clamped scores, u the medians), the
/// utilities' size M = sum_k |u_k| (both sums: the 1/n of the means cancels), its tolerance
/// M * agreementToleranceBps / 10000 and its weight tolerance - D while D < tolerance, else 0.
/// agents/fedmarket/chain/protocol.py's validator_weights mirrors it.
library Agreement {
    /// @notice sum_k |u_k|: every u_k is a clamped score (|u_k| <= 1e9) and n <= 64, so it fits.
    function magnitude(int256[] memory u) internal pure returns (uint256 m) {
        for (uint256 k = 0; k < u.length; ++k) {
            m += _abs(u[k]);
        }
    }

    /// @notice |score - utility|.
    function gap(int64 score, int256 utility) internal pure returns (uint256) {
        return _abs(int256(score) - utility);
    }

    /// @notice tolerance - distance while distance < tolerance, else 0.
    function weight(uint256 distance, uint256 tolerance) internal pure returns (uint256) {
        return distance < tolerance ? tolerance - distance : 0;
    }

    function _abs(int256 x) private pure returns (uint256) {
        return x < 0 ? uint256(-x) : uint256(x);
    }
}
