//! Replica choice, all of it: which replicas are eligible, their load score, and power of two
//! choices (Mitzenmacher; Finagle's and linkerd's balancers) among them. Pick two candidates
//! at random and take the one with the lower load score. Nearly as good as always taking the
//! least loaded, without herding every root onto the same replica.

use std::sync::Arc;

use crate::cluster::Replica;
use crate::replica::{Condition, ReplicaState};

/// Which replicas a request may go to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    /// Live replicas first; then, if none is left, stalled or busy ones; then ejected ones
    /// (their ejection may be stale). For a primary or a retry: the shard must be asked.
    Any,
    /// Live replicas only. For a hedge: a second copy to a replica that is stalled, busy or
    /// ejected would add load where it helps least.
    Live,
}

/// Chooses a replica of `replicas` not yet tried for this request, by power of two choices over
/// the best tier `reach` allows.
pub fn choose(replicas: &[Arc<Replica>], tried: &[bool], reach: Reach) -> Option<usize> {
    // 0: live; 1: not ejected, but stalled or busy; 2: ejected.
    let tier = |r: &Replica| match r.state.condition() {
        Condition::Up => 0,
        Condition::Stalled | Condition::Busy => 1,
        Condition::Ejected => 2,
    };
    let tiers: Vec<Option<u8>> = replicas
        .iter()
        .zip(tried)
        .map(|(r, &t)| (!t).then(|| tier(r)))
        .collect();
    let deepest = match reach {
        Reach::Any => 2,
        Reach::Live => 0,
    };
    (0..=deepest).find_map(|level| {
        let loads: Vec<Option<f64>> = replicas
            .iter()
            .zip(&tiers)
            .map(|(r, t)| (*t == Some(level)).then(|| load_score(&r.state)))
            .collect();
        power_of_two_choices(&loads, |n| fastrand::usize(..n))
    })
}

/// The load score power of two choices compares: latency times queue length (+1, so an idle
/// replica's latency still counts). Lower is better.
pub fn load_score(state: &ReplicaState) -> f64 {
    (state.latency_us() + 1.0) * f64::from(state.outstanding() + 1)
}

/// Chooses among the candidates (`Some(load)`; `None` is not eligible) by power of two choices.
/// `random(n)` must return a uniform index in `0..n`. Returns `None` if nothing is eligible.
pub fn power_of_two_choices(
    loads: &[Option<f64>],
    mut random: impl FnMut(usize) -> usize,
) -> Option<usize> {
    let eligible: Vec<usize> = (0..loads.len()).filter(|&i| loads[i].is_some()).collect();
    match eligible.len() {
        0 => None,
        1 => Some(eligible[0]),
        n => {
            let a = random(n);
            // A second, distinct pick: offset by 1..n.
            let b = (a + 1 + random(n - 1)) % n;
            let (ia, ib) = (eligible[a], eligible[b]);
            let (la, lb) = (
                loads[ia].unwrap_or(f64::INFINITY),
                loads[ib].unwrap_or(f64::INFINITY),
            );
            Some(if lb < la { ib } else { ia })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::replica_set;

    #[tokio::test(start_paused = true)]
    async fn never_chooses_a_tried_replica_and_prefers_available_ones() {
        let set = replica_set(3);
        let replicas = set.replicas();
        for _ in 0..50 {
            assert_eq!(choose(&replicas, &[true, false, true], Reach::Any), Some(1));
        }
        assert_eq!(choose(&replicas, &[true, true, true], Reach::Any), None);
        replicas[0].state.record_failure();
        replicas[0].state.record_failure();
        assert!(!replicas[0].state.is_available());
        for _ in 0..50 {
            assert_ne!(
                choose(&replicas, &[false, false, false], Reach::Any),
                Some(0),
                "ejected replicas go last"
            );
        }
        assert_eq!(
            choose(&replicas, &[false, true, true], Reach::Any),
            Some(0),
            "but are still a last resort"
        );
        assert!(set.has_reachable_replica());
    }

    #[tokio::test(start_paused = true)]
    async fn spreads_load_toward_the_less_busy_replica() {
        let set = replica_set(2);
        let replicas = set.replicas();
        for _ in 0..5 {
            replicas[0].state.start();
        }
        for _ in 0..20 {
            assert_eq!(choose(&replicas, &[false, false], Reach::Any), Some(1));
        }
    }

    #[test]
    fn nothing_eligible_gives_nothing_and_one_gives_that_one() {
        assert_eq!(power_of_two_choices(&[None, None], |_| 0), None);
        assert_eq!(power_of_two_choices(&[], |_| 0), None);
        assert_eq!(
            power_of_two_choices(&[None, Some(5.0), None], |_| 0),
            Some(1)
        );
    }

    #[test]
    fn of_the_two_picked_the_lighter_wins() {
        let loads = [Some(3.0), Some(1.0), Some(2.0)];
        // Picks eligible 0 and (0 + 1 + 0) % 3 = 1: replica 1 is lighter.
        assert_eq!(power_of_two_choices(&loads, |_| 0), Some(1));
        // Picks 2 and (2 + 1 + 0) % 3 = 0: replica 2 (load 2) beats replica 0 (load 3).
        let mut picks = [2, 0].into_iter();
        assert_eq!(
            power_of_two_choices(&loads, |_| picks.next().unwrap()),
            Some(2)
        );
    }

    #[test]
    fn the_two_picks_are_always_distinct_and_the_heaviest_never_wins() {
        let loads = [Some(9.0), Some(1.0), None, Some(4.0)];
        let mut seen = [0usize; 4];
        for seed in 0..1_000u64 {
            let mut rng = fastrand::Rng::with_seed(seed);
            let chosen = power_of_two_choices(&loads, |n| rng.usize(0..n)).unwrap();
            seen[chosen] += 1;
        }
        assert_eq!(
            seen[0], 0,
            "the heaviest of three can never beat the other pick"
        );
        assert_eq!(seen[2], 0, "ineligible");
        assert!(seen[1] > seen[3], "{seen:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn load_grows_with_requests_in_flight() {
        let r = ReplicaState::new(&crate::replica::ReplicaPolicy::default());
        r.start();
        r.finish(std::time::Duration::from_millis(1), true);
        let idle = load_score(&r);
        r.start();
        r.start();
        assert_eq!(r.outstanding(), 2);
        assert!((load_score(&r) / idle - 3.0).abs() < 1e-6);
    }
}
