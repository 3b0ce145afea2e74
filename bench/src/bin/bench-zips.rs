//! The size of each function's deployment zip, as `make build` leaves it
//! (`target/lambda/<function>/bootstrap.zip`). Usage: `bench-zips <target/lambda> <function>...`.

use jit_bench::row;

/// Lambda's goal per zip (the "under 6 MB"), in bytes.
const GOAL_BYTES: u64 = 6_000_000;

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((dir, functions)) = args.split_first() else {
        return Err("usage: bench-zips <target/lambda> <function>...".into());
    };
    let mut over = Vec::new();
    for f in functions {
        let path = format!("{dir}/{f}/bootstrap.zip");
        let bytes = std::fs::metadata(&path).map_err(|e| format!("{path}: {e} (run `make build` first)"))?.len();
        if bytes >= GOAL_BYTES {
            over.push(f.clone());
        }
        #[allow(clippy::cast_precision_loss, reason = "sizes and counts are far inside the exact range of f64")]
        let mb = bytes as f64 / 1e6;
        row(
            &format!("Deployment zip, {f}"),
            &format!("{mb:.2} MB ({bytes} bytes)"),
            "< 6 MB",
            &format!("make build && stat -c %s {path}"),
        );
    }
    if !over.is_empty() {
        eprintln!("over the 6 MB goal: {}", over.join(", "));
    }
    Ok(())
}
