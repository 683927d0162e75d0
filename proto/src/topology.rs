//! The cluster topology, part of the `fanout.v1` contract: which shards exist and where their
//! replicas listen.
//!
//! As a TOML file:
//!
//! ```toml
//! [[shard]]
//! id = 0
//! replicas = ["127.0.0.1:7000", "127.0.0.1:7001"]
//!
//! [[shard]]
//! id = 1
//! replicas = ["http://leaf-1-0.leaves:7000", "http://leaf-1-1.leaves:7000"]
//! ```
//!
//! or as repeated command-line specs `0=127.0.0.1:7000,127.0.0.1:7001`. Shard ids must be exactly
//! `0..N` (the shard function maps ids onto that range); every shard needs at least one replica.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::ring::ShardId;

/// A replica's gRPC address as an `http://host:port` URI.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ReplicaAddr(String);

impl ReplicaAddr {
    /// Parses `host:port` or `http://host:port`.
    pub fn parse(s: &str) -> Result<Self, TopologyError> {
        let s = s.trim();
        let uri = if s.contains("://") {
            s.to_string()
        } else {
            format!("http://{s}")
        };
        let rest = uri
            .strip_prefix("http://")
            .ok_or_else(|| TopologyError::BadAddress(s.to_string(), "only http:// is supported"))?;
        let (host, port) = rest
            .trim_end_matches('/')
            .rsplit_once(':')
            .ok_or_else(|| TopologyError::BadAddress(s.to_string(), "expected host:port"))?;
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(TopologyError::BadAddress(
                s.to_string(),
                "expected host:port",
            ));
        }
        Ok(Self(uri.trim_end_matches('/').to_string()))
    }

    /// The address as a URI, ready for a gRPC endpoint.
    pub fn as_uri(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ReplicaAddr {
    type Error = TopologyError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl AsRef<str> for ReplicaAddr {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<ReplicaAddr> for String {
    fn from(a: ReplicaAddr) -> String {
        a.0
    }
}

impl fmt::Display for ReplicaAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One shard and its replicas.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardSpec {
    /// The shard's id, from 0.
    pub id: ShardId,
    /// Its replicas' addresses.
    pub replicas: Vec<ReplicaAddr>,
}

/// A validated topology: shards `0..N`, in order, each with at least one replica.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "TopologyFile", into = "TopologyFile")]
pub struct Topology {
    shards: Vec<ShardSpec>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TopologyFile {
    shard: Vec<ShardSpec>,
}

impl TryFrom<TopologyFile> for Topology {
    type Error = TopologyError;
    fn try_from(f: TopologyFile) -> Result<Self, Self::Error> {
        Topology::new(f.shard)
    }
}

impl From<Topology> for TopologyFile {
    fn from(t: Topology) -> Self {
        TopologyFile { shard: t.shards }
    }
}

/// What is wrong with a topology.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    /// An address that is not `HOST:PORT` or `http://HOST:PORT`: it, and why.
    #[error("invalid replica address {0:?}: {1}")]
    BadAddress(String, &'static str),
    /// No shards at all.
    #[error("the topology has no shards (pass a topology file or ID=HOST:PORT,... specs)")]
    Empty,
    /// Shard ids are not 0..N, each once.
    #[error("shard ids must be 0..{expected_len} with each id once; found {found:?}")]
    BadShardIds {
        /// How many shards there are.
        expected_len: usize,
        /// The ids found.
        found: Vec<ShardId>,
    },
    /// A shard lists no replica.
    #[error("shard {0} has no replicas")]
    NoReplicas(ShardId),
    /// A replica is listed twice.
    #[error("replica {0} is listed more than once")]
    DuplicateReplica(ReplicaAddr),
    /// A `--shard` spec is not `ID=HOST:PORT[,...]`.
    #[error("invalid shard spec {0:?}: expected ID=HOST:PORT[,HOST:PORT...]")]
    BadSpec(String),
    /// The topology file could not be read.
    #[error("cannot read topology file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The topology file is not valid TOML for a topology.
    #[error("invalid topology file {path}: {source}")]
    Parse {
        /// The file.
        path: String,
        /// Where and why.
        source: toml::de::Error,
    },
}

impl Topology {
    /// Validates and orders the shards.
    pub fn new(mut shards: Vec<ShardSpec>) -> Result<Self, TopologyError> {
        if shards.is_empty() {
            return Err(TopologyError::Empty);
        }
        shards.sort_by_key(|s| s.id);
        if shards.iter().enumerate().any(|(i, s)| s.id as usize != i) {
            let found = shards.iter().map(|s| s.id).collect();
            return Err(TopologyError::BadShardIds {
                expected_len: shards.len(),
                found,
            });
        }
        let mut seen = BTreeSet::new();
        for shard in &shards {
            if shard.replicas.is_empty() {
                return Err(TopologyError::NoReplicas(shard.id));
            }
            for r in &shard.replicas {
                if !seen.insert(r.clone()) {
                    return Err(TopologyError::DuplicateReplica(r.clone()));
                }
            }
        }
        Ok(Self { shards })
    }

    /// Parses command-line specs of the form `ID=HOST:PORT[,HOST:PORT...]`.
    pub fn from_specs<S: AsRef<str>>(specs: &[S]) -> Result<Self, TopologyError> {
        let shards = specs
            .iter()
            .map(|spec| {
                let spec = spec.as_ref();
                let bad = || TopologyError::BadSpec(spec.to_string());
                let (id, addrs) = spec.split_once('=').ok_or_else(bad)?;
                let id = id.trim().parse().map_err(|_| bad())?;
                let replicas = addrs
                    .split(',')
                    .filter(|a| !a.trim().is_empty())
                    .map(ReplicaAddr::parse)
                    .collect::<Result<_, _>>()?;
                Ok(ShardSpec { id, replicas })
            })
            .collect::<Result<_, TopologyError>>()?;
        Self::new(shards)
    }

    /// The topology a command line names: a file, or else `ID=HOST:PORT,...` specs.
    pub fn from_file_or_specs<S: AsRef<str>>(
        file: Option<&Path>,
        specs: &[S],
    ) -> Result<Self, TopologyError> {
        match file {
            Some(path) => Self::load(path),
            None => Self::from_specs(specs),
        }
    }

    /// Parses a topology file's text.
    pub fn from_toml(text: &str, path: &str) -> Result<Self, TopologyError> {
        toml::from_str(text).map_err(|source| TopologyError::Parse {
            path: path.into(),
            source,
        })
    }

    /// Reads a topology file.
    pub fn load(path: &Path) -> Result<Self, TopologyError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| TopologyError::Read {
            path: name.clone(),
            source,
        })?;
        Self::from_toml(&text, &name)
    }

    /// The topology as a TOML file's text.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a topology always serializes")
    }

    /// The shards, ordered by id.
    pub fn shards(&self) -> &[ShardSpec] {
        &self.shards
    }

    /// Number of shards, the `num_shards` of the shard function.
    pub fn num_shards(&self) -> u32 {
        self.shards.len() as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_file_and_specs_alike() {
        let file = r#"
            [[shard]]
            id = 1
            replicas = ["127.0.0.1:7002"]
            [[shard]]
            id = 0
            replicas = ["http://127.0.0.1:7000", "127.0.0.1:7001"]
        "#;
        let from_file = Topology::from_toml(file, "t.toml").unwrap();
        let from_specs =
            Topology::from_specs(&["0=127.0.0.1:7000,127.0.0.1:7001", "1=127.0.0.1:7002"]).unwrap();
        assert_eq!(from_file, from_specs);
        assert_eq!(from_file.num_shards(), 2);
        assert_eq!(
            from_file.shards()[0].replicas[1].as_uri(),
            "http://127.0.0.1:7001"
        );
        let round_trip = Topology::from_toml(&from_file.to_toml(), "again").unwrap();
        assert_eq!(round_trip, from_file);
    }

    #[test]
    fn rejects_gaps_duplicates_and_empty_shards() {
        let err = Topology::from_specs(&["0=a:1", "2=b:1"]).unwrap_err();
        assert!(matches!(err, TopologyError::BadShardIds { .. }), "{err}");
        let err = Topology::from_specs(&["0=a:1", "0=b:1"]).unwrap_err();
        assert!(matches!(err, TopologyError::BadShardIds { .. }), "{err}");
        let err = Topology::from_specs(&["0=a:1", "1=a:1"]).unwrap_err();
        assert!(matches!(err, TopologyError::DuplicateReplica(_)), "{err}");
        let err = Topology::from_specs(&["0="]).unwrap_err();
        assert!(matches!(err, TopologyError::NoReplicas(0)), "{err}");
        let err = Topology::from_specs::<&str>(&[]).unwrap_err();
        assert!(matches!(err, TopologyError::Empty), "{err}");
        let err = Topology::from_specs(&["0=nohost"]).unwrap_err();
        assert!(matches!(err, TopologyError::BadAddress(..)), "{err}");
        let err = Topology::from_specs(&["x=a:1"]).unwrap_err();
        assert!(matches!(err, TopologyError::BadSpec(_)), "{err}");
        let err = Topology::from_toml("[[shard]]\nid = 0\nreplicas = [\"https://a:1\"]", "f")
            .unwrap_err();
        assert!(err.to_string().contains("only http://"), "{err}");
    }
}
