//! What a consumer needs: `name`, `name==1.2.0`, `name^1.2`, `name~1.2`,
//! `name>=1.2`, `name>=1.2,<2`, and comma-separated lists of them.
//!
//! In a list, a comma followed by an operator continues the previous
//! requirement's range; a comma followed by a letter starts a new one. Names
//! start with a letter and versions never do, so this is unambiguous:
//! `orders,payments==1.2.0,users>=1.2,<2` is three requirements.

use std::fmt;

use semver::{Comparator, Op, Version, VersionReq};

use crate::registration::validate_name;
use crate::version::parse_version;

/// Most requirements in one needs list (and so dependency edges per consumer).
pub const MAX_NEEDS: usize = 100;

/// One requirement on one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    service: String,
    /// Empty means "highest version with a healthy instance".
    comparators: Vec<Comparator>,
    req: VersionReq,
}

/// A needs list or requirement that could not be read; names the part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("requirement `{part}`: {reason}")]
pub struct RequirementError {
    /// The offending part of the text, as written.
    pub part: String,
    /// What is wrong with it.
    pub reason: String,
}

impl RequirementError {
    fn new(part: &str, reason: impl Into<String>) -> Self {
        Self { part: part.to_owned(), reason: reason.into() }
    }
}

impl Requirement {
    /// A requirement for the highest healthy version of `service`.
    pub fn any(service: &str) -> Result<Self, RequirementError> {
        validate_name("service", service).map_err(|e| RequirementError::new(service, e.rule))?;
        Ok(Self { service: service.to_owned(), comparators: Vec::new(), req: VersionReq::STAR })
    }

    /// Parses exactly one requirement (its range may contain commas).
    pub fn parse(text: &str) -> Result<Self, RequirementError> {
        let mut all = parse_needs(text)?;
        match all.len() {
            1 => Ok(all.remove(0)),
            n => Err(RequirementError::new(text, format!("expected one requirement, found {n}"))),
        }
    }

    /// The service this requirement names.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// Whether `version` satisfies the range. Pre-releases match only when a
    /// comparator names a pre-release of the same major.minor.patch (semver's
    /// rule), so `orders` never resolves to `2.0.0-rc.1` by accident.
    pub fn matches(&self, version: &Version) -> bool {
        self.req.matches(version)
    }

