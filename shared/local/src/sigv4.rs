//! SigV4 verification for `beacon dev`'s loopback catalog server, so local
//! clients are exercised as they would be behind API Gateway with IAM auth
//! (which verifies signatures itself in AWS). Implements the documented
//! algorithm (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html>)
//! for header-signed requests; the tests sign with the AWS SDK's own signer.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Why a request's signature was refused (shown to the client as the 403's
/// message: what to fix, never the expected signature).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// A fixed rule was broken (missing or malformed part, expired, wrong
    /// scope, body hash, signature).
    #[error("{0}")]
    Rejected(&'static str),
    /// The access key is not the local one.
    #[error("unknown access key {0}")]
    UnknownKey(String),
    /// A header the signature covers is absent.
    #[error("signed header {0} is missing")]
    MissingSignedHeader(String),
}

/// A request as the verifier needs it.
#[derive(Debug)]
pub struct SignedRequest<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// The path as sent (already URI-encoded by the client).
    pub path: &'a str,
    /// The raw query string (without `?`).
    pub query: &'a str,
    /// Headers, any case.
    pub headers: &'a [(String, String)],
    /// The body.
    pub body: &'a [u8],
}

fn header<'a>(req: &'a SignedRequest<'_>, name: &str) -> Option<&'a str> {
    req.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes any key"));
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// Epoch seconds of an `X-Amz-Date` (`20261124T213600Z`).
fn parse_amz_date(s: &str) -> Option<i64> {
    if s.len() != 16 || &s[8..9] != "T" || !s.ends_with('Z') {
        return None;
    }
    let n = |a: usize, b: usize| s.get(a..b)?.parse::<i64>().ok();
    let (y, mo, d, h, mi, se) = (n(0, 4)?, n(4, 6)?, n(6, 8)?, n(9, 11)?, n(11, 13)?, n(13, 15)?);
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + se)
}

/// Verifies a header-signed request with the secret for its access key, at
/// `now` (epoch seconds; requests more than 15 minutes off are refused), and
/// returns the access key that signed it.
pub fn verify(
    req: &SignedRequest<'_>,
    secret_for: impl Fn(&str) -> Option<String>,
    now: i64,
) -> Result<String, AuthError> {
    let auth = header(req, "authorization")
        .ok_or(AuthError::Rejected("missing Authorization: sign the request with SigV4"))?;
    let rest =
        auth.strip_prefix("AWS4-HMAC-SHA256 ").ok_or(AuthError::Rejected("Authorization is not AWS4-HMAC-SHA256"))?;
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed_headers = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let (Some(credential), Some(signed_headers), Some(signature)) = (credential, signed_headers, signature) else {
        return Err(AuthError::Rejected("Authorization lacks Credential, SignedHeaders or Signature"));
    };
    let mut scope_parts = credential.splitn(5, '/');
    let (Some(access_key), Some(date), Some(region), Some(service), Some("aws4_request")) =
        (scope_parts.next(), scope_parts.next(), scope_parts.next(), scope_parts.next(), scope_parts.next())
    else {
        return Err(AuthError::Rejected("Credential scope is malformed"));
    };
    let secret = secret_for(access_key).ok_or_else(|| AuthError::UnknownKey(access_key.to_owned()))?;
    let amz_date = header(req, "x-amz-date").ok_or(AuthError::Rejected("missing X-Amz-Date"))?;
    let when = parse_amz_date(amz_date).ok_or(AuthError::Rejected("X-Amz-Date is malformed"))?;
    if (now - when).abs() > 15 * 60 {
        return Err(AuthError::Rejected("the signature has expired (X-Amz-Date is more than 15 minutes off)"));
    }
    if !amz_date.starts_with(date) {
        return Err(AuthError::Rejected("the credential scope's date does not match X-Amz-Date"));
    }
    let names: Vec<&str> = signed_headers.split(';').collect();
    if !names.contains(&"host") {
        return Err(AuthError::Rejected("the host header must be signed"));
    }
    let mut canonical_headers = String::new();
    for name in &names {
        let values: Vec<String> = req
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        if values.is_empty() {
            return Err(AuthError::MissingSignedHeader(name.to_string()));
        }
        canonical_headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    let payload_hash = hex::encode(Sha256::digest(req.body));
    if let Some(claimed) = header(req, "x-amz-content-sha256")
        && claimed != "UNSIGNED-PAYLOAD"
        && claimed != payload_hash
    {
        return Err(AuthError::Rejected("x-amz-content-sha256 does not match the body"));
    }
    let mut query: Vec<(&str, &str)> =
        req.query.split('&').filter(|p| !p.is_empty()).map(|p| p.split_once('=').unwrap_or((p, ""))).collect();
    query.sort_unstable();
    let canonical_query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        if req.path.is_empty() { "/" } else { req.path },
        canonical_query.join("&"),
        canonical_headers,
        signed_headers,
        payload_hash
    );
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let string_to_sign =
        format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}", hex::encode(Sha256::digest(canonical_request.as_bytes())));
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date);
    let k_region = hmac(&k_date, region);
    let k_service = hmac(&k_region, service);
    let k_signing = hmac(&k_service, "aws4_request");
    let expected = hex::encode(hmac(&k_signing, &string_to_sign));
    // Compare without an early exit, so timing does not leak the signature.
    let matches = expected.len() == signature.len()
        && expected.bytes().zip(signature.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
    if matches { Ok(access_key.to_owned()) } else { Err(AuthError::Rejected("the signature does not match")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amz_dates_parse() {
        assert_eq!(parse_amz_date("19700101T000000Z"), Some(0));
        assert_eq!(parse_amz_date("20150830T123600Z"), Some(1_440_938_160));
        assert_eq!(parse_amz_date("2015-08-30"), None);
    }

    /// AWS's documented example (GET iam ListUsers, "get-vanilla"-style).
    #[test]
    fn documented_example_verifies_and_tampering_does_not() {
        let headers = vec![
            ("Host".to_string(), "iam.amazonaws.com".to_string()),
            ("Content-Type".to_string(), "application/x-www-form-urlencoded; charset=utf-8".to_string()),
            ("X-Amz-Date".to_string(), "20150830T123600Z".to_string()),
            (
                "Authorization".to_string(),
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-date, \
                 Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
                    .to_string(),
            ),
        ];
        let req = SignedRequest {
            method: "GET",
            path: "/",
            query: "Action=ListUsers&Version=2010-05-08",
            headers: &headers,
            body: b"",
        };
        let secret = |_: &str| Some("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".to_string());
        assert_eq!(verify(&req, secret, 1_440_938_160), Ok("AKIDEXAMPLE".to_string()), "the signer is named");
        let tampered = SignedRequest { query: "Action=DeleteUser&Version=2010-05-08", ..req };
        assert!(verify(&tampered, secret, 1_440_938_160).is_err());
        assert!(verify(&req, secret, 1_440_938_160 + 3600).is_err(), "an old signature must expire");
    }
}
