//! The registry's table, named as a caller names it: by name in the
//! registry's own account, or by ARN from another account of the
//! Organization (DynamoDB takes a table's ARN wherever it takes its name,
//! and a cross-account call must use it). An ARN also says the Region, so
//! the client talks to the table's Region whatever the caller's default.

use std::fmt;

/// A table name or ARN that DynamoDB would refuse, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("table {given:?}: {why}")]
pub struct BadTable {
    /// What was given.
    pub given: String,
    /// What is wrong with it.
    pub why: String,
}

/// A table, by name or by ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRef {
    /// What requests name it by: the ARN when given, else the name.
    pub request: String,
    /// The table's own name.
    pub name: String,
    /// The Region and account, when named by ARN.
    pub region: Option<String>,
    /// The owning account, when named by ARN.
    pub account: Option<String>,
}

/// Whether `s` can be a Region's name as ARNs and endpoints spell it:
/// lower-case letters, digits and `-` (`eu-west-1`).
pub fn is_region_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn valid_name(name: &str) -> Result<(), String> {
    if !(3..=255).contains(&name.len()) {
        return Err(format!("a table name is 3 to 255 characters, not {}", name.len()));
    }
    match name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))) {
        Some(c) => Err(format!("a table name holds only letters, digits, '_', '.' and '-', not {c:?}")),
        None => Ok(()),
    }
}

impl TableRef {
    /// Reads `arn:<partition>:dynamodb:<region>:<account>:table/<name>` or
    /// a plain table name.
    pub fn parse(given: &str) -> Result<Self, BadTable> {
        let bad = |why: String| BadTable { given: given.to_owned(), why };
        if !given.starts_with("arn:") {
            valid_name(given).map_err(bad)?;
            return Ok(Self { request: given.to_owned(), name: given.to_owned(), region: None, account: None });
        }
        let parts: Vec<&str> = given.splitn(6, ':').collect();
        let [_, partition, service, region, account, resource] = parts.as_slice() else {
            return Err(bad("an ARN is arn:<partition>:dynamodb:<region>:<account>:table/<name>".into()));
        };
        if !partition.starts_with("aws") {
            return Err(bad(format!("the partition is aws, aws-cn or aws-us-gov, not {partition:?}")));
        }
        if *service != "dynamodb" {
            return Err(bad(format!("the ARN is of {service:?}, not of a DynamoDB table")));
        }
        if !is_region_name(region) {
            return Err(bad(format!("{region:?} is not a Region")));
        }
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad(format!("the account is 12 digits, not {account:?}")));
        }
        let Some(name) = resource.strip_prefix("table/") else {
            return Err(bad(format!("{resource:?} is not table/<name>")));
        };
        if name.contains('/') {
            return Err(bad("name the table itself, not its index or stream".into()));
        }
        valid_name(name).map_err(bad)?;
        Ok(Self {
            request: given.to_owned(),
            name: name.to_owned(),
            region: Some((*region).to_owned()),
            account: Some((*account).to_owned()),
        })
    }
}

impl fmt::Display for TableRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_or_an_arn_is_taken_and_the_arn_gives_region_and_account() {
        let name = TableRef::parse("beacon-dev").unwrap();
        assert_eq!((name.request.as_str(), name.region, name.account), ("beacon-dev", None, None));
        let arn = TableRef::parse("arn:aws:dynamodb:eu-west-1:111122223333:table/beacon-dev").unwrap();
        assert_eq!(arn.request, "arn:aws:dynamodb:eu-west-1:111122223333:table/beacon-dev");
        assert_eq!(arn.name, "beacon-dev");
        assert_eq!(arn.region.as_deref(), Some("eu-west-1"));
        assert_eq!(arn.account.as_deref(), Some("111122223333"));
        assert!(TableRef::parse("arn:aws-us-gov:dynamodb:us-gov-west-1:111122223333:table/t.1_x").is_ok());
    }

    #[test]
    fn a_bad_table_says_what_is_wrong() {
        for (given, says) in [
            ("ab", "3 to 255"),
            ("beacon dev", "not ' '"),
            ("arn:aws:sns:us-east-1:111122223333:table/beacon-dev", "not of a DynamoDB table"),
            ("arn:aws:dynamodb:us-east-1:1111:table/beacon-dev", "12 digits"),
            ("arn:aws:dynamodb:US-EAST-1:111122223333:table/beacon-dev", "not a Region"),
            ("arn:aws:dynamodb:us-east-1:111122223333:beacon-dev", "not table/<name>"),
            ("arn:aws:dynamodb:us-east-1:111122223333:table/beacon-dev/index/listing", "not its index"),
            ("arn:aws:dynamodb:us-east-1:111122223333:table/beacon*", "not '*'"),
            ("arn:aws:dynamodb:us-east-1", "arn:<partition>"),
            ("arn:gcp:dynamodb:us-east-1:111122223333:table/beacon-dev", "partition"),
        ] {
            let err = TableRef::parse(given).expect_err(given).to_string();
            assert!(err.contains(says) && err.contains(given), "{given}: {err}");
        }
    }
}
