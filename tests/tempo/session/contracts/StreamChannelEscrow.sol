// SPDX-License-Identifier: MIT
// A session v1 escrow for tests, written for mpp_client from the Tempo session spec's function
// list, events and EIP-712 domain (not derived from any other implementation).
//
// A payer locks a TIP-20 deposit in a channel for one payee. Off chain the payer signs
// cumulative vouchers (EIP-712, domain "Tempo Stream Channel" version "1"); the payee redeems
// the highest with settle (channel stays open) or close (the rest goes back to the payer).
// If the payee disappears the payer can requestClose and, after a grace period, withdraw.
pragma solidity ^0.8.20;

interface ITip20 {
    function transferFrom(address from, address to, uint256 amount) external returns (bool);
    function transfer(address to, uint256 amount) external returns (bool);
}

contract StreamChannelEscrow {
    struct Channel {
        address payer;
        address payee;
        address token;
        address authorizedSigner;
        uint128 deposit;
        uint128 settled;
        uint64 closeRequestedAt;
        bool finalized;
    }

    uint64 public constant CLOSE_GRACE_PERIOD = 900;

    bytes32 private constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 private constant VOUCHER_TYPEHASH =
        keccak256("Voucher(bytes32 channelId,uint128 cumulativeAmount)");
    // Half the secp256k1 group order: signatures with a larger s are malleable copies.
    uint256 private constant HALF_N =
        0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;

    mapping(bytes32 => Channel) public channels;

    event ChannelOpened(
        bytes32 indexed channelId,
        address indexed payer,
        address indexed payee,
        address token,
        address authorizedSigner,
        bytes32 salt,
        uint256 deposit
    );
    event Settled(bytes32 indexed channelId, address indexed payee, uint256 cumulativeAmount, uint256 delta);
    event TopUp(bytes32 indexed channelId, address indexed payer, uint256 additionalDeposit, uint256 newDeposit);
    event CloseRequested(bytes32 indexed channelId, address indexed payer, uint256 closeGraceEnd);
    event ChannelClosed(bytes32 indexed channelId, address indexed payer, address indexed payee, uint256 settled, uint256 refunded);
    event Withdrawn(bytes32 indexed channelId, address indexed payer, uint256 amount);

    error NotPayer();
    error NotPayee();
    error ChannelExists();
    error ChannelMissing();
    error ChannelFinalized();
    error BadSignature();
    error AmountExceedsDeposit();
    error AmountNotIncreasing();
    error GracePeriodRunning();
    error NoCloseRequested();
    error TransferFailed();
    error ZeroDeposit();

    function domainSeparator() public view returns (bytes32) {
        return keccak256(
            abi.encode(
                DOMAIN_TYPEHASH,
                keccak256(bytes("Tempo Stream Channel")),
                keccak256(bytes("1")),
                block.chainid,
                address(this)
            )
        );
    }

    function computeChannelId(
        address payer,
        address payee,
        address token,
        bytes32 salt,
        address authorizedSigner
    ) public view returns (bytes32) {
        return keccak256(abi.encode(payer, payee, token, salt, authorizedSigner, address(this), block.chainid));
    }

    function getVoucherDigest(bytes32 channelId, uint128 cumulativeAmount) public view returns (bytes32) {
        bytes32 structHash = keccak256(abi.encode(VOUCHER_TYPEHASH, channelId, cumulativeAmount));
        return keccak256(abi.encodePacked("\x19\x01", domainSeparator(), structHash));
    }

    function getChannel(bytes32 channelId) external view returns (Channel memory) {
        return channels[channelId];
    }

    function open(
        address payee,
        address token,
        uint128 deposit,
        bytes32 salt,
        address authorizedSigner
    ) external returns (bytes32 channelId) {
        if (deposit == 0) revert ZeroDeposit();
        channelId = computeChannelId(msg.sender, payee, token, salt, authorizedSigner);
        if (channels[channelId].payer != address(0)) revert ChannelExists();
        channels[channelId] = Channel(msg.sender, payee, token, authorizedSigner, deposit, 0, 0, false);
        _pull(token, msg.sender, deposit);
        emit ChannelOpened(channelId, msg.sender, payee, token, authorizedSigner, salt, deposit);
    }

    function topUp(bytes32 channelId, uint256 additionalDeposit) external {
        Channel storage channel = _live(channelId);
        if (msg.sender != channel.payer) revert NotPayer();
        uint256 grown = uint256(channel.deposit) + additionalDeposit;
        require(grown <= type(uint128).max, "deposit overflow");
        channel.deposit = uint128(grown);
        // A top-up answers a server that is still there: a pending forced close is cancelled.
        channel.closeRequestedAt = 0;
        _pull(channel.token, msg.sender, additionalDeposit);
        emit TopUp(channelId, msg.sender, additionalDeposit, grown);
    }

    function settle(bytes32 channelId, uint128 cumulativeAmount, bytes calldata signature) external {
        Channel storage channel = _live(channelId);
        if (msg.sender != channel.payee) revert NotPayee();
        _checkVoucher(channelId, channel, cumulativeAmount, signature);
        if (cumulativeAmount <= channel.settled) revert AmountNotIncreasing();
        uint256 delta = cumulativeAmount - channel.settled;
        channel.settled = cumulativeAmount;
        _push(channel.token, channel.payee, delta);
        emit Settled(channelId, channel.payee, cumulativeAmount, delta);
    }

    function close(bytes32 channelId, uint128 cumulativeAmount, bytes calldata signature) external {
        Channel storage channel = _live(channelId);
        if (msg.sender != channel.payee) revert NotPayee();
        uint256 delta = 0;
        if (cumulativeAmount > channel.settled) {
            _checkVoucher(channelId, channel, cumulativeAmount, signature);
            delta = cumulativeAmount - channel.settled;
            channel.settled = cumulativeAmount;
        }
        uint256 refund = uint256(channel.deposit) - channel.settled;
        channel.finalized = true;
        if (delta > 0) _push(channel.token, channel.payee, delta);
        if (refund > 0) _push(channel.token, channel.payer, refund);
        emit ChannelClosed(channelId, channel.payer, channel.payee, channel.settled, refund);
    }

    function requestClose(bytes32 channelId) external {
        Channel storage channel = _live(channelId);
        if (msg.sender != channel.payer) revert NotPayer();
        if (channel.closeRequestedAt == 0) channel.closeRequestedAt = uint64(block.timestamp);
        emit CloseRequested(channelId, msg.sender, uint256(channel.closeRequestedAt) + CLOSE_GRACE_PERIOD);
    }

    function withdraw(bytes32 channelId) external {
        Channel storage channel = _live(channelId);
        if (msg.sender != channel.payer) revert NotPayer();
        if (channel.closeRequestedAt == 0) revert NoCloseRequested();
        if (block.timestamp < uint256(channel.closeRequestedAt) + CLOSE_GRACE_PERIOD) revert GracePeriodRunning();
        uint256 refund = uint256(channel.deposit) - channel.settled;
        channel.finalized = true;
        if (refund > 0) _push(channel.token, channel.payer, refund);
        emit Withdrawn(channelId, channel.payer, refund);
        emit ChannelClosed(channelId, channel.payer, channel.payee, channel.settled, refund);
    }

    function _live(bytes32 channelId) private view returns (Channel storage channel) {
        channel = channels[channelId];
        if (channel.payer == address(0)) revert ChannelMissing();
        if (channel.finalized) revert ChannelFinalized();
    }

    function _checkVoucher(
        bytes32 channelId,
        Channel storage channel,
        uint128 cumulativeAmount,
        bytes calldata signature
    ) private view {
        if (cumulativeAmount > channel.deposit) revert AmountExceedsDeposit();
        address expected = channel.authorizedSigner == address(0) ? channel.payer : channel.authorizedSigner;
        if (_recover(getVoucherDigest(channelId, cumulativeAmount), signature) != expected) revert BadSignature();
    }

    function _recover(bytes32 digest, bytes calldata signature) private pure returns (address signer) {
        bytes32 r;
        bytes32 s;
        uint8 v;
        if (signature.length == 65) {
            r = bytes32(signature[0:32]);
            s = bytes32(signature[32:64]);
            v = uint8(signature[64]);
            if (v < 27) v += 27;
        } else if (signature.length == 64) {
            // EIP-2098 compact form: the top bit of the second word is the y parity.
            r = bytes32(signature[0:32]);
            bytes32 vs = bytes32(signature[32:64]);
            s = vs & bytes32(0x7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff);
            v = uint8(uint256(vs >> 255)) + 27;
        } else {
            revert BadSignature();
        }
        if (uint256(s) > HALF_N || (v != 27 && v != 28)) revert BadSignature();
        signer = ecrecover(digest, v, r, s);
        if (signer == address(0)) revert BadSignature();
    }

    function _pull(address token, address from, uint256 amount) private {
        if (!ITip20(token).transferFrom(from, address(this), amount)) revert TransferFailed();
    }

    function _push(address token, address to, uint256 amount) private {
        if (!ITip20(token).transfer(to, amount)) revert TransferFailed();
    }
}
