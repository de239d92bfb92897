// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IMarketplace} from "./IMarketplace.sol";

/// @title Marketplace — first compiling skeleton (bodies follow)
contract Marketplace is IMarketplace {
    uint256 private _count;

    function newModel(ModelParams calldata) external payable returns (uint256 modelId) { modelId = ++_count; }
    function payForModel(uint256) external payable {}
    function buyLicense(uint256) external payable {}
    function joinAsTrainer(uint256) external payable {}
    function joinAsValidator(uint256) external payable {}
    function joinAsAggregator(uint256) external payable {}
    function startTraining(uint256) external {}
    function cancelModel(uint256) external {}
    function commitUpdate(uint256, uint32, bytes32) external {}
    function revealUpdate(uint256, uint32, bytes32, uint64, bytes32) external {}
    function submitScores(uint256, uint32, int64[] calldata) external {}
    function publishGlobalModel(uint256, uint32, bytes32, int64) external {}
    function confirmGlobalModel(uint256, uint32, bool) external {}
    function closeRound(uint256) external {}
    function finalizeContract(uint256) external {}
    function generateTrainingPayments(uint256) external {}
    function withdraw() external {}
    function modelCount() external view returns (uint256) { return _count; }
    function getModel(uint256) external view returns (ModelParams memory params, ModelState memory state) {}
    function getRound(uint256, uint32) external view returns (RoundView memory r) {}
    function revealedUpdates(uint256, uint32) external view returns (address[] memory, bytes32[] memory, uint64[] memory) {}
    function utilities(uint256, uint32) external view returns (int64[] memory) {}
    function scoresOf(uint256, uint32, address) external view returns (bool, int64[] memory) {}
    function hasConfirmed(uint256, uint32, address) external view returns (bool, bool) {}
    function commitmentOf(uint256 modelId, uint32 round, bytes32 updateDigest, uint64 numSamples, bytes32 salt, address trainer)
        external pure returns (bytes32)
    {
        return keccak256(abi.encode(modelId, round, updateDigest, numSamples, salt, trainer));
    }
    function hasCommitted(uint256, uint32, address) external view returns (bool) {}
    function hasRevealed(uint256, uint32, address) external view returns (bool) {}
    function trainers(uint256) external view returns (address[] memory) {}
    function validators(uint256) external view returns (address[] memory) {}
    function participant(uint256, address) external view returns (ParticipantView memory) {}
    function taskBalance(uint256) external view returns (uint256) {}
    function credit(address) external view returns (uint256) {}
    function totalCredit() external view returns (uint256) {}
}
