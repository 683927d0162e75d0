//! The thin gRPC adapter: converts between `fanout.v1` messages and [`LeafService`] calls.

use std::time::Duration;

use fanout_proto::pb;
use tonic::{Request, Response, Status};

use crate::index::BatchOutcome;
use crate::service::LeafService;
use crate::stats::{CorpusStats, Supplied};
use crate::top::After;

/// [`LeafService`] as a tonic service.
pub struct GrpcLeaf(pub LeafService);

#[tonic::async_trait]
impl pb::leaf_server::Leaf for GrpcLeaf {
    async fn search(
        &self,
        request: Request<pb::SearchRequest>,
    ) -> Result<Response<pb::SearchResponse>, Status> {
        let arrived = std::time::Instant::now();
        let req = request.into_inner();
        let global = req.global_stats.map(|stats| Supplied {
            stats: corpus_stats_from_pb(stats),
            generation: req.stats_generation,
        });
        let found = self
            .0
            .search(
                req.query,
                (req.from as usize, req.size as usize),
                req.search_after.map(|a| After {
                    score: a.score,
                    id: a.id,
                }),
                global,
                (req.timeout_ms > 0).then(|| Duration::from_millis(req.timeout_ms.into())),
            )
            .await?;
        let hits = found
            .hits
            .into_iter()
            .map(|h| pb::Hit {
                id: h.id,
                score: h.score,
                fields_json: h.fields_json,
            })
            .collect();
        Ok(Response::new(pb::SearchResponse {
            shard: self.0.shard(),
            replica: self.0.replica().to_string(),
            total_hits: found.total_hits,
            hits,
            generation: found.generation,
            took_us: (arrived.elapsed().as_micros() as u64).max(1),
            shard_stats: found.shard_stats.as_ref().map(corpus_stats_to_pb),
        }))
    }

    async fn index(
        &self,
        request: Request<pb::IndexRequest>,
    ) -> Result<Response<pb::IndexResponse>, Status> {
        let req = request.into_inner();
        let docs = req.docs.into_iter().map(|d| d.json).collect();
        let outcome = self.0.index(req.shard, req.num_shards, docs).await?;
        Ok(Response::new(index_response(outcome)))
    }

    async fn delete(
        &self,
        request: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::IndexResponse>, Status> {
        let req = request.into_inner();
        let outcome = self.0.delete(req.shard, req.num_shards, req.ids).await?;
        Ok(Response::new(index_response(outcome)))
    }

    async fn stats(
        &self,
        request: Request<pb::StatsRequest>,
    ) -> Result<Response<pb::StatsResponse>, Status> {
        let (generation, stats) = self.0.stats(request.into_inner().query).await?;
        Ok(Response::new(pb::StatsResponse {
            shard: self.0.shard(),
            replica: self.0.replica().to_string(),
            generation,
            stats: Some(corpus_stats_to_pb(&stats)),
        }))
    }

    async fn commit(
        &self,
        _request: Request<pb::CommitRequest>,
    ) -> Result<Response<pb::CommitResponse>, Status> {
        let (generation, num_docs) = self.0.commit().await?;
        // An explicit commit ends an import (the refresh timer commits without one).
        if let Some(gate) = self.0.seed_gate().filter(|g| !g.is_seeded()).cloned() {
            tokio::task::spawn_blocking(move || gate.mark())
                .await
                .map_err(|e| Status::internal(e.to_string()))?
                .map_err(|e| Status::internal(format!("cannot record the seed mark: {e}")))?;
        }
        Ok(Response::new(pb::CommitResponse {
            generation,
            num_docs,
        }))
    }

    async fn info(
        &self,
        _request: Request<pb::InfoRequest>,
    ) -> Result<Response<pb::InfoResponse>, Status> {
        let info = self.0.info();
        Ok(Response::new(pb::InfoResponse {
            shard: info.shard,
            replica: info.replica,
            num_docs: info.num_docs,
            generation: info.generation,
            id_field: info.id_field,
            default_fields: info.default_fields,
            searches_run: info.searches_run,
            searches_skipped: info.searches_skipped,
            replayed_records: info.replayed_records,
            uncommitted_batches: info.uncommitted_batches,
        }))
    }
}

/// Statistics off the wire.
pub fn corpus_stats_from_pb(stats: pb::CorpusStats) -> CorpusStats {
    CorpusStats {
        num_docs: stats.num_docs,
        fields: stats
            .fields
            .into_iter()
            .map(|f| (f.field, f.total_tokens))
            .collect(),
        terms: stats
            .terms
            .into_iter()
            .map(|t| (t.term, t.doc_freq))
            .collect(),
    }
}

/// Statistics for the wire, fields and terms in their maps' (sorted) order.
pub fn corpus_stats_to_pb(stats: &CorpusStats) -> pb::CorpusStats {
    pb::CorpusStats {
        num_docs: stats.num_docs,
        fields: stats
            .fields
            .iter()
            .map(|(field, &total_tokens)| pb::FieldStat {
                field: field.clone(),
                total_tokens,
            })
            .collect(),
        terms: stats
            .terms
            .iter()
            .map(|(term, &doc_freq)| pb::TermStat {
                term: term.clone(),
                doc_freq,
            })
            .collect(),
    }
}

fn index_response(outcome: BatchOutcome) -> pb::IndexResponse {
    pb::IndexResponse {
        accepted: outcome.accepted,
        rejected: outcome
            .rejected
            .into_iter()
            .map(|(position, reason)| pb::DocumentError { position, reason })
            .collect(),
    }
}
