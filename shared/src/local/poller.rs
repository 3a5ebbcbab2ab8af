//! The local event source mapping: reads every shard of the table's stream
//! and invokes the fan-out handler with exactly the event Lambda would send.
//!
//! What it reproduces of AWS's DynamoDB event source mapping
//! (<https://docs.aws.amazon.com/lambda/latest/dg/with-ddb.html>):
//!
//! - shard lineage: a child shard is read only after its parent is finished,
//!   so per-item order holds across shard splits;
//! - polling at a fixed rate per shard (AWS: 4 GetRecords a second);
//! - batching: up to `batch_size` records, waiting up to `batching_window`
//!   for a batch to fill;
//! - filter criteria (the template's, see [`super::filter`]) applied before
//!   batching; filtered records are consumed without an invocation;
//! - `ReportBatchItemFailures`: on a partial failure, everything before the
//!   lowest failed sequence number is checkpointed and the batch is retried
//!   from that record;
//! - `BisectBatchOnFunctionError`: a failing batch is retried in halves;
//! - `MaximumRetryAttempts`: after that many retries the remaining records'
//!   batch metadata goes to the on-failure SQS queue and the shard moves on;
//! - checkpoints persisted after every batch, so a restart resumes after the
//!   last processed record and loses nothing.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use aws_sdk_dynamodbstreams::Client as Streams;
use aws_sdk_dynamodbstreams::types::{Record, ShardIteratorType};
use futures::future::BoxFuture;
use serde_json::{Value, json};
use tokio::sync::{Mutex, watch};
use tracing::{debug, warn};

use super::filter::FilterCriteria;
use crate::item::from_stream_sdk;

/// The handler the mapping invokes: a Lambda function's contract.
pub type Handler = Arc<dyn Fn(StreamEvent) -> BoxFuture<'static, Result<DynamoDbEventResponse, String>> + Send + Sync>;

/// The mapping's settings; defaults follow AWS's (and the template's).
#[derive(Debug, Clone)]
pub struct MappingConfig {
    /// Most records per invocation (AWS default 100).
    pub batch_size: usize,
    /// How long to wait for a batch to fill (AWS default 0).
    pub batching_window: Duration,
    /// Time between GetRecords calls on an idle shard (AWS: 250 ms).
    pub poll_interval: Duration,
    /// Retries of a failing batch before it goes to the on-failure queue;
    /// `None` retries until the records expire (AWS's -1).
    pub max_retry_attempts: Option<u32>,
    /// Retry a failing batch in halves.
    pub bisect_on_error: bool,
    /// Where exhausted batches' metadata goes.
    pub on_failure_queue_url: Option<String>,
    /// Where checkpoints persist; `None` keeps them in memory only.
    pub checkpoint_path: Option<PathBuf>,
    /// Which records reach the handler.
    pub filter: FilterCriteria,
}

impl Default for MappingConfig {
    fn default() -> Self {
        Self {
            batch_size: 100,
            batching_window: Duration::ZERO,
            poll_interval: Duration::from_millis(250),
            max_retry_attempts: Some(5),
            bisect_on_error: true,
            on_failure_queue_url: None,
            checkpoint_path: None,
            filter: FilterCriteria::beacon(),
        }
    }
}

/// Counters a test or the dev runner can read while the mapping runs.
#[derive(Debug, Default)]
pub struct MappingStats {
    /// Handler invocations.
    pub invocations: AtomicU64,
    /// Records delivered to the handler (re-deliveries count again).
    pub records_delivered: AtomicU64,
    /// Records dropped by the filter.
    pub records_filtered: AtomicU64,
    /// Invocations that reported failures or errored.
    pub failed_invocations: AtomicU64,
    /// Batches sent to the on-failure queue.
    pub sent_to_on_failure: AtomicU64,
}

/// Per-shard progress: the last sequence number processed, and whether the
/// shard is finished.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct ShardCheckpoint {
    sequence: Option<String>,
    done: bool,
}

#[derive(Debug, Default)]
struct Checkpoints {
    shards: HashMap<String, ShardCheckpoint>,
    path: Option<PathBuf>,
}

impl Checkpoints {
    fn load(path: Option<PathBuf>) -> Self {
        let shards = path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        Self { shards, path }
    }

    fn save(&self) {
        let Some(path) = &self.path else { return };
        let tmp = path.with_extension("tmp");
        // Write + rename: a crash mid-write leaves the old checkpoint whole.
        let written = serde_json::to_vec(&self.shards)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(&tmp, bytes))
            .and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = written {
            warn!(path = %path.display(), error = %e, "could not save the stream checkpoint");
        }
    }
}

