//! DNS discovery: a shard's replicas are the addresses its name resolves to, re-resolved on an
//! interval. In Kubernetes the name is the shard's headless Service, whose DNS answer is the
//! shard's ready pods, so scaling a shard or replacing a pod reaches the root without a
//! restart.
//!
//! The name of shard `s` comes from a template such as `fanout-leaf-{shard}:7000`. A lookup
//! that fails or comes back empty leaves the shard's membership as it was: a DNS hiccup must not
//! empty a shard that still answers, and replicas that are really gone are ejected by failures.
//! The resolver is a trait so that tests can drive it.

use std::collections::BTreeSet;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fanout_proto::{ReplicaAddr, ShardId};
use futures::future::BoxFuture;

use crate::cluster::Cluster;
use crate::config::RootConfig;

/// Turns a host name and port into socket addresses.
pub trait Resolver: Send + Sync + 'static {
    /// The addresses `host` resolves to, each with `port`.
    fn resolve(&self, host: &str, port: u16) -> BoxFuture<'static, io::Result<Vec<SocketAddr>>>;
}

/// The system's resolver (`getaddrinfo`, through tokio).
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn resolve(&self, host: &str, port: u16) -> BoxFuture<'static, io::Result<Vec<SocketAddr>>> {
        let target = format!("{host}:{port}");
        Box::pin(async move { Ok(tokio::net::lookup_host(target).await?.collect()) })
    }
}

/// A resolver that answers from a table its owner changes at will: how tests play DNS.
#[derive(Default)]
pub struct StaticResolver {
    answers: parking_lot::Mutex<std::collections::HashMap<String, Result<Vec<SocketAddr>, String>>>,
}

impl StaticResolver {
    /// From now on `host` resolves to `addrs` (whatever port is asked for).
    pub fn set(&self, host: &str, addrs: Vec<SocketAddr>) {
        self.answers.lock().insert(host.to_string(), Ok(addrs));
    }

    /// From now on looking up `host` fails.
    pub fn fail(&self, host: &str) {
        self.answers
            .lock()
            .insert(host.to_string(), Err(format!("{host}: lookup failed")));
    }
}

impl Resolver for StaticResolver {
    fn resolve(&self, host: &str, _port: u16) -> BoxFuture<'static, io::Result<Vec<SocketAddr>>> {
        let answer = match self.answers.lock().get(host) {
            Some(Ok(addrs)) => Ok(addrs.clone()),
            Some(Err(e)) => Err(io::Error::other(e.clone())),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{host}: no such name"),
            )),
        };
        Box::pin(std::future::ready(answer))
    }
}

/// What is wrong with a discovery template.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The template has no `{shard}`.
    #[error("discovery template {0:?} must contain {{shard}}")]
    NoShardPlaceholder(String),
    /// The template has no port.
    #[error("discovery template {0:?} must end in :PORT")]
    NoPort(String),
    /// `--num-shards` is 0.
    #[error("discovery needs at least one shard (--num-shards)")]
    NoShards,
}

/// The DNS name of one shard's replicas.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardName {
    /// The shard.
    pub shard: ShardId,
    /// The name to resolve.
    pub host: String,
    /// The port its replicas listen on.
    pub port: u16,
}

/// Shard names from a template: `{shard}` is replaced by each id in `0..num_shards`.
pub fn shard_names(template: &str, num_shards: u32) -> Result<Vec<ShardName>, DiscoveryError> {
    if !template.contains("{shard}") {
        return Err(DiscoveryError::NoShardPlaceholder(template.into()));
    }
    if num_shards == 0 {
        return Err(DiscoveryError::NoShards);
    }
    let (host, port) = template
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
        .ok_or_else(|| DiscoveryError::NoPort(template.into()))?;
    Ok((0..num_shards)
        .map(|shard| ShardName {
            shard,
            host: host.replace("{shard}", &shard.to_string()),
            port,
        })
        .collect())
}

/// Every shard's name, how to resolve it, and how often.
#[derive(Clone)]
pub struct Discovery {
    /// Each shard's name.
    pub names: Vec<ShardName>,
    /// How names are resolved.
    pub resolver: Arc<dyn Resolver>,
    /// How often.
    pub interval: Duration,
}

impl Discovery {
    /// Resolves every shard's name once and applies the answers. Returns how many replicas
    /// were added and removed in all.
    pub async fn refresh(&self, cluster: &Cluster, config: &RootConfig) -> (usize, usize) {
        let lookups = self.names.iter().map(|name| async move {
            let answer = self.resolver.resolve(&name.host, name.port).await;
            (name, answer)
        });
        let (mut added, mut removed) = (0, 0);
        for (name, answer) in futures::future::join_all(lookups).await {
            let addrs = match answer {
                Ok(addrs) if !addrs.is_empty() => addrs,
                Ok(_) => {
                    tracing::debug!(shard = name.shard, host = %name.host, "no replicas in DNS; keeping the last known");
                    continue;
                }
                Err(e) => {
                    tracing::warn!(shard = name.shard, host = %name.host, error = %e, "DNS lookup failed; keeping the last known replicas");
                    continue;
                }
            };
            let change = cluster.set_shard_replicas(name.shard, &replica_addrs(addrs), config);
            for replica in &change.added {
                tracing::info!(shard = name.shard, %replica, "replica discovered");
            }
            for replica in &change.removed {
                tracing::info!(shard = name.shard, %replica, "replica gone from DNS");
            }
            added += change.added.len();
            removed += change.removed.len();
        }
        (added, removed)
    }

