//! What the `make bench` programs share: the one table they print, row by row.

/// One row of the table `make bench` prints (`| measurement | result | goal | command |`).
/// `goal` is empty where the issue sets none.
pub fn row(measurement: &str, result: &str, goal: &str, command: &str) {
    println!("| {measurement} | {result} | {goal} | `{command}` |");
}

/// The value at quantile `q` (0..=1) of sorted samples.
pub fn quantile<T: Copy>(sorted: &[T], q: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "timings and sizes are far inside f64 and u64 ranges"
    )]
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted.get(i.min(sorted.len() - 1)).copied()
}

#[cfg(test)]
mod tests {
    use super::quantile;

    #[test]
    fn quantiles_pick_the_nearest_rank() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.5), Some(51));
        assert_eq!(quantile(&v, 0.99), Some(99));
        assert_eq!(quantile(&v, 1.0), Some(100));
        assert_eq!(quantile::<u32>(&[], 0.5), None);
    }
}
