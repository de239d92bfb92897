// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title Median — median of a short list of signed integers
/// @notice The utility u_i of an update is the median of the committee's scores for it
/// (docs/protocol.md, "Utility"): the lower median, always one of the values: k odd -> the middle
/// value; k even -> the lower of the two middle values; k == 0 -> 0.
library Median {
    /// @notice Median of the first `k` values of `values` (sorts that prefix in place).
    /// @dev Insertion sort: k is at most the committee size (MAX_COMMITTEE = 9).
    function medianOf(int256[] memory values, uint256 k) internal pure returns (int256) {
        if (k == 0) return 0;
        if (k == 1) return values[0];
        if (k == 2) return values[0] < values[1] ? values[0] : values[1];
        if (k == 3) return _medianOf3(values[0], values[1], values[2]);
        // Insertion sort of the prefix; k <= values.length is the caller's promise.
        unchecked {
            // i and j stay in 1 .. k - 1 and 0 .. i: no overflow, no underflow (j > 0 is tested first).
            for (uint256 i = 1; i < k; ++i) {
                int256 v = values[i];
                uint256 j = i;
                while (j > 0 && values[j - 1] > v) {
                    values[j] = values[j - 1];
                    --j;
                }
                values[j] = v;
            }
        }
        return values[(k - 1) / 2];
    }

    /// @dev The middle one of three values (the most common committee size, without sorting).
    function _medianOf3(int256 a, int256 b, int256 c) private pure returns (int256) {
        if (a > b) (a, b) = (b, a);
        // now a <= b: the median is b clamped into [a, c] when c < b
        if (c >= b) return b;
        return c > a ? c : a;
    }
}
