//! Spider dev gold-vs-gold: the 972 pairs whose database exists, test-suite rules, all cores.
//!
//! `KIDBENCH_DATA=/path/to/data cargo bench -p kidbench-sql --bench eval`

use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion};
use kidbench_sql::eval::{evaluate, spider_db_path, summarize, EvalOptions, Pair};

fn spider_dir() -> PathBuf {
    let candidates: Vec<PathBuf> = match std::env::var_os("KIDBENCH_DATA") {
        Some(d) => vec![PathBuf::from(&d).join("spider"), PathBuf::from(d)],
        None => vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/spider")],
    };
    candidates
        .iter()
        .find(|c| c.join("dev_gold.sql").is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "Spider data not found in {:?} (set KIDBENCH_DATA to the data directory)",
                candidates
            )
        })
}

fn bench(c: &mut Criterion) {
    let dir = spider_dir();
    let database = dir.join("database");
    let text = std::fs::read_to_string(dir.join("dev_gold.sql")).expect("read dev_gold.sql");
    let pairs: Vec<Pair> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .filter_map(|(i, l)| {
            let (q, db) = l.rsplit_once('\t')?;
            let db = db.trim();
            spider_db_path(&database, db).is_file().then(|| Pair {
                id: format!("dev_{i}"),
                db_id: db.to_string(),
                gold: q.to_string(),
                pred: q.to_string(),
            })
        })
        .collect();
    assert_eq!(pairs.len(), 972);
    let opts = EvalOptions::default();
    let resolve = |db: &str| spider_db_path(&database, db);
    let s = summarize(&evaluate(&pairs, resolve, &opts));
    assert_eq!(s.matched, 972);
    let mut g = c.benchmark_group("spider_dev");
    g.sample_size(10);
    g.bench_function("gold_vs_gold_972_test_suite", |b| {
        b.iter(|| evaluate(&pairs, resolve, &opts))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
