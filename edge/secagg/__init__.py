"""Secure aggregation (SecAgg+, Bell et al. CCS 2020) building blocks.

Pure logic only: Shamir sharing over GF(2^8), the AES-CTR mask generator,
quantization to 32-bit words and the sparse neighbour graph. The device's
part of the protocol runs inside the TA (``ta/shamir.c``, ``ta/prg.c``); these
modules are what the aggregator runs and what the TA's C is checked against.
"""