/// Orders sequence numbers, which are decimal strings of varying length.
fn seq_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// The event source mapping for one stream.
#[derive(Clone)]
pub struct Poller {
    streams: Streams,
    sqs: Option<aws_sdk_sqs::Client>,
    stream_arn: String,
    region: String,
    config: MappingConfig,
    handler: Handler,
    stats: Arc<MappingStats>,
    checkpoints: Arc<Mutex<Checkpoints>>,
}

impl std::fmt::Debug for Poller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poller").field("stream_arn", &self.stream_arn).field("config", &self.config).finish()
    }
}

impl Poller {
    /// A mapping from `stream_arn` to `handler`.
    pub fn new(
        streams: Streams,
        sqs: Option<aws_sdk_sqs::Client>,
        stream_arn: impl Into<String>,
        region: impl Into<String>,
        config: MappingConfig,
        handler: Handler,
    ) -> Self {
        let checkpoints = Checkpoints::load(config.checkpoint_path.clone());
        Self {
            streams,
            sqs,
            stream_arn: stream_arn.into(),
            region: region.into(),
            config,
            handler,
            stats: Arc::default(),
            checkpoints: Arc::new(Mutex::new(checkpoints)),
        }
    }

    /// Live counters.
    pub fn stats(&self) -> Arc<MappingStats> {
        self.stats.clone()
    }

