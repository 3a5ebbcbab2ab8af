//! Version text as Beacon accepts it.
//!
//! Versions are semver. The catalog blog that Beacon comes from registers
//! two-part versions such as `1.0`; those are read as `1.0.0` so both
//! notations name the same release and sort together.

use semver::Version;

/// Longest version text accepted. Semver itself has no bound; a registry key
/// does, and a 1 MB "version" is an attack, not a release.
pub const MAX_VERSION_LEN: usize = 64;

/// Why a version text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// Longer than [`MAX_VERSION_LEN`].
    #[error("version is {len} characters; at most {MAX_VERSION_LEN} are allowed")]
    TooLong {
        /// The length that was seen.
        len: usize,
    },
    /// A two-part version within the limit whose padded form (`1.2` read as
    /// `1.2.0`) is not: it would be stored and printed longer than the
    /// limit, and that text would no longer parse.
    #[error("version is {len} characters once read as MAJOR.MINOR.PATCH; at most {MAX_VERSION_LEN} are allowed")]
    TooLongPadded {
        /// The padded length.
        len: usize,
    },
    /// Not semver, even after padding a two-part version.
    #[error("`{text}` is not a version: expected semver such as 1.2.0 (or 1.2, read as 1.2.0): {reason}")]
    Invalid {
        /// The offending text.
        text: String,
        /// What the semver parser said.
        reason: String,
    },
}

/// Parses a version, reading the seed's two-part `1.0` as `1.0.0`.
pub fn parse_version(text: &str) -> Result<Version, VersionError> {
    if text.len() > MAX_VERSION_LEN {
        return Err(VersionError::TooLong { len: text.len() });
    }
    match Version::parse(text) {
        Ok(v) => Ok(v),
        Err(first) => {
            // Only a bare `MAJOR.MINOR` (optionally with pre-release or build
            // after it) is padded; anything else keeps semver's own message.
            let core_end = text.find(['-', '+']).unwrap_or(text.len());
            let (core, rest) = text.split_at(core_end);
            let padded = format!("{core}.0{rest}");
            if core.split('.').count() == 2
                && let Ok(v) = Version::parse(&padded)
            {
                // Found by fuzzing: a 63-character `1.2-…` was accepted and
                // printed as a 65-character `1.2.0-…` that no longer parsed.
                if padded.len() > MAX_VERSION_LEN {
                    return Err(VersionError::TooLongPadded { len: padded.len() });
                }
                return Ok(v);
            }
            Err(VersionError::Invalid { text: crate::validation::shown(text), reason: first.to_string() })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_part_versions_are_padded() {
        assert_eq!(parse_version("1.0").unwrap(), Version::new(1, 0, 0));
        assert_eq!(parse_version("2.3-beta.1").unwrap(), Version::parse("2.3.0-beta.1").unwrap());
    }

    #[test]
    fn full_semver_is_kept() {
        assert_eq!(parse_version("1.2.3").unwrap(), Version::new(1, 2, 3));
    }

    #[test]
    fn garbage_is_refused_with_the_text() {
        for bad in ["", "1", "v1.0", "1.0.0.0", "one.two", "1..2"] {
            let err = parse_version(bad).unwrap_err();
            assert!(err.to_string().contains(&format!("`{bad}`")), "{err}");
        }
        assert!(matches!(parse_version(&"1".repeat(65)), Err(VersionError::TooLong { len: 65 })));
    }

    #[test]
    fn a_two_part_version_that_pads_past_the_limit_is_refused() {
        // The fuzzer's find (fuzz/regressions/requirements/): accepted, it
        // printed as text that did not parse back.
        let text = format!("1.2-{}", "a".repeat(MAX_VERSION_LEN - 4));
        assert_eq!(text.len(), MAX_VERSION_LEN);
        let err = parse_version(&text).unwrap_err();
        assert_eq!(err, VersionError::TooLongPadded { len: MAX_VERSION_LEN + 2 });
        assert!(err.to_string().contains("once read as MAJOR.MINOR.PATCH"), "{err}");
        let fits = format!("1.2-{}", "a".repeat(MAX_VERSION_LEN - 6));
        let v = parse_version(&fits).unwrap();
        assert_eq!(parse_version(&v.to_string()).unwrap(), v, "what is accepted prints back to itself");
    }
}
