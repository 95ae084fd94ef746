"""MD2 (RFC 1319), which IoT SQL's md2() uses and OpenSSL 3 no longer offers to hashlib."""

from __future__ import annotations

# RFC 1319's S table: a permutation of 0..255 made from the digits of pi.
_S = bytes.fromhex(
    "292e43c9a2d87c013d3654a1ecf0061362a705f3c0c7738c98932bd9bc4c82ca"
    "1e9b573cfdd4e01667426f188a17e512be4ec4d6da9ede49a0fbf58ebb2fee7a"
    "a968799115b2073f94c210890b225f21807f5d9a5a903227353ecce7bff79703"
    "ff1930b348a5b5d1d75e922aac56aac64fb838d296a47db676fc6be29c7404f1"
    "459d705964718720865bcf65e62da8021b6025adaeb0b9f61c46616934407e0f"
    "5547a323dd51af3ac35cf9cebac5ea262c530d6e85288409d3dfcdf441814d52"
    "6adc37c86cc1abfa24e17b080cbdb14a7888958be363e86de9cbd5fe3b001d39"
    "f2efb70e6658d0e4a67772f8eb754b0a314450b48fed1f1adb998d339f118314"
)


def md2_hexdigest(data: bytes) -> str:
    padding = 16 - len(data) % 16
    message = data + bytes([padding]) * padding
    checksum = bytearray(16)
    last = 0
    for block in range(0, len(message), 16):
        for j in range(16):
            checksum[j] ^= _S[message[block + j] ^ last]
            last = checksum[j]
    message += bytes(checksum)
    state = bytearray(48)
    for block in range(0, len(message), 16):
        for j in range(16):
            state[16 + j] = message[block + j]
            state[32 + j] = state[16 + j] ^ state[j]
        t = 0
        for round_number in range(18):
            for k in range(48):
                state[k] ^= _S[t]
                t = state[k]
            t = (t + round_number) % 256
    return state[:16].hex()
