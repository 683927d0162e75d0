//! Replica choice: power of two choices (Mitzenmacher; Finagle's and linkerd's balancers).
//! Pick two candidates at random and take the one with the lower load score. Nearly as good as
//! always taking the least loaded, without herding every root onto the same replica.

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
}
