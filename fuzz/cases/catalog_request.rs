//! The catalog API's request handling (definition check, routing, body and
//! parameter parsing) on any request. The input is a request as text: a
//! first line `METHOD /path?query`, optionally `If-None-Match: value` on the
//! second, then the body. The catalog behind it is empty and accepts every
//! write: the fuzzer's throughput needs an in-memory one (DynamoDB Local
//! answers in milliseconds), and what is fuzzed is everything the API does
//! before and after it asks the registry. Nothing may panic, every answer
//! must be a status the API documents with a JSON object body, and a 400
//! must say what is wrong.
//!
//! The check is shared: the cargo-fuzz target (`fuzz/fuzz_targets/`) runs it
//! under libFuzzer, and `tests/tests/fuzz_replay.rs` replays the seeds and
//! every regression through it in the test suite.

use async_trait::async_trait;
use beacon_catalog_api::{ApiConfig, ApiRequest, handle};
use beacon_domain::ports::{
    ConsumerPage, Created, Existing, InstanceKey, NeedsDeclarations, PageToken, RegistrationPage, Registrations,
    ResolvedViews, ServiceInstances, StoreError,
};
use beacon_domain::view::{Needs, ResolvedItem};
use beacon_domain::{Registration, Status};

struct Empty;

#[async_trait]
impl Registrations for Empty {
    async fn put(&self, _: &Registration) -> Result<(), StoreError> {
        Ok(())
    }

    async fn create(&self, _: &Registration) -> Result<Created, StoreError> {
        Ok(Created::Created)
    }

    async fn heartbeat(&self, _: &InstanceKey, _: u64, _: i64) -> Result<Existing, StoreError> {
        Ok(Existing::NotRegistered)
    }

    async fn set_status(&self, _: &InstanceKey, _: Status, _: i64) -> Result<Existing, StoreError> {
        Ok(Existing::NotRegistered)
    }

    async fn delete(&self, _: &InstanceKey) -> Result<Existing, StoreError> {
        Ok(Existing::NotRegistered)
    }

    async fn instances(&self, _: &str) -> Result<ServiceInstances, StoreError> {
        Ok(ServiceInstances::default())
    }

    async fn list(&self, _: u32, _: Option<PageToken>) -> Result<RegistrationPage, StoreError> {
        Ok(RegistrationPage::default())
    }
}

#[async_trait]
impl NeedsDeclarations for Empty {
    async fn needs(&self, _: &str) -> Result<Option<Vec<String>>, StoreError> {
        Ok(None)
    }

    async fn put_needs(&self, _: &Needs, _: i64) -> Result<(), StoreError> {
        Ok(())
    }

    async fn delete_needs(&self, _: &str) -> Result<(), StoreError> {
        Ok(())
    }
}

#[async_trait]
impl ResolvedViews for Empty {
    async fn revision(&self, _: &str) -> Result<Option<u64>, StoreError> {
        Ok(None)
    }

    async fn resolved(&self, _: &str) -> Result<Option<ResolvedItem>, StoreError> {
        Ok(None)
    }

    async fn consumers(&self, _: u32, _: Option<PageToken>) -> Result<ConsumerPage, StoreError> {
        Ok(ConsumerPage::default())
    }
}

fn request(data: &[u8]) -> Option<ApiRequest> {
    let text = std::str::from_utf8(data).ok()?;
    let (first, rest) = text.split_once('\n').unwrap_or((text, ""));
    let (method, target) = first.split_once(' ')?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let (if_none_match, body) = match rest.strip_prefix("If-None-Match: ") {
        Some(r) => {
            let (v, b) = r.split_once('\n').unwrap_or((r, ""));
            (Some(v.to_owned()), b)
        }
        None => (None, rest),
    };
    Some(ApiRequest {
        method: method.to_owned(),
        path: path.to_owned(),
        query: url::form_urlencoded::parse(query.as_bytes()).into_owned().collect(),
        if_none_match,
        body: body.as_bytes().to_vec(),
    })
}

/// The statuses `infra/openapi.yaml` documents, and 405 for a method no
/// route has.
const DOCUMENTED: [u16; 8] = [200, 400, 403, 404, 405, 409, 413, 503];

/// One input: must not panic.
pub fn check(data: &[u8]) {
    let Some(request) = request(data) else { return };
    for unscoped_writes in [true, false] {
        let (status, body) =
            futures::executor::block_on(handle(&Empty, ApiConfig { unscoped_writes }, &request, 1_795_000_000));
        assert!(DOCUMENTED.contains(&status), "undocumented status {status} for {request:?}: {body}");
        assert!(body.is_object(), "a JSON object body: {body}");
        if status == 400 {
            assert!(body.to_string().len() > 20, "a 400 says what is wrong: {body}");
        }
    }
}