    fn add_constraint(&mut self, whole: &str, text: &str) -> Result<(), RequirementError> {
        let text = text.trim();
        let comparator = if let Some(exact) = text.strip_prefix("==") {
            // The seed's exact notation. `==1.0` means exactly 1.0.0.
            let v = parse_version(exact.trim()).map_err(|e| RequirementError::new(whole, e.to_string()))?;
            Comparator { op: Op::Exact, major: v.major, minor: Some(v.minor), patch: Some(v.patch), pre: v.pre }
        } else {
            if text.starts_with('=') {
                return Err(RequirementError::new(whole, "use `==` for an exact version (as in payments==1.2.0)"));
            }
            if !text.starts_with(['^', '~', '>', '<']) {
                return Err(RequirementError::new(
                    whole,
                    format!("`{}` must start with one of == ^ ~ >= > <= <", crate::registration::shown(text)),
                ));
            }
            if text.len() > 2 * crate::version::MAX_VERSION_LEN {
                return Err(RequirementError::new(whole, "the version range is too long"));
            }
            let c = Comparator::parse(text)
                .map_err(|e| RequirementError::new(whole, format!("`{}`: {e}", crate::registration::shown(text))))?;
            if c.op == Op::Wildcard || c.op == Op::Exact {
                return Err(RequirementError::new(
                    whole,
                    format!("`{}` is not a supported range", crate::registration::shown(text)),
                ));
            }
            c
        };
        self.comparators.push(comparator);
        self.req = VersionReq { comparators: self.comparators.clone() };
        Ok(())
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.service)?;
        for (i, c) in self.comparators.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if c.op == Op::Exact {
                // Exact comparators always carry minor and patch (see
                // add_constraint), so this prints a whole version.
                let v = Version {
                    major: c.major,
                    minor: c.minor.unwrap_or(0),
                    patch: c.patch.unwrap_or(0),
                    pre: c.pre.clone(),
                    build: semver::BuildMetadata::EMPTY,
                };
                write!(f, "=={v}")?;
            } else {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

impl std::str::FromStr for Requirement {
    type Err = RequirementError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl serde::Serialize for Requirement {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Requirement {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Requirement::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Parses a comma-separated needs list (`NEEDED_SERVICES`, `beacon needs`).
///
/// Whitespace around parts is ignored. An empty list is an error: a consumer
/// that needs nothing declares no needs.
pub fn parse_needs(text: &str) -> Result<Vec<Requirement>, RequirementError> {
    let mut out: Vec<Requirement> = Vec::new();
    for part in text.split(',') {
        let trimmed = part.trim();
        if trimmed.is_empty() {
            return Err(RequirementError::new(text, "has an empty part (two commas in a row, or a trailing comma)"));
        }
        let first = trimmed.chars().next().unwrap_or(' ');
        if first.is_ascii_alphabetic() {
            let name_end =
                trimmed.find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_')).unwrap_or(trimmed.len());
            let (name, rest) = trimmed.split_at(name_end);
            let mut req = Requirement::any(name)?;
            if !rest.trim().is_empty() {
                req.add_constraint(trimmed, rest)?;
            }
            out.push(req);
        } else if let Some(prev) = out.last_mut() {
            let whole = format!("{prev},{trimmed}");
            prev.add_constraint(&whole, trimmed)?;
        } else {
            return Err(RequirementError::new(
                trimmed,
                "must start with a service name (a letter); a range continues a previous requirement",
            ));
        }
        if out.len() > MAX_NEEDS {
            return Err(RequirementError::new(text, format!("lists more than {MAX_NEEDS} requirements")));
        }
    }
    Ok(out)
}

/// Formats a needs list back to its text form.
pub fn format_needs(needs: &[Requirement]) -> String {
    needs.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn bare_name_matches_any_release_but_not_prereleases() {
        let r = Requirement::parse("orders").unwrap();
        assert_eq!(r.service(), "orders");
        assert!(r.matches(&v("0.1.0")) && r.matches(&v("99.0.0")));
        assert!(!r.matches(&v("2.0.0-rc.1")));
    }

    #[test]
    fn seed_exact_notation() {
        let r = Requirement::parse("payments==1.2.0").unwrap();
        assert!(r.matches(&v("1.2.0")));
        assert!(!r.matches(&v("1.2.1")));
        let two_part = Requirement::parse("helloworld==1.0").unwrap();
        assert!(two_part.matches(&v("1.0.0")) && !two_part.matches(&v("1.0.1")));
        assert_eq!(two_part.to_string(), "helloworld==1.0.0");
    }

    #[test]
    fn caret_tilde_and_ranges() {
        let caret = Requirement::parse("users^1.2").unwrap();
        assert!(caret.matches(&v("1.9.0")) && !caret.matches(&v("2.0.0")) && !caret.matches(&v("1.1.9")));
        let tilde = Requirement::parse("users~1.2").unwrap();
        assert!(tilde.matches(&v("1.2.9")) && !tilde.matches(&v("1.3.0")));
        let ge = Requirement::parse("users>=1.2").unwrap();
        assert!(ge.matches(&v("7.0.0")) && !ge.matches(&v("1.1.0")));
        let range = Requirement::parse("users>=1.2,<2").unwrap();
        assert!(range.matches(&v("1.5.0")) && !range.matches(&v("2.0.0")));
        assert_eq!(range.to_string(), "users>=1.2, <2".replace(' ', ""));
    }

    #[test]
    fn prerelease_only_when_named() {
        let r = Requirement::parse("orders>=2.0.0-rc.1").unwrap();
        assert!(r.matches(&v("2.0.0-rc.2")));
        assert!(!Requirement::parse("orders>=1").unwrap().matches(&v("2.0.0-rc.2")));
        assert!(Requirement::parse("orders==2.0.0-rc.1").unwrap().matches(&v("2.0.0-rc.1")));
    }

    #[test]
    fn needs_list_splits_on_names_not_on_every_comma() {
        let needs = parse_needs("orders, payments==1.2.0,users>=1.2,<2").unwrap();
        let names: Vec<_> = needs.iter().map(Requirement::service).collect();
        assert_eq!(names, ["orders", "payments", "users"]);
        assert_eq!(format_needs(&needs), "orders,payments==1.2.0,users>=1.2,<2");
    }

    #[test]
    fn bad_needs_name_the_part() {
        for (text, part) in [
            ("orders,,users", "orders,,users"),
            (">=1.2", ">=1.2"),
            ("orders=1.2", "orders=1.2"),
            ("orders@1.2", "orders@1.2"),
            ("orders==banana", "orders==banana"),
            ("orders,<2x", "orders,<2x"),
            ("9orders", "9orders"),
        ] {
            let err = parse_needs(text).unwrap_err();
            assert_eq!(err.part, part, "{text}: {err}");
        }
        assert!(parse_needs("").is_err());
        let many = vec!["a"; MAX_NEEDS + 1].join(",");
        assert!(parse_needs(&many).is_err());
    }
}
