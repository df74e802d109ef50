//! Generate synth into a directory and print a summary:
//! `cargo run --release -p kidbench-synth --example generate -- [OUT_DIR] [SEED]`.

use std::path::PathBuf;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(
        args.next()
            .unwrap_or_else(|| kidbench_synth::DEFAULT_DIR.into()),
    );
    let seed: u64 = match args.next() {
        Some(s) => s.parse()?,
        None => 0,
    };
    let cfg = kidbench_synth::SynthConfig {
        seed,
        ..Default::default()
    };
    let t0 = Instant::now();
    let m = kidbench_synth::generate(&out, &cfg)?;
    let secs = t0.elapsed().as_secs_f64();
    let rows: usize = m.databases.iter().map(|d| d.rows).sum();
    println!(
        "synth seed {seed} -> {} in {secs:.2}s: {} databases, {rows} rows",
        out.display(),
        m.databases.len()
    );
    for (split, c) in &m.splits {
        let pct: Vec<String> = c
            .by_hardness
            .iter()
            .map(|(h, n)| {
                format!(
                    "{h} {n} ({:.1}%)",
                    100.0 * *n as f64 / c.pairs.max(1) as f64
                )
            })
            .collect();
        println!(
            "{split}: {} pairs on {} dbs; {}",
            c.pairs,
            c.databases,
            pct.join(", ")
        );
        println!("  families: {:?}", c.by_family);
        println!("  templates: {:?}", c.by_template);
    }
    Ok(())
}
