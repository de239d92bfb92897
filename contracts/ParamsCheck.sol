// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IMarketplaceTypes} from "./IMarketplace.sol";
import {
    CAP_MAX_COMMITTEE,
    CAP_MAX_ELECTED_TRAINERS,
    CAP_MAX_LATE_SLASH_BPS,
    CAP_MAX_ROUNDS,
    CAP_MAX_TOLERANCE_BPS,
    CAP_MAX_TRAINERS,
    CAP_MAX_VALIDATORS,
    CAP_MAX_WINDOW,
    CAP_MIN_WINDOW
} from "./MarketStorage.sol";
import {Shares} from "./lib/Shares.sol";

/// @title ParamsCheck — newModel's parameter rules (docs/protocol.md, "Task parameters")
/// @notice Deployed by the Marketplace's constructor; stateless. Its reverts are IMarketplace's
/// errors, which the market's newModel re-throws unchanged.
contract ParamsCheck {
    /// @notice The shortest phase (and start) window this deployment accepts, in seconds.
    uint256 public immutable MIN_WINDOW;

    /// @notice constructor: `given` is not in 1 s .. 30 days.
    error MinWindowOutOfRange(uint256 given);

    /// @param minWindow the shortest window (CAP_MIN_WINDOW .. CAP_MAX_WINDOW; the deployer picks
    /// 1 s on dev chains, minutes on real networks, where a block takes seconds).
    constructor(uint256 minWindow) {
        if (minWindow < CAP_MIN_WINDOW || minWindow > CAP_MAX_WINDOW) revert MinWindowOutOfRange(minWindow);
        MIN_WINDOW = minWindow;
    }
    /// @notice Reverts with the first of newModel's parameter errors whose rule `p` breaks when
    /// `owner` posts it (IMarketplace lists them in this order); returns when every rule holds.
    function check(IMarketplaceTypes.ModelParams calldata p, address owner) external view {
        if (p.specDigest == bytes32(0)) revert IMarketplaceTypes.ZeroSpecDigest();
        if (p.initialModelDigest == bytes32(0)) revert IMarketplaceTypes.ZeroInitialModelDigest();
        if (p.aggregator == address(0)) revert IMarketplaceTypes.ZeroAggregator();
        if (p.aggregator == owner) revert IMarketplaceTypes.AggregatorIsOwner(p.aggregator);
        if (p.rounds == 0 || p.rounds > CAP_MAX_ROUNDS) revert IMarketplaceTypes.RoundsOutOfRange(p.rounds, CAP_MAX_ROUNDS);
        if (p.minTrainers == 0 || p.minTrainers > p.maxTrainers || p.maxTrainers > CAP_MAX_TRAINERS) {
            revert IMarketplaceTypes.TrainerBoundsOutOfRange(p.minTrainers, p.maxTrainers, CAP_MAX_TRAINERS);
        }
        if (p.committeeSize == 0 || p.committeeSize > CAP_MAX_COMMITTEE) {
            revert IMarketplaceTypes.CommitteeSizeOutOfRange(p.committeeSize, CAP_MAX_COMMITTEE);
        }
        if (p.maxValidators == 0) {
            // An elected committee: the trainers serve (docs/protocol.md, "Elected committees"); at least
            // committeeSize trainers sit outside every committee, so no sitting member is ever re-elected.
            if (p.minTrainers < 2 * uint256(p.committeeSize) || p.maxTrainers > CAP_MAX_ELECTED_TRAINERS) {
                revert IMarketplaceTypes.ElectedTrainersOutOfRange(
                    p.minTrainers, p.maxTrainers, p.committeeSize, CAP_MAX_ELECTED_TRAINERS
                );
            }
        } else if (p.maxValidators < p.committeeSize || p.maxValidators > CAP_MAX_VALIDATORS) {
            revert IMarketplaceTypes.MaxValidatorsOutOfRange(p.maxValidators, p.committeeSize, CAP_MAX_VALIDATORS);
        }
        _requireWindow(IMarketplaceTypes.Phase.Commit, p.commitWindow);
        _requireWindow(IMarketplaceTypes.Phase.Reveal, p.revealWindow);
        _requireWindow(IMarketplaceTypes.Phase.ScoreCommit, p.scoreWindow);
        _requireWindow(IMarketplaceTypes.Phase.Publish, p.publishWindow);
        _requireWindow(IMarketplaceTypes.Phase.VoteCommit, p.confirmWindow);
        _requireStake(IMarketplaceTypes.Role.Trainer, p.trainerStake);
        _requireStake(IMarketplaceTypes.Role.Validator, p.validatorStake);
        _requireStake(IMarketplaceTypes.Role.Aggregator, p.aggregatorStake);
        if (p.lateSlashBps > Shares.BPS || p.badSlashBps > Shares.BPS) {
            revert IMarketplaceTypes.SlashBpsTooLarge(p.lateSlashBps, p.badSlashBps, Shares.BPS);
        }
        if (uint256(p.trainerShareBps) + p.validatorShareBps + p.aggregatorShareBps != Shares.BPS) {
            revert IMarketplaceTypes.SharesDoNotSum(p.trainerShareBps, p.validatorShareBps, p.aggregatorShareBps, Shares.BPS);
        }
        // Phase None names the start window (before any round).
        _requireWindow(IMarketplaceTypes.Phase.None, p.startWindow);
        if (p.maxSamples == 0) revert IMarketplaceTypes.ZeroMaxSamples();
        if (p.lateSlashBps > CAP_MAX_LATE_SLASH_BPS) revert IMarketplaceTypes.LateSlashTooLarge(p.lateSlashBps, CAP_MAX_LATE_SLASH_BPS);
        if (p.poisonThreshold > 0) revert IMarketplaceTypes.PoisonThresholdPositive(p.poisonThreshold);
        if (p.agreementToleranceBps == 0 || p.agreementToleranceBps > CAP_MAX_TOLERANCE_BPS) {
            revert IMarketplaceTypes.AgreementToleranceOutOfRange(p.agreementToleranceBps, 1, CAP_MAX_TOLERANCE_BPS);
        }
    }

    function _requireWindow(IMarketplaceTypes.Phase phase, uint32 window) private view {
        if (window < MIN_WINDOW || window > CAP_MAX_WINDOW) revert IMarketplaceTypes.WindowOutOfRange(phase, window, MIN_WINDOW, CAP_MAX_WINDOW);
    }

    /// @dev The task's accounting holds amounts below 2^128 (MarketStorage's Task); stakes are
    /// capped at 2^128 - 1 wei to match (the deposits' own check bounds their sum).
    function _requireStake(IMarketplaceTypes.Role role, uint256 stake) private pure {
        if (stake > type(uint128).max) revert IMarketplaceTypes.StakeTooLarge(role, stake, type(uint128).max);
    }
}
