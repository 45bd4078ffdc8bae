//! Hex rendering for traces and test vectors.

use std::fmt::Write as _;

/// Renders bytes as lower-case hex pairs separated by spaces (`"00 03 11"`).
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        // Writing to a String cannot fail.
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_pairs() {
        assert_eq!(hex(&[0x00, 0xab, 0x7f]), "00 ab 7f");
        assert_eq!(hex(&[]), "");
    }
}
