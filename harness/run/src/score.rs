//! Scoring a model on the dev split: greedy predictions, execution verdicts through the one
//! scoring path shared with `kidbench eval` ([`kidbench_testsuite::score_pairs`]), TS when the
//! benchmark has a suite, and the record files of [`kidbench_results`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use kidbench_results::{QuestionVerdict, Record, RecordKey};
use kidbench_sql::eval::{EvalOptions, Pair};
use kidbench_testsuite::Scoring;
use kidbench_tokenizer::SqlTokenizer;
use kidbench_train::bench::Item;
use kidbench_train::lm;
use kidbench_train::trainer::write_atomic;

use crate::context::Context;

/// One model's dev predictions and verdicts.
#[derive(Debug, Clone)]
pub struct Scored {
    /// One SQL per dev question (as executed).
    pub predictions: Vec<String>,
    pub scoring: Scoring,
    pub generate_seconds: f64,
    pub new_tokens: usize,
}

impl Scored {
    pub fn ex(&self) -> f64 {
        self.scoring.summary.ex
    }

    pub fn ts(&self) -> Option<f64> {
        self.scoring
            .ts
            .as_ref()
            .map(|t| ratio(t.summary.all.ts, t.summary.all.count))
    }

    pub fn tokens_per_second(&self) -> f64 {
        self.new_tokens as f64 / self.generate_seconds.max(1e-9)
    }

    /// Per-question verdicts for the statistics (EX, and TS when scored).
    pub fn question_verdicts(&self) -> Vec<QuestionVerdict> {
        let ts = self.scoring.ts.as_ref();
        self.scoring
            .verdicts
            .iter()
            .enumerate()
            .map(|(i, v)| QuestionVerdict {
                id: v.id.clone(),
                db_id: v.db_id.clone(),
                hardness: v.hardness.clone(),
                ex: v.matched,
                ts: ts.and_then(|t| t.verdicts.iter().find(|tv| tv.index == i).map(|tv| tv.ts)),
            })
            .collect()
    }

    /// The record fields of a scored model (training figures added by the caller).
    pub fn record_scores(&self, label: &str) -> kidbench_results::Scored {
        kidbench_results::Scored {
            ex: self.ex(),
            ts: self.ts(),
            questions: self.scoring.summary.evaluated,
            training: None,
            generate_seconds: self.generate_seconds,
            tokens_per_second: self.tokens_per_second(),
            curve: Vec::new(),
            verdicts_file: kidbench_results::verdicts_file(label),
        }
    }

    /// `predictions/<label>.sql` (one query a line) and `verdicts/<label>.jsonl` (the full
    /// evaluator verdicts) in `dir`.
    pub fn write_files(&self, dir: &Path, label: &str) -> anyhow::Result<()> {
        write_lines(
            &dir.join(format!("predictions/{label}.sql")),
            &self.predictions,
        )?;
        let lines = self
            .scoring
            .verdicts
            .iter()
            .map(serde_json::to_string)
            .collect::<Result<Vec<_>, _>>()?;
        write_lines(&dir.join(format!("verdicts/{label}.jsonl")), &lines)
    }
}

pub fn ratio(a: usize, n: usize) -> f64 {
    if n == 0 {
        0.0
    } else {
        a as f64 / n as f64
    }
}

pub fn write_lines(path: &Path, lines: &[String]) -> anyhow::Result<()> {
    let mut text = lines.join("\n");
    text.push('\n');
    write_atomic(path, text.as_bytes()).with_context(|| format!("writing {}", path.display()))
}

/// Shows progress on a terminal as a bar, and in a log file (stderr not a terminal) as a plain
/// line at most every 10 seconds; nothing with `quiet`.
pub fn progress_bar(len: usize, label: &str, quiet: bool) -> indicatif::ProgressBar {
    kidbench_train::progress::bar(len as u64, label, quiet)
}

/// The evaluation options of the benchmark.
pub fn eval_options(ctx: &Context) -> EvalOptions {
    EvalOptions {
        mode: ctx.compare_mode,
        ..EvalOptions::default()
    }
}

/// Scores one predicted SQL per item against the items' gold queries by execution (EX), and
/// by the test suite when one is given (TS): the scoring path of `kidbench run`, `kidbench
/// score` and, through [`kidbench_testsuite::score_pairs`], `kidbench eval`. `databases` maps
/// each item's db_id to its SQLite file.
pub fn score_sql(
    items: &[Item],
    sql: &[String],
    databases: &BTreeMap<String, PathBuf>,
    opts: &EvalOptions,
    suite: Option<&kidbench_testsuite::Suite>,
) -> Scoring {
    let pairs: Vec<Pair> = items
        .iter()
        .zip(sql)
        .map(|(it, pred)| Pair {
            id: it.index.to_string(),
            db_id: it.db_id.clone(),
            gold: it.gold.clone(),
            pred: pred.clone(),
        })
        .collect();
    kidbench_testsuite::score_pairs(
        &pairs,
        |db| {
            databases
                .get(db)
                .cloned()
                .unwrap_or_else(|| PathBuf::from(format!("<missing database {db}>")))
        },
        opts,
        suite,
        None,
    )
}

