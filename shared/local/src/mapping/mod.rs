//! The local event source mapping: reads every shard of the table's stream
//! and invokes the fan-out handler with exactly the event Lambda would send.
//!
//! What it reproduces of AWS's DynamoDB event source mapping
//! (<https://docs.aws.amazon.com/lambda/latest/dg/with-ddb.html>):
//!
//! - shard lineage: a child shard is read only after its parent is finished,
//!   so per-item order holds across shard splits;
//! - polling at a fixed rate per shard (AWS: 4 GetRecords a second), and
//!   back to back only while a read returns a full page (a backlog): a
//!   poller that re-read a caught-up shard at once would spend the local
//!   server's one core re-reading a stream that every write lengthens
//!   (docs/benchmarks.md, "A change costs what it changes");
//! - batching: up to `batch_size` records, waiting up to `batching_window`
//!   for a batch to fill;
//! - filter criteria (the template's, see [`crate::filter`]) applied before
//!   batching; filtered records are consumed without an invocation;
//! - `ReportBatchItemFailures`: on a partial failure, everything before the
//!   lowest failed sequence number is checkpointed and the batch is retried
//!   from that record;
//! - `BisectBatchOnFunctionError`: a failing batch is retried in halves;
//! - `MaximumRetryAttempts`: after that many retries the remaining records'
//!   batch metadata goes to the on-failure SQS queue and the shard moves on;
//! - checkpoints persisted after every batch, so a restart resumes after the
//!   last processed record and loses nothing.
//!
//! The retry rules are a pure state machine in [`policy`]; this module does
//! the I/O around it.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use aws_sdk_dynamodbstreams::Client as Streams;
use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use futures::future::BoxFuture;
use serde_json::Value;
use tokio::sync::{Mutex, watch};
use tracing::{debug, warn};

mod checkpoints;
mod config;
mod delivery;
pub mod policy;
mod records;

pub use config::{MappingConfig, MappingStats};

use checkpoints::{Checkpoints, seq_cmp};
use policy::{Outcome, RetryState};

/// Most records one GetRecords call returns (the API's own limit).
const PAGE: i32 = 1000;

/// A function error, as Lambda's runtime reports one: any error.
pub type FunctionError = Box<dyn std::error::Error + Send + Sync>;

/// The handler the mapping invokes: a Lambda function's contract.
pub type Handler =
    Arc<dyn Fn(StreamEvent) -> BoxFuture<'static, Result<DynamoDbEventResponse, FunctionError>> + Send + Sync>;

/// A Streams API call failed (the poller retries it).
#[derive(Debug, thiserror::Error)]
#[error("{operation}: {}", aws_sdk_dynamodbstreams::error::DisplayErrorContext(.source.as_ref()))]
pub struct StreamsError {
    /// Which call.
    pub operation: &'static str,
    /// The SDK's error.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// Why a batch could not be handed to the function.
#[derive(Debug, thiserror::Error)]
enum InvokeError {
    /// The records did not make a Lambda event.
    #[error("building the event: {0}")]
    Event(#[from] serde_json::Error),
    /// The function failed.
    #[error("function error: {0}")]
    Function(FunctionError),
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

    async fn list_shards(&self) -> Result<Vec<(String, Option<String>)>, StreamsError> {
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
                .map_err(|e| StreamsError { operation: "DescribeStream", source: Box::new(e) })?;
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

    async fn iterator(&self, shard: &str) -> Result<Option<String>, StreamsError> {
        let after = self.checkpoints.lock().await.shards.get(shard).and_then(|c| c.sequence.clone());
        let req = self.streams.get_shard_iterator().stream_arn(&self.stream_arn).shard_id(shard);
        let req = match after {
            Some(seq) => req.shard_iterator_type(ShardIteratorType::AfterSequenceNumber).sequence_number(seq),
            None => req.shard_iterator_type(ShardIteratorType::TrimHorizon),
        };
        let out = req.send().await.map_err(|e| StreamsError { operation: "GetShardIterator", source: Box::new(e) })?;
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
        let policy = self.config.retry_policy();
        let mut retry = RetryState::new(&policy);
        // When the last GetRecords began, and whether it found the shard
        // caught up (a page short of the limit): then the next one waits for
        // the poll interval.
        let mut last_poll = Instant::now();
        let mut caught_up = false;
        loop {
            if *shutdown.borrow() {
                break;
            }
            if let Some(it) = iterator.clone()
                && buffer.len() < self.config.batch_size
            {
                if caught_up {
                    let mut stop = shutdown.clone();
                    tokio::select! {
                        _ = stop.changed() => continue,
                        _ = tokio::time::sleep_until((last_poll + self.config.poll_interval).into()) => {}
                    }
                }
                last_poll = Instant::now();
                let fetched = match self.streams.get_records().shard_iterator(it).limit(PAGE).send().await {
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
                            None => Err(StreamsError { operation: "GetRecords", source: Box::new(e) }),
                        }
                    }
                };
                match fetched {
                    Ok((next, records)) => {
                        iterator = next;
                        caught_up = records.len() < PAGE as usize;
                        for value in records {
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
                    Err(e) => {
                        warn!(shard, error = %e, "GetRecords failed; re-opening the shard");
                        caught_up = false;
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
                let take = retry.batch_len(buffer.len());
                let batch: Vec<(String, Value)> = buffer.iter().take(take).cloned().collect();
                let outcome = match self.invoke(&batch).await {
                    Ok(None) => Outcome::Success,
                    Ok(Some(failed_at)) => Outcome::PartialFailure { failed_at },
                    Err(e) => {
                        warn!(shard, error = %e, records = batch.len(), "function error");
                        Outcome::FunctionError
                    }
                };
                let decision = retry.after(&policy, batch.len(), outcome);
                if decision.failed {
                    self.stats.failed_invocations.fetch_add(1, Ordering::Relaxed);
                }
                if decision.completed > 0 {
                    buffer.drain(..decision.completed);
                    self.checkpoint(shard, Some(batch[decision.completed - 1].0.as_str()), false).await;
                }
                if decision.to_on_failure > 0 {
                    let failed = &batch[decision.completed..decision.completed + decision.to_on_failure];
                    warn!(
                        shard,
                        records = failed.len(),
                        attempts = decision.attempts,
                        "retries exhausted; sending batch to the on-failure queue"
                    );
                    self.send_to_on_failure(shard, failed, decision.attempts).await;
                    buffer.drain(..failed.len().min(buffer.len()));
                    self.checkpoint(shard, failed.last().map(|(s, _)| s.as_str()), false).await;
                }
                if !decision.backoff.is_zero() {
                    tokio::time::sleep(decision.backoff).await;
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
        }
    }
}
