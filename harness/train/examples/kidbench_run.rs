//! `kidbench run` without the main CLI (for measurements before it is wired in):
//! `cargo run --release -p kidbench-train --example kidbench_run -- [run options]`.

use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    run: kidbench_train::RunArgs,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let s = kidbench_train::run(&cli.run)?;
    println!("run {} -> {}", s.run_id, s.dir.display());
    let show = |m: &kidbench_train::run::ModelScore| {
        let hard: Vec<String> = m
            .by_hardness
            .iter()
            .map(|(h, (n, k))| {
                format!(
                    "{h} {:.1}% ({k}/{n})",
                    100.0 * *k as f64 / (*n).max(1) as f64
                )
            })
            .collect();
        println!(
            "{:>8}: EX {:.1}% on {} | train {:.0}s, generate {:.0}s | {}",
            m.name,
            100.0 * m.ex,
            m.evaluated,
            m.train_seconds,
            m.generate_seconds,
            hard.join(", ")
        );
    };
    show(&s.teacher);
    for m in &s.methods {
        match &m.score {
            Some(sc) => show(sc),
            None => println!(
                "{:>8}: FAILED: {}",
                m.label,
                m.error.as_deref().unwrap_or("unknown error")
            ),
        }
    }
    println!(
        "teacher {}; total {:.0}s",
        if s.teacher_reused {
            "reused from cache"
        } else {
            "trained"
        },
        s.total_seconds
    );
    Ok(())
}