/// Generates SQL for `items` with `model` and scores it against their gold queries.
#[allow(clippy::too_many_arguments)]
pub fn score_items(
    ctx: &Context,
    tok: &SqlTokenizer,
    model: &kidbench_model::Qwen2ForCausalLM,
    items: &[Item],
    max_prompt: usize,
    max_target: usize,
    gen_batch_size: usize,
    with_ts: bool,
    bar: Option<&indicatif::ProgressBar>,
) -> anyhow::Result<Scored> {
    let prompts: Vec<Vec<i64>> = items
        .iter()
        .map(|it| {
            tok.encode_prompt(&it.prompt, max_prompt)
                .map(|e| e.input_ids)
                .with_context(|| format!("encoding dev question {}", it.index))
        })
        .collect::<anyhow::Result<_>>()?;
    let g = lm::generate_sql(model, tok, &prompts, gen_batch_size, max_target as i64, bar)?;
    let sql: Vec<String> = g.sql.iter().map(|out| ctx.prediction_sql(out)).collect();
    let suite = if with_ts { ctx.suite.as_ref() } else { None };
    let scoring = score_sql(items, &sql, &ctx.dev.databases, &eval_options(ctx), suite);
    Ok(Scored {
        predictions: sql,
        scoring,
        generate_seconds: g.seconds,
        new_tokens: g.new_tokens,
    })
}

/// Scores `model` on the whole dev split (EX, and TS when there is a suite).
pub fn score_dev(
    ctx: &Context,
    tok: &SqlTokenizer,
    model: &kidbench_model::Qwen2ForCausalLM,
    limits: (usize, usize),
    gen_batch_size: usize,
    label: &str,
    quiet: bool,
) -> anyhow::Result<Scored> {
    let bar = progress_bar(ctx.dev.items.len(), &format!("generate {label}"), quiet);
    let s = score_items(
        ctx,
        tok,
        model,
        &ctx.dev.items,
        limits.0,
        limits.1,
        gen_batch_size,
        true,
        Some(&bar),
    )?;
    bar.finish_and_clear();
    Ok(s)
}

/// A scored model that is not a method's student (the teacher, the student init): its scores
/// are computed once per model and dev setting and kept in the model's cache folder, as a
/// record with its prediction and verdict files.
pub struct FixedScore {
    pub scored: Scored,
    pub record: Record,
}

/// Reads the cached record of `label` in `dir`, with its predictions and evaluator verdicts.
fn read_fixed(dir: &Path, label: &str) -> anyhow::Result<Option<FixedScore>> {
    let rec = dir.join(format!("records/{label}.json"));
    if !rec.is_file() {
        return Ok(None);
    }
    let loaded = kidbench_results::read_record(&rec)?;
    let preds = std::fs::read_to_string(dir.join(format!("predictions/{label}.sql")))
        .with_context(|| format!("reading the cached predictions in {}", dir.display()))?;
    let vpath = dir.join(format!("verdicts/{label}.jsonl"));
    let verdicts = std::fs::read_to_string(&vpath)
        .with_context(|| format!("reading {}", vpath.display()))?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<Vec<kidbench_sql::eval::Verdict>, _>>()
        .with_context(|| format!("parsing {}", vpath.display()))?;
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("score.json"))
            .with_context(|| format!("reading {}", dir.join("score.json").display()))?,
    )?;
    let ts: Option<kidbench_testsuite::TsReport> = serde_json::from_value(meta["ts"].clone())
        .with_context(|| format!("{}: ts", dir.display()))?;
    let summary = kidbench_sql::eval::summarize(&verdicts);
    let scored = Scored {
        predictions: preds.lines().map(str::to_string).collect(),
        scoring: Scoring {
            verdicts,
            summary,
            ts,
        },
        generate_seconds: meta["generate_seconds"].as_f64().unwrap_or(0.0),
        new_tokens: meta["new_tokens"].as_u64().unwrap_or(0) as usize,
    };
    Ok(Some(FixedScore {
        scored,
        record: loaded.record,
    }))
}

/// The scores of a fixed model in `dir` (computed by `compute` the first time).
pub fn fixed_score(
    dir: &Path,
    key: RecordKey,
    plan_hash: &str,
    train_seconds: f64,
    device: &str,
    compute: impl FnOnce() -> anyhow::Result<Scored>,
) -> anyhow::Result<FixedScore> {
    let label = key.method.clone();
    if crate::caches::verify_manifest(dir).unwrap_or(false) {
        if let Some(f) = read_fixed(dir, &label)? {
            return Ok(f);
        }
    } else if dir.exists() {
        let _ = std::fs::remove_dir_all(dir);
    }
    let scored = compute()?;
    let mut s = scored.record_scores(&label);
    s.training = Some(kidbench_results::Training {
        train_seconds,
        machine: Some(crate::files::machine(device)),
        ..Default::default()
    });
    let record = Record {
        schema: kidbench_results::RECORD_SCHEMA,
        plan_hash: plan_hash.to_string(),
        label: label.clone(),
        key,
        outcome: kidbench_results::Outcome::Scored(Box::new(s)),
    };
    scored.write_files(dir, &label)?;
    let meta = serde_json::json!({
        "generate_seconds": scored.generate_seconds,
        "new_tokens": scored.new_tokens,
        "ts": scored.scoring.ts,
    });
    write_atomic(
        &dir.join("score.json"),
        serde_json::to_string(&meta)?.as_bytes(),
    )
    .with_context(|| format!("writing {}", dir.join("score.json").display()))?;
    kidbench_results::write_record(dir, &record, &scored.question_verdicts())?;
    crate::caches::write_manifest(
        dir,
        &[
            "records",
            "questions",
            "predictions",
            "verdicts",
            "score.json",
        ],
    )?;
    Ok(FixedScore { scored, record })
}
