//! Who refused what. AWS words an access-denied answer as `User: <principal>
//! is not authorized to perform: <action> on resource: <resource> because
//! …`; across accounts the resource is the registry's (its ARN names the
//! account). Beacon's errors lead with that, so a member account's
//! operator reads at once which account and resource refused which
//! principal, and why is kept after it.

use std::fmt;

/// A refusal, read from an access-denied message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Who asked (`arn:aws:sts::222233334444:assumed-role/…`).
    pub principal: String,
    /// What it asked to do (`dynamodb:PutItem`).
    pub action: String,
    /// On what, as AWS names it (an ARN, or the name the request used).
    pub resource: String,
}

impl Refusal {
    /// Reads AWS's wording; `None` for any other message.
    pub fn parse(message: &str) -> Option<Self> {
        let rest = message.split_once("User: ")?.1;
        let (principal, rest) = rest.split_once(" is not authorized to perform: ")?;
        let (action, rest) = rest.split_once(" on resource: ")?;
        let resource = rest.split_whitespace().next()?.trim_end_matches(['.', ',']);
        Some(Self {
            principal: principal.trim().to_owned(),
            action: action.trim().to_owned(),
            resource: resource.to_owned(),
        })
    }

    /// The account that owns the resource, when AWS named it by ARN
    /// (`arn:partition:service:region:account:…`).
    pub fn account(&self) -> Option<&str> {
        let mut parts = self.resource.split(':');
        (parts.next() == Some("arn")).then_some(())?;
        let account = parts.nth(3)?;
        (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())).then_some(account)
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.account() {
            Some(account) => {
                write!(f, "account {account} refused {} to {} on {}", self.action, self.principal, self.resource)
            }
            None => write!(f, "{} was refused {} on {}", self.principal, self.action, self.resource),
        }
    }
}

/// Whether `code` is one of AWS's access-denied codes (DynamoDB and SQS
/// say `AccessDenied…`, SNS `AuthorizationError`).
pub fn is_refusal(code: &str) -> bool {
    code.starts_with("AccessDenied") || code == "AuthorizationError"
}

/// An error's text for `code` and AWS's `message`: a refusal leads with who
/// refused what (then AWS's own words); anything else is `code: message`.
pub fn describe(code: &str, message: &str) -> String {
    match Refusal::parse(message).filter(|_| is_refusal(code)) {
        Some(r) => format!("{r} ({code}: {message})"),
        None => format!("{code}: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CROSS_ACCOUNT: &str = "User: arn:aws:sts::222233334444:assumed-role/beacon-service-orders/i-1 is not \
        authorized to perform: dynamodb:PutItem on resource: arn:aws:dynamodb:us-east-1:111122223333:table/beacon-dev \
        because no resource-based policy allows the dynamodb:PutItem action";

    #[test]
    fn a_cross_account_refusal_names_the_account_the_resource_and_the_principal() {
        let r = Refusal::parse(CROSS_ACCOUNT).unwrap();
        assert_eq!(r.principal, "arn:aws:sts::222233334444:assumed-role/beacon-service-orders/i-1");
        assert_eq!(r.action, "dynamodb:PutItem");
        assert_eq!(r.resource, "arn:aws:dynamodb:us-east-1:111122223333:table/beacon-dev");
        assert_eq!(r.account(), Some("111122223333"));
        let text = describe("AccessDeniedException", CROSS_ACCOUNT);
        assert!(
            text.starts_with(
                "account 111122223333 refused dynamodb:PutItem to arn:aws:sts::222233334444:assumed-role/\
                 beacon-service-orders/i-1 on arn:aws:dynamodb:us-east-1:111122223333:table/beacon-dev"
            ),
            "{text}"
        );
        assert!(text.ends_with("because no resource-based policy allows the dynamodb:PutItem action)"), "{text}");
    }

    #[test]
    fn a_resource_named_without_an_arn_has_no_account_and_other_errors_are_kept_as_they_are() {
        let r = Refusal::parse("User: u is not authorized to perform: sqs:SendMessage on resource: q.").unwrap();
        assert_eq!((r.resource.as_str(), r.account()), ("q", None));
        assert_eq!(
            describe("AccessDenied", "User: u is not authorized to perform: x on resource: q"),
            "u was refused x on q (AccessDenied: User: u is not authorized to perform: x on resource: q)"
        );
        assert_eq!(describe("ThrottlingException", "Rate exceeded"), "ThrottlingException: Rate exceeded");
        // The wording alone is not a refusal: the code must say so.
        assert_eq!(describe("ValidationException", CROSS_ACCOUNT), format!("ValidationException: {CROSS_ACCOUNT}"));
        assert!(Refusal::parse("Access denied").is_none());
        let short =
            Refusal { principal: "p".into(), action: "a".into(), resource: "arn:aws:sns:us-east-1:12345:t".into() };
        assert_eq!(short.account(), None, "not a 12-digit account");
    }
}
