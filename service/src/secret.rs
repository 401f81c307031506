//! Comparing a secret someone presented with the configured one, in time that does not
//! depend on where they differ (API tokens, the drain token).

/// Whether `given` equals `expected`; the time taken depends only on the lengths.
pub fn same(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len() && given.iter().zip(expected).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    #[test]
    fn equal_secrets_only() {
        assert!(super::same(b"token-1", b"token-1"));
        assert!(!super::same(b"token-1", b"token-2"));
        assert!(!super::same(b"token", b"token-1"));
    }
}
