//! Prompt and target lengths in tokens for a benchmark (sizing the from-scratch presets):
//! `cargo run -p kidbench-train --example prompt_stats -- [benchmark] [sample_values]`.

use kidbench_sql::benchmark::Split;
use kidbench_sql::prompt::PromptOptions;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let name = args.get(1).map(String::as_str).unwrap_or("synth");
    let opts = PromptOptions {
        sample_values: args.get(2).and_then(|s| s.parse().ok()).unwrap_or(0),
        style: if args.get(3).map(String::as_str) == Some("codes") {
            kidbench_sql::prompt::PromptStyle::Codes
        } else {
            kidbench_sql::prompt::PromptStyle::Compact
        },
        ..PromptOptions::default()
    };
    let bench =
        kidbench_train::bench::open(name, "../shared/data".as_ref(), "databases".as_ref(), false)?;
    let train = kidbench_train::bench::load_split(&bench, Split::Train, None, &opts)?;
    let texts: Vec<&str> = train
        .items
        .iter()
        .flat_map(|i| [i.prompt.as_str(), i.gold.as_str()])
        .collect();
    let tok = kidbench_tokenizer::SqlTokenizer::train(texts, 2048)?;
    for split in [Split::Train, Split::Dev] {
        let d = kidbench_train::bench::load_split(&bench, split, None, &opts)?;
        let mut p: Vec<usize> = Vec::new();
        let mut t: Vec<usize> = Vec::new();
        for it in &d.items {
            let e = tok.encode_pair(&it.prompt, &it.gold, 100_000, 100_000)?;
            p.push(e.prompt_len);
            t.push(e.input_ids.len() - e.prompt_len);
        }
        p.sort();
        t.sort();
        let q = |v: &[usize], f: f64| v[((v.len() - 1) as f64 * f) as usize];
        println!(
            "{split}: n={} prompt mean {:.0} p50 {} p90 {} max {} | target mean {:.1} p90 {} max {}",
            p.len(),
            p.iter().sum::<usize>() as f64 / p.len() as f64,
            q(&p, 0.5), q(&p, 0.9), q(&p, 1.0),
            t.iter().sum::<usize>() as f64 / t.len() as f64,
            q(&t, 0.9), q(&t, 1.0)
        );
    }
    println!(
        "--- example prompt ---\n{}\n--- gold ---\n{}",
        train.items[0].prompt, train.items[0].gold
    );
    Ok(())
}