    /// Refreshes forever: at once, then every interval (every second while some shard has no
    /// replica yet, so that a root started before its leaves becomes ready soon after them).
    /// Abort the task to stop it.
    pub async fn run(self, cluster: Arc<Cluster>, config: RootConfig) {
        loop {
            self.refresh(&cluster, &config).await;
            let starving = cluster.shards().iter().any(|s| s.replicas().is_empty());
            let wait = if starving {
                self.interval.min(Duration::from_secs(1))
            } else {
                self.interval
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// Socket addresses as replica addresses, deduplicated and in a stable order.
fn replica_addrs(addrs: Vec<SocketAddr>) -> Vec<ReplicaAddr> {
    let unique: BTreeSet<SocketAddr> = addrs.into_iter().collect();
    unique
        .into_iter()
        .filter_map(|a| ReplicaAddr::parse(&a.to_string()).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_expand_per_shard() {
        let names = shard_names("fanout-leaf-{shard}.fanout.svc:7000", 2).unwrap();
        assert_eq!(
            names,
            [
                ShardName {
                    shard: 0,
                    host: "fanout-leaf-0.fanout.svc".into(),
                    port: 7000
                },
                ShardName {
                    shard: 1,
                    host: "fanout-leaf-1.fanout.svc".into(),
                    port: 7000
                },
            ]
        );
        assert!(matches!(
            shard_names("leaf:7000", 2),
            Err(DiscoveryError::NoShardPlaceholder(_))
        ));
        assert!(matches!(
            shard_names("leaf-{shard}", 2),
            Err(DiscoveryError::NoPort(_))
        ));
        assert!(matches!(
            shard_names("leaf-{shard}:x", 2),
            Err(DiscoveryError::NoPort(_))
        ));
        assert!(matches!(
            shard_names("leaf-{shard}:1", 0),
            Err(DiscoveryError::NoShards)
        ));
    }

    #[tokio::test]
    async fn a_failed_or_empty_lookup_keeps_the_last_membership() {
        let config = RootConfig::default();
        let cluster = Cluster::empty(2, &config);
        let resolver = Arc::new(StaticResolver::default());
        let discovery = Discovery {
            names: shard_names("leaf-{shard}:7000", 2).unwrap(),
            resolver: resolver.clone(),
            interval: Duration::from_secs(5),
        };
        let members = |shard: usize| -> Vec<String> {
            cluster.shards()[shard]
                .replicas()
                .iter()
                .map(|r| r.name.clone())
                .collect()
        };
        let a: SocketAddr = "10.0.0.1:7000".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:7000".parse().unwrap();

        resolver.set("leaf-0", vec![a, b]);
        assert_eq!(discovery.refresh(&cluster, &config).await, (2, 0));
        assert_eq!(members(0), ["http://10.0.0.1:7000", "http://10.0.0.2:7000"]);
        assert!(members(1).is_empty(), "leaf-1 does not resolve yet");

        resolver.set("leaf-0", vec![b]);
        resolver.set("leaf-1", vec![a]);
        assert_eq!(discovery.refresh(&cluster, &config).await, (1, 1));
        assert_eq!(members(0), ["http://10.0.0.2:7000"]);
        assert_eq!(members(1), ["http://10.0.0.1:7000"]);

        resolver.fail("leaf-0");
        resolver.set("leaf-1", vec![]);
        assert_eq!(discovery.refresh(&cluster, &config).await, (0, 0));
        assert_eq!(members(0), ["http://10.0.0.2:7000"]);
        assert_eq!(members(1), ["http://10.0.0.1:7000"]);
    }

    #[test]
    fn answers_become_sorted_unique_replica_addresses() {
        let a: SocketAddr = "10.0.0.2:7000".parse().unwrap();
        let b: SocketAddr = "10.0.0.1:7000".parse().unwrap();
        let v6: SocketAddr = "[fd00::1]:7000".parse().unwrap();
        let addrs = replica_addrs(vec![a, b, a, v6]);
        let uris: Vec<&str> = addrs.iter().map(|a| a.as_uri()).collect();
        assert_eq!(
            uris,
            [
                "http://10.0.0.1:7000",
                "http://10.0.0.2:7000",
                "http://[fd00::1]:7000"
            ]
        );
    }
}
