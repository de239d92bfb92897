// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Bits} from "./Bits.sol";

/// @title Committee — a round's committee as a bitmap of validator seats (docs/protocol.md, "Committee")
/// @notice Bit i of a committee map is validator seat i (at most 32 seats). Members take their
/// committee positions (the bits of a round's scored / voted maps) in seat order.
library Committee {
    /// @notice `size` of the seats 0 .. count - 1, drawn uniformly from `seed` by a partial
    /// Fisher-Yates shuffle, as a bitmap. If that is `previous` and count > size, one member (drawn
    /// from the seed) is swapped for one of the seats left out (drawn likewise), so that no committee
    /// sits twice running when other validators exist.
    /// @dev count <= 32 and size <= 9: the digits drawn from the seed, in mixed radix
    /// (count, count - 1, .., then size and count - size), take fewer than 64 of its 256 bits, so
    /// each is uniform up to a bias below 2^-190. Requires 1 <= size <= count <= 32.
    function draw(uint256 seed, uint256 count, uint256 size, uint32 previous) internal pure returns (uint32 map) {
        uint256[] memory seats = new uint256[](count);
        unchecked {
            for (uint256 i = 0; i < count; ++i) {
                seats[i] = i;
            }
            uint256 digits = seed;
            for (uint256 j = 0; j < size; ++j) {
                uint256 left = count - j;
                uint256 k = j + digits % left;
                digits /= left;
                (seats[j], seats[k]) = (seats[k], seats[j]);
                map |= uint32(1 << seats[j]);
            }
            if (map == previous && count > size) {
                uint256 out = digits % size;
                digits /= size;
                uint256 into = size + digits % (count - size);
                map ^= uint32((1 << seats[out]) | (1 << seats[into]));
            }
        }
    }

    /// @notice The seats of `map` in ascending order: seats[j] sits at committee position j.
    function seats(uint32 map) internal pure returns (uint256[] memory list) {
        list = new uint256[](Bits.popcount(map));
        uint256 j = 0;
        unchecked {
            for (uint256 i = 0; map >> i != 0; ++i) {
                if ((map >> i) & 1 == 1) {
                    list[j] = i;
                    ++j;
                }
            }
        }
    }

    /// @notice Whether seat `seat` is on the committee `map`, and at which position (the number of
    /// members with a lower seat).
    function positionOf(uint32 map, uint256 seat) internal pure returns (bool member, uint256 position) {
        if (seat >= 32) return (false, 0);
        member = (map >> seat) & 1 == 1;
        position = Bits.popcount(uint32(map & ((uint256(1) << seat) - 1)));
    }
}
