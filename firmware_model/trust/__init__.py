"""The chain of trust: fused root-key hash -> keystore -> image-signing keys -> images,
and the fuse map that holds the root-key hash and the anti-rollback counters."""