    /// Runs until `shutdown` turns true. Shard workers finish their current
    /// batch and checkpoint before returning.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut started: HashSet<String> = HashSet::new();
        let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let mut finished: HashSet<String> =
            self.checkpoints.lock().await.shards.iter().filter(|(_, c)| c.done).map(|(id, _)| id.clone()).collect();
        let mut workers = tokio::task::JoinSet::new();
        loop {
            while let Ok(id) = done_rx.try_recv() {
                finished.insert(id);
            }
            match self.list_shards().await {
                Ok(shards) => {
                    let known: HashSet<&str> = shards.iter().map(|(id, _)| id.as_str()).collect();
                    for (id, parent) in &shards {
                        if started.contains(id) || finished.contains(id) {
                            continue;
                        }
                        // Parent first: a child waits until its parent is
                        // finished, unless the parent has been trimmed away.
                        let parent_ready =
                            parent.as_ref().is_none_or(|p| finished.contains(p) || !known.contains(p.as_str()));
                        if parent_ready {
                            started.insert(id.clone());
                            let me = self.clone();
                            let id = id.clone();
                            let done = done_tx.clone();
                            let stop = shutdown.clone();
                            workers.spawn(async move {
                                me.run_shard(&id, stop).await;
                                let _ = done.send(id);
                            });
                        }
                    }
                }
                Err(e) => warn!(error = %e, "DescribeStream failed; will retry"),
            }
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            if *shutdown.borrow() {
                break;
            }
        }
        while workers.join_next().await.is_some() {}
    }

    async fn list_shards(&self) -> Result<Vec<(String, Option<String>)>, String> {
        let mut shards = Vec::new();
        let mut start: Option<String> = None;
        loop {
            let out = self
                .streams
                .describe_stream()
                .stream_arn(&self.stream_arn)
                .set_exclusive_start_shard_id(start.clone())
                .send()
                .await
                .map_err(|e| format!("{}", aws_sdk_dynamodbstreams::error::DisplayErrorContext(&e)))?;
            let Some(desc) = out.stream_description else { return Ok(shards) };
            for s in desc.shards.unwrap_or_default() {
                if let Some(id) = s.shard_id {
                    shards.push((id, s.parent_shard_id));
                }
            }
            start = desc.last_evaluated_shard_id;
            if start.is_none() {
                return Ok(shards);
            }
        }
    }

    async fn iterator(&self, shard: &str) -> Result<Option<String>, String> {
        let after = self.checkpoints.lock().await.shards.get(shard).and_then(|c| c.sequence.clone());
        let req = self.streams.get_shard_iterator().stream_arn(&self.stream_arn).shard_id(shard);
        let req = match after {
            Some(seq) => req.shard_iterator_type(ShardIteratorType::AfterSequenceNumber).sequence_number(seq),
            None => req.shard_iterator_type(ShardIteratorType::TrimHorizon),
        };
        let out =
            req.send().await.map_err(|e| format!("{}", aws_sdk_dynamodbstreams::error::DisplayErrorContext(&e)))?;
        Ok(out.shard_iterator)
    }

    async fn checkpoint(&self, shard: &str, sequence: Option<&str>, done: bool) {
        let mut cp = self.checkpoints.lock().await;
        let entry = cp.shards.entry(shard.to_owned()).or_default();
        if let Some(seq) = sequence
            && entry.sequence.as_deref().is_none_or(|old| seq_cmp(seq, old).is_gt())
        {
            entry.sequence = Some(seq.to_owned());
        }
        entry.done |= done;
        cp.save();
    }

    /// Reads one shard to its end (or until shutdown).
    async fn run_shard(&self, shard: &str, shutdown: watch::Receiver<bool>) {
        debug!(shard, "shard reader started");
        let mut iterator = loop {
            match self.iterator(shard).await {
                Ok(it) => break it,
                Err(e) => {
                    warn!(shard, error = %e, "GetShardIterator failed; retrying");
                    if *shutdown.borrow() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        let mut buffer: VecDeque<(String, Value)> = VecDeque::new();
        let mut first_buffered: Option<Instant> = None;
        let mut last_consumed: Option<String> = None;
        let mut attempts: u32 = 0;
        let mut limit = self.config.batch_size;
        loop {
            if *shutdown.borrow() {
                break;
            }
            let mut fetched_any = false;
            if let Some(it) = iterator.clone()
                && buffer.len() < self.config.batch_size
            {
                let fetched = match self.streams.get_records().shard_iterator(it).limit(1000).send().await {
                    Ok(out) => Ok((
                        out.next_shard_iterator,
                        out.records.unwrap_or_default().iter().map(|r| self.lambda_record(r)).collect::<Vec<_>>(),
                    )),
                    // DynamoDB Local streams an empty map as `{}` with no
                    // `M` tag, which the SDK cannot parse, failing the whole
                    // response. The body is still there: read it ourselves.
                    Err(e) => {
                        match e.raw_response().and_then(|r| r.body().bytes()).and_then(|b| self.records_from_raw(b)) {
                            Some(parsed) => Ok(parsed),
                            None => Err(format!("{}", aws_sdk_dynamodbstreams::error::DisplayErrorContext(&e))),
                        }
                    }
                };
                match fetched {
                    Ok((next, records)) => {
                        iterator = next;
                        for value in records {
                            fetched_any = true;
                            let Some(seq) = value["dynamodb"]["SequenceNumber"].as_str().map(str::to_owned) else {
                                continue;
                            };
                            last_consumed = Some(seq.clone());
                            if self.config.filter.matches(&value) {
                                first_buffered.get_or_insert_with(Instant::now);
                                buffer.push_back((seq, value));
                            } else {
                                self.stats.records_filtered.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    Err(text) => {
                        warn!(shard, error = %text, "GetRecords failed; re-opening the shard");
                        tokio::time::sleep(self.config.poll_interval).await;
                        if let Ok(it) = self.iterator(shard).await {
                            // Re-read from the checkpoint; drop what was buffered.
                            iterator = it;
                            buffer.clear();
                            first_buffered = None;
                        }
                        continue;
                    }
                }
            }
            let closed = iterator.is_none();
            let window_over = first_buffered.is_some_and(|t| t.elapsed() >= self.config.batching_window);
            if !buffer.is_empty() && (buffer.len() >= self.config.batch_size || window_over || closed) {
                let take = buffer.len().min(limit).max(1);
                let batch: Vec<(String, Value)> = buffer.iter().take(take).cloned().collect();
                match self.invoke(&batch).await {
                    Ok(None) => {
                        buffer.drain(..take);
                        self.checkpoint(shard, batch.last().map(|(s, _)| s.as_str()), false).await;
                        attempts = 0;
                        limit = self.config.batch_size;
                    }
                    Ok(Some(failed_at)) => {
                        // Everything before the lowest failed record is done.
                        // The retry then starts at a new record, so its count
                        // (and backoff) starts again: only failures without
                        // progress grow them, and a record that keeps failing
                        // is always first and still reaches the limit.
                        if failed_at > 0 {
                            buffer.drain(..failed_at);
                            self.checkpoint(shard, Some(batch[failed_at - 1].0.as_str()), false).await;
                            attempts = 0;
                        }
                        attempts += 1;
                        self.after_failure(shard, &mut buffer, &batch[failed_at..], &mut attempts, &mut limit).await;
                    }
                    Err(e) => {
                        warn!(shard, error = %e, records = batch.len(), "function error");
                        attempts += 1;
                        if self.config.bisect_on_error && batch.len() > 1 {
                            limit = batch.len().div_ceil(2);
                        }
                        self.after_failure(shard, &mut buffer, &batch, &mut attempts, &mut limit).await;
                    }
                }
                first_buffered = if buffer.is_empty() { None } else { Some(Instant::now()) };
                continue;
            }
            if buffer.is_empty() {
                if let Some(seq) = last_consumed.take() {
                    // Only filtered records were read: they are consumed too.
                    self.checkpoint(shard, Some(&seq), false).await;
                }
                if closed {
                    self.checkpoint(shard, None, true).await;
                    debug!(shard, "shard finished");
                    return;
                }
            }
            if !fetched_any {
                let mut stop = shutdown.clone();
                tokio::select! {
                    _ = stop.changed() => {}
                    _ = tokio::time::sleep(self.config.poll_interval) => {}
                }
            }
        }
    }

    /// After a failed attempt: give up to the on-failure queue once the
    /// retry limit is passed, otherwise back off briefly.
    async fn after_failure(
        &self,
        shard: &str,
        buffer: &mut VecDeque<(String, Value)>,
        failed: &[(String, Value)],
        attempts: &mut u32,
        limit: &mut usize,
    ) {
        self.stats.failed_invocations.fetch_add(1, Ordering::Relaxed);
        let exhausted = self.config.max_retry_attempts.is_some_and(|max| *attempts > max);
        if exhausted {
            warn!(
                shard,
                records = failed.len(),
                attempts = *attempts,
                "retries exhausted; sending batch to the on-failure queue"
            );
            self.send_to_on_failure(shard, failed, *attempts).await;
            let n = failed.len().min(buffer.len());
            buffer.drain(..n);
            self.checkpoint(shard, failed.last().map(|(s, _)| s.as_str()), false).await;
            *attempts = 0;
            *limit = self.config.batch_size;
        } else {
            let backoff = Duration::from_millis(100u64.saturating_mul(1 << (*attempts).min(5)));
            tokio::time::sleep(backoff).await;
        }
    }

    /// Invokes the handler. `Ok(None)`: all done; `Ok(Some(i))`: the batch
    /// must be retried from its `i`th record; `Err`: the function failed.
    async fn invoke(&self, batch: &[(String, Value)]) -> Result<Option<usize>, String> {
        let records: Vec<Value> = batch.iter().map(|(_, v)| v.clone()).collect();
        let event: StreamEvent =
            serde_json::from_value(json!({ "Records": records })).map_err(|e| format!("building the event: {e}"))?;
        self.stats.invocations.fetch_add(1, Ordering::Relaxed);
        self.stats.records_delivered.fetch_add(batch.len() as u64, Ordering::Relaxed);
        let response = (self.handler)(event).await?;
        let failed: Vec<&str> =
            response.batch_item_failures.iter().filter_map(|f| f.item_identifier.as_deref()).collect();
        if failed.is_empty() {
            return Ok(None);
        }
        // Lambda retries from the lowest failed sequence number; an
        // identifier that names no record in the batch fails the whole batch.
        let lowest = batch.iter().position(|(seq, _)| failed.contains(&seq.as_str()));
        Ok(Some(lowest.unwrap_or(0)))
    }

    async fn send_to_on_failure(&self, shard: &str, failed: &[(String, Value)], attempts: u32) {
        self.stats.sent_to_on_failure.fetch_add(1, Ordering::Relaxed);
        let (Some(sqs), Some(url)) = (&self.sqs, &self.config.on_failure_queue_url) else {
            warn!(shard, "no on-failure queue configured; the batch is dropped");
            return;
        };
        let arrival = |v: &Value| v["dynamodb"]["ApproximateCreationDateTime"].clone();
        // The shape AWS sends for stream sources: batch metadata, not records.
        let body = json!({
            "requestContext": { "condition": "RetryAttemptsExhausted", "approximateInvokeCount": attempts },
            "version": "1.0",
            "timestamp": crate::clock::now_seconds(),
            "DDBStreamBatchInfo": {
                "shardId": shard,
                "startSequenceNumber": failed.first().map(|(s, _)| s.clone()),
                "endSequenceNumber": failed.last().map(|(s, _)| s.clone()),
                "approximateArrivalOfFirstRecord": failed.first().map(|(_, v)| arrival(v)),
                "approximateArrivalOfLastRecord": failed.last().map(|(_, v)| arrival(v)),
                "batchSize": failed.len(),
                "streamArn": self.stream_arn,
            }
        });
        if let Err(e) = sqs.send_message().queue_url(url).message_body(body.to_string()).send().await {
            warn!(shard, error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "could not send to the on-failure queue");
        }
    }

    /// Parses a raw GetRecords body into Lambda records and the next
    /// iterator, restoring the `M` tag DynamoDB Local drops from empty maps.
    fn records_from_raw(&self, body: &[u8]) -> Option<(Option<String>, Vec<Value>)> {
        let mut doc: Value = serde_json::from_slice(body).ok()?;
        let next = doc.get("NextShardIterator").and_then(Value::as_str).map(str::to_owned);
        let records = doc.get_mut("Records")?.as_array_mut()?;
        let mut out = Vec::with_capacity(records.len());
        for record in records.iter_mut() {
            for image in ["Keys", "NewImage", "OldImage"] {
                if let Some(Value::Object(attrs)) = record.get_mut("dynamodb").and_then(|d| d.get_mut(image)) {
                    attrs.values_mut().for_each(fix_empty_maps);
                }
            }
            record["eventSourceARN"] = Value::String(self.stream_arn.clone());
            record["awsRegion"] = Value::String(self.region.clone());
            out.push(record.take());
        }
        Some((next, out))
    }

    /// The record exactly as Lambda delivers it.
    fn lambda_record(&self, r: &Record) -> Value {
        let d = r.dynamodb.as_ref();
        let image = |img: Option<&HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>>| {
            img.map(|m| serde_json::to_value(from_stream_sdk(m.clone())).unwrap_or(Value::Null))
        };
        let mut dynamodb = json!({
            "ApproximateCreationDateTime": d.and_then(|d| d.approximate_creation_date_time).map(|t| t.as_secs_f64()),
            "Keys": image(d.and_then(|d| d.keys.as_ref())),
            "SequenceNumber": d.and_then(|d| d.sequence_number.clone()),
            "SizeBytes": d.and_then(|d| d.size_bytes).unwrap_or_default(),
            "StreamViewType": d.and_then(|d| d.stream_view_type.as_ref()).map(|v| v.as_str().to_owned()),
        });
        if let Some(new) = image(d.and_then(|d| d.new_image.as_ref())) {
            dynamodb["NewImage"] = new;
        }
        if let Some(old) = image(d.and_then(|d| d.old_image.as_ref())) {
            dynamodb["OldImage"] = old;
        }
        let mut record = json!({
            "eventID": r.event_id,
            "eventName": r.event_name.as_ref().map(|n| n.as_str().to_owned()),
            "eventVersion": r.event_version,
            "eventSource": r.event_source.clone().unwrap_or_else(|| "aws:dynamodb".into()),
            // Lambda reports the table's region; DynamoDB Local says "ddblocal".
            "awsRegion": self.region,
            "dynamodb": dynamodb,
            "eventSourceARN": self.stream_arn,
        });
        if let Some(u) = &r.user_identity {
            record["userIdentity"] = json!({ "type": u.r#type, "principalId": u.principal_id });
        }
        record
    }
}

/// In DynamoDB JSON every attribute value is a one-key object naming its
/// type; a bare `{}` can only be an empty map that lost its tag.
fn fix_empty_maps(value: &mut Value) {
    let Value::Object(obj) = value else { return };
    if obj.is_empty() {
        *value = json!({ "M": {} });
        return;
    }
    if let Some(Value::Object(m)) = obj.get_mut("M") {
        m.values_mut().for_each(fix_empty_maps);
    }
    if let Some(Value::Array(l)) = obj.get_mut("L") {
        l.iter_mut().for_each(fix_empty_maps);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untagged_empty_maps_get_their_tag_back() {
        let mut v = json!({"M": {"a": {}, "b": {"L": [{}, {"S": "x"}]}}});
        fix_empty_maps(&mut v);
        assert_eq!(v, json!({"M": {"a": {"M": {}}, "b": {"L": [{"M": {}}, {"S": "x"}]}}}));
    }

    #[test]
    fn sequence_numbers_order_numerically() {
        assert!(seq_cmp("900", "1000").is_lt());
        assert!(seq_cmp("1001", "1000").is_gt());
        assert!(seq_cmp("5", "5").is_eq());
    }
}
