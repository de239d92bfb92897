// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title Bits — bitmaps and packed words for the per-round state
/// @notice A round keeps who committed / revealed (bit i = trainer seat i, at most 64) and which
/// committee member scored / voted (bit j = committee position j, at most 9) in one storage word;
/// scores (clamped to +-MAX_SCORE = 1e9 < 2^31) are packed eight int32 to a word, reveal entries two to a word.
library Bits {
    uint256 internal constant SCORE_BITS = 32;
    /// @dev A reveal entry: trainer seat (8 bits) | numSamples (64 bits) << 8 | digest fingerprint (36 bits) << 72.
    uint256 internal constant ENTRY_BITS = 108;
    uint256 internal constant FINGERPRINT_BITS = 36;
    uint256 internal constant FINGERPRINT_SHIFT = 72;

    /// @notice Number of set bits of a 64-bit map (SWAR population count).
    function popcount(uint64 x) internal pure returns (uint256) {
        uint256 v = x;
        v = v - ((v >> 1) & 0x5555555555555555);
        v = (v & 0x3333333333333333) + ((v >> 2) & 0x3333333333333333);
        v = (v + (v >> 4)) & 0x0f0f0f0f0f0f0f0f;
        // Each byte now holds a count <= 8; the multiply sums them into the top byte of 64 bits.
        return ((v * 0x0101010101010101) & 0xffffffffffffffff) >> 56;
    }

    function has(uint64 map, uint256 bit) internal pure returns (bool) {
        return (map >> bit) & 1 == 1;
    }

    /// @notice The `slot`-th score (an int32) packed in `word`.
    function scoreAt(uint256 word, uint256 slot) internal pure returns (int64) {
        return int64(int32(uint32(word >> (SCORE_BITS * slot))));
    }

    /// @notice `word` with `score` (clamped: it fits int32) written into its `slot`-th int32 (which must be zero).
    function withScore(uint256 word, uint256 slot, int64 score) internal pure returns (uint256) {
        return word | (uint256(uint32(int32(score))) << (SCORE_BITS * slot));
    }

    /// @notice A reveal entry: trainer index, sample count and the update digest's fingerprint.
    function entry(uint256 trainerIndex, uint64 numSamples, bytes32 updateDigest) internal pure returns (uint256) {
        return trainerIndex | (uint256(numSamples) << 8) | (fingerprint(updateDigest) << FINGERPRINT_SHIFT);
    }

    /// @notice The fingerprint of an update digest kept in its reveal entry: its top 36 bits. Equal
    /// digests have equal fingerprints; equal fingerprints say nothing until the digests are compared.
    function fingerprint(bytes32 updateDigest) internal pure returns (uint256) {
        return uint256(updateDigest) >> (256 - FINGERPRINT_BITS);
    }

    /// @notice The trainer seat of the `slot`-th reveal entry of `word`.
    function seatAt(uint256 word, uint256 slot) internal pure returns (uint256) {
        return (word >> (ENTRY_BITS * slot)) & 0xff;
    }

    /// @notice The digest fingerprint of the `slot`-th reveal entry of `word`.
    function fingerprintAt(uint256 word, uint256 slot) internal pure returns (uint256) {
        return (word >> (ENTRY_BITS * slot + FINGERPRINT_SHIFT)) & ((1 << FINGERPRINT_BITS) - 1);
    }

    /// @notice The `slot`-th reveal entry of `word`.
    function entryAt(uint256 word, uint256 slot) internal pure returns (uint256 trainerIndex, uint64 numSamples) {
        uint256 e = word >> (ENTRY_BITS * slot);
        trainerIndex = e & 0xff;
        numSamples = uint64(e >> 8);
    }
}
