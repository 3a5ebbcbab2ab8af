//! Several Regions of one registry on the local stack: one
//! [`TestPipeline`] per Region over the same table name (DynamoDB Local
//! keeps a table per Region; moto a topic per Region), and the global-table
//! replication stand-in ([`beacon_local::replication`], a test stand-in)
//! between their replicas.

use std::time::Duration;

use beacon_local::replication::{Replica, Replication, ReplicationConfig};

use crate::{Options, TestPipeline, unique};

/// One Region's replica of `table`, created if missing.
pub async fn replica(region: &str, table: &str) -> Replica {
    let conf = crate::sdk_config().await;
    let region_ = aws_config::Region::new(region.to_owned());
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&conf).region(region_.clone()).build(),
    );
    let streams = aws_sdk_dynamodbstreams::Client::from_conf(
        aws_sdk_dynamodbstreams::config::Builder::from(&conf).region(region_).build(),
    );
    let stream_arn = beacon_local::setup::ensure_table(&dynamodb, table).await.expect("the replica's table");
    Replica { region: region.to_owned(), dynamodb, streams, table: table.to_owned(), stream_arn }
}

/// A Region's pipeline options: the real registry and publisher (faults
/// come at the wire).
pub type RegionOptions = Options<beacon_aws::SnsPublisher, beacon_aws::DynamoTable>;

/// A registry in several Regions, replicating.
pub struct Regions {
    /// One pipeline per Region, in the order given.
    pub pipelines: Vec<TestPipeline>,
    /// The replication stand-in between their replicas.
    pub replication: Replication,
}

impl Regions {
    /// Starts a pipeline in each of `regions` over one new table, then the
    /// replication between them (before anything is written).
    pub async fn start(name: &str, regions: &[&str], config: ReplicationConfig) -> Self {
        Self::start_with(name, regions, config, |_, _, options| options).await
    }

    /// The same, each Region's pipeline adjusted by `adjust` (its Region,
    /// that Region's SDK config, and its options): faults, limits, clients.
    pub async fn start_with(
        name: &str,
        regions: &[&str],
        config: ReplicationConfig,
        adjust: impl Fn(&str, &aws_config::SdkConfig, RegionOptions) -> RegionOptions,
    ) -> Self {
        let table = unique(name);
        let conf = crate::sdk_config().await;
        let mut pipelines = Vec::new();
        let mut replicas = Vec::new();
        for region in regions {
            let regional = conf.to_builder().region(aws_config::Region::new((*region).to_owned())).build();
            let options = adjust(region, &regional, Options::new().region_of(&table, region, &conf));
            pipelines.push(TestPipeline::start_with(name, options).await);
            replicas.push(replica(region, &table).await);
        }
        Self { pipelines, replication: Replication::start(replicas, config) }
    }

    /// Waits until every copy has landed and nothing moved for `quiet`.
    pub async fn settle(&self, quiet: Duration, timeout: Duration) -> bool {
        self.replication.settle(quiet, timeout).await
    }

    /// Stops everything.
    pub async fn stop(self) {
        self.replication.stop().await;
        for p in self.pipelines {
            p.stop().await;
        }
    }
}
