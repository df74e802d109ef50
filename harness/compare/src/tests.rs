//! Records are built by hand from verdict vectors (no training). Expected p-values are McNemar's
//! closed form for tables with one empty discordant cell: `a_only = k, b_only = 0` gives
//! `p = min(1, 2 · 2^-k)`.

use std::path::Path;

use kidbench_results::{
    load_records, verdicts_file, write_record, Record, RecordKey, Training, RECORD_SCHEMA,
};
use kidbench_stats::PairedTest;

use super::*;

fn key(method: &str, params: &[(&str, &str)], seed: u64) -> RecordKey {
    RecordKey {
        role: Role::Method,
        method: method.into(),
        params: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        seed,
        benchmark: "synth".into(),
        teacher: "tiny-m".into(),
        student: "tiny-s".into(),
        student_warmup: Some(10),
        budget: "steps=5".into(),
    }
}

fn kid(seed: u64) -> RecordKey {
    key("kid", &[("alpha", "0.3")], seed)
}

fn sft(seed: u64) -> RecordKey {
    key("sft", &[], seed)
}

fn teacher() -> RecordKey {
    RecordKey {
        role: Role::Teacher,
        method: "teacher".into(),
        params: BTreeMap::new(),
        seed: 0,
        benchmark: "synth".into(),
        teacher: "tiny-m".into(),
        student: String::new(),
        student_warmup: None,
        budget: String::new(),
    }
}

/// `n` verdicts, the first `right` of them true.
fn v(n: usize, right: usize) -> Vec<bool> {
    (0..n).map(|i| i < right).collect()
}

fn label(k: &RecordKey) -> String {
    let p: Vec<String> = k.params.iter().map(|(a, b)| format!("{a}{b}")).collect();
    format!("{}{}-s{}", k.method, p.join(""), k.seed)
}

fn verdicts(ex: &[bool], ts: Option<&[bool]>) -> Vec<QuestionVerdict> {
    ex.iter()
        .enumerate()
        .map(|(i, &e)| QuestionVerdict {
            id: i.to_string(),
            db_id: "db".into(),
            hardness: None,
            ex: e,
            ts: ts.map(|t| t[i]),
        })
        .collect()
}

fn loaded(side: &str, k: RecordKey, vs: Vec<QuestionVerdict>, seconds_per_step: f64) -> Loaded {
    let lab = label(&k);
    let ex = vs.iter().filter(|q| q.ex).count() as f64 / vs.len().max(1) as f64;
    Loaded {
        record: Record {
            schema: RECORD_SCHEMA,
            plan_hash: format!("{side}-plan"),
            label: lab.clone(),
            key: k,
            outcome: Outcome::Scored(Box::new(Scored {
                ex,
                ts: None,
                questions: vs.len(),
                training: Some(Training {
                    steps: 5,
                    train_seconds: 5.0 * seconds_per_step,
                    seconds_per_step,
                    ..Training::default()
                }),
                generate_seconds: 1.0,
                tokens_per_second: 1.0,
                curve: vec![],
                verdicts_file: verdicts_file(&lab),
            })),
        },
        path: PathBuf::from(format!("/{side}/records/{lab}.json")),
        verdicts: vs,
    }
}

fn run(side: &str, k: RecordKey, ex: &[bool], seconds_per_step: f64) -> Loaded {
    loaded(side, k, verdicts(ex, None), seconds_per_step)
}

fn failed(side: &str, k: RecordKey, error: &str) -> Loaded {
    let lab = label(&k);
    Loaded {
        record: Record {
            schema: RECORD_SCHEMA,
            plan_hash: format!("{side}-plan"),
            label: lab.clone(),
            key: k,
            outcome: Outcome::Failed {
                error: error.into(),
            },
        },
        path: PathBuf::from(format!("/{side}/records/{lab}.json")),
        verdicts: vec![],
    }
}

fn cmp(baseline: &[Loaded], new: &[Loaded]) -> Comparison {
    compare(baseline, new, &CompareOptions::default()).unwrap()
}

fn row<'a>(c: &'a Comparison, k: &RecordKey) -> &'a Row {
    let cell = k.without_seed();
    c.rows
        .iter()
        .find(|r| r.cell == cell)
        .unwrap_or_else(|| panic!("no row {}", cell_name(&cell)))
}

/// The usual baseline: teacher, sft (100/200 right, 1 s/step), kid (150/200, 1.5 s/step).
fn baseline() -> Vec<Loaded> {
    vec![
        run("base", teacher(), &v(200, 180), 0.5),
        run("base", sft(1), &v(200, 100), 1.0),
        run("base", kid(1), &v(200, 150), 1.5),
    ]
}

#[test]
fn an_unchanged_tree_passes() {
    let b = baseline();
    let n: Vec<Loaded> = baseline()
        .into_iter()
        .map(|mut l| {
            l.path = PathBuf::from(l.path.to_string_lossy().replace("/base/", "/new/"));
            l
        })
        .collect();
    let c = cmp(&b, &n);
    assert!(c.passed(), "{:?}", c.failures());
    assert!(c.failures().is_empty());
    assert_eq!(c.rows.len(), 3);
    let k = row(&c, &kid(1));
    let ex = k.ex.unwrap();
    assert_eq!((ex.baseline, ex.new), (0.75, 0.75));
    assert_eq!(ex.paired.diff.estimate, 0.0);
    assert_eq!(ex.paired.p_value, 1.0);
    assert_eq!(ex.paired.test, PairedTest::McNemarExact);
    assert_eq!(
        k.latency,
        Latency::Compared {
            baseline: 1.5,
            new: 1.5,
            seeds: 1
        }
    );
    assert_eq!(row(&c, &teacher()).latency, Latency::NotApplicable);
    assert_eq!(row(&c, &sft(1)).latency, Latency::NotApplicable);
    let md = c.to_markdown();
    assert!(md.contains("PASSED"), "{md}");
    assert!(md.contains("| kid (alpha=0.3) |"), "{md}");
    assert!(
        md.contains(
            "Every row (where it applies): benchmark synth, teacher tiny-m, student tiny-s, \
             warmup 10, budget steps=5."
        ),
        "{md}"
    );
}

#[test]
fn a_significant_drop_beyond_tolerance_fails_naming_the_method() {
    // kid loses 30 questions and gains none: drop 15 points, p = 2 * 2^-30.
    let n = vec![
        run("new", teacher(), &v(200, 180), 0.5),
        run("new", sft(1), &v(200, 100), 1.0),
        run("new", kid(1), &v(200, 120), 1.5),
    ];
    let c = cmp(&baseline(), &n);
    assert!(!c.passed());
    let ex = row(&c, &kid(1)).ex.unwrap();
    assert!((ex.drop_points() - 15.0).abs() < 1e-9);
    assert!((ex.paired.p_value / (2.0 * 0.5f64.powi(30)) - 1.0).abs() < 1e-9);
    let f = c.failures();
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(c.failing[0].rule, Rule::ExDrop);
    assert!(
        f[0].starts_with("kid (alpha=0.3), benchmark synth, teacher tiny-m, student tiny-s"),
        "{}",
        f[0]
    );
    assert!(
        f[0].contains("EX drop") && f[0].contains("75.0 % → 60.0 %"),
        "{}",
        f[0]
    );
    let md = c.to_markdown();
    assert!(md.contains("FAILED (1 failure)"), "{md}");
    assert!(md.contains("**FAIL**: EX drop"), "{md}");
}

#[test]
fn a_significant_drop_within_tolerance_passes() {
    // 2000 questions, 18 lost, none gained: drop 0.9 points < 1.0, p = 2 * 2^-18 = 7.6e-6.
    let b = vec![run("base", kid(1), &v(2000, 1500), 1.0)];
    let n = vec![run("new", kid(1), &v(2000, 1482), 1.0)];
    let c = cmp(&b, &n);
    let ex = row(&c, &kid(1)).ex.unwrap();
    assert!((ex.drop_points() - 0.9).abs() < 1e-9);
    assert!((ex.paired.p_value / (2.0 * 0.5f64.powi(18)) - 1.0).abs() < 1e-9);
    assert!(ex.paired.p_value < 0.05);
    assert!(c.passed(), "{:?}", c.failures());
}

#[test]
fn a_drop_beyond_tolerance_that_is_not_significant_passes() {
    // 20 questions, 2 lost: drop 10 points, p = 2 * 2^-2 = 0.5.
    let b = vec![run("base", kid(1), &v(20, 15), 1.0)];
    let n = vec![run("new", kid(1), &v(20, 13), 1.0)];
    let c = cmp(&b, &n);
    let ex = row(&c, &kid(1)).ex.unwrap();
    assert!((ex.drop_points() - 10.0).abs() < 1e-9);
    assert!((ex.paired.p_value - 0.5).abs() < 1e-12);
    assert!(c.passed(), "{:?}", c.failures());
}

#[test]
fn a_gain_never_fails() {
    let b = vec![run("base", kid(1), &v(200, 120), 1.0)];
    let n = vec![run("new", kid(1), &v(200, 150), 1.0)];
    assert!(cmp(&b, &n).passed());
}

#[test]
fn a_drop_over_three_seeds_is_tested_by_the_paired_bootstrap() {
    let b: Vec<Loaded> = (1..=3)
        .map(|s| run("base", kid(s), &v(200, 150), 1.0))
        .collect();
    let n: Vec<Loaded> = (1..=3)
        .map(|s| run("new", kid(s), &v(200, 120), 1.0))
        .collect();
    let c = cmp(&b, &n);
    let r = row(&c, &kid(1));
    assert_eq!(r.seeds, vec![1, 2, 3]);
    let ex = r.ex.unwrap();
    assert_eq!(ex.paired.test, PairedTest::PairedBootstrap);
    assert_eq!(ex.paired.seeds, 3);
    // A 15-point drop is ~6 standard errors: no resample of 2000 gets back to 0.
    assert!(ex.paired.p_value < 0.001, "{ex:?}");
    assert!(!c.passed());
    assert!(c.failures()[0].contains("paired bootstrap, seeds 1, 2, 3"));
}

/// `baseline()` and a new side whose sft and kid take `sft_s` and `kid_s` seconds per step.
fn latency_case(sft_s: f64, kid_s: f64) -> Comparison {
    let n = vec![
        run("new", teacher(), &v(200, 180), 0.5),
        run("new", sft(1), &v(200, 100), sft_s),
        run("new", kid(1), &v(200, 150), kid_s),
    ];
    cmp(&baseline(), &n)
}

#[test]
fn latency_growth_of_20_percent_fails_and_5_percent_passes() {
    // Baseline kid / sft = 1.5. New runs on a machine twice as slow: sft 2.0 s/step.
    // kid 3.6 s/step -> 1.8 = 1.5 * 1.20.
    let c = latency_case(2.0, 3.6);
    assert!(!c.passed());
    assert_eq!(c.failing.len(), 1);
    assert_eq!(c.failing[0].rule, Rule::LatencyGrowth);
    let g = row(&c, &kid(1)).latency.growth().unwrap();
    assert!((g - 0.20).abs() < 1e-9, "{g}");
    assert!(c.failures()[0].starts_with("kid (alpha=0.3)"));
    assert!(
        c.failures()[0].contains("20.0 % > 10.0 %"),
        "{:?}",
        c.failures()
    );
    // kid 3.15 s/step -> 1.575 = 1.5 * 1.05: passes although the seconds doubled.
    let c = latency_case(2.0, 3.15);
    assert!(c.passed(), "{:?}", c.failures());
    let g = row(&c, &kid(1)).latency.growth().unwrap();
    assert!((g - 0.05).abs() < 1e-9, "{g}");
}

#[test]
fn latency_without_sft_is_a_note_not_a_failure() {
    let b = vec![run("base", kid(1), &v(200, 150), 1.5)];
    let n = vec![
        run("new", sft(1), &v(200, 100), 1.0),
        run("new", kid(1), &v(200, 150), 9.0),
    ];
    let c = cmp(&b, &n);
    assert!(c.passed(), "{:?}", c.failures());
    assert_eq!(
        row(&c, &kid(1)).latency,
        Latency::NotComparable {
            reason: "no sft on baseline".into()
        }
    );
    assert!(c
        .notes
        .iter()
        .any(|n| n.contains("latency not comparable (no sft on baseline)")));
    assert!(c
        .to_markdown()
        .contains("latency not comparable (no sft on baseline)"));
    // The sft only in new is an extra cell.
    assert_eq!(c.extra.len(), 1);
}

#[test]
fn a_missing_cell_or_seed_fails_and_is_listed() {
    let b = vec![
        run("base", kid(1), &v(200, 150), 1.0),
        run("base", kid(2), &v(200, 150), 1.0),
        run("base", key("gkd", &[], 1), &v(200, 150), 1.0),
    ];
    let n = vec![run("new", kid(1), &v(200, 150), 1.0)];
    let c = cmp(&b, &n);
    assert!(!c.passed());
    let f = c.failures();
    assert_eq!(f.len(), 2, "{f:?}");
    assert!(c.failing.iter().all(|f| f.rule == Rule::MissingInNew));
    assert!(
        f.iter()
            .any(|l| l.starts_with("gkd, benchmark synth") && l.contains("missing in new")),
        "{f:?}"
    );
    assert!(
        f.iter()
            .any(|l| l.starts_with("kid (alpha=0.3)") && l.contains("seed 2: missing in new")),
        "{f:?}"
    );
    assert_eq!(c.missing.len(), 2);
    let gkd = c.missing.iter().find(|m| m.cell.method == "gkd").unwrap();
    assert!(gkd.whole);
    assert_eq!(gkd.seeds, vec![1]);
    let k = c.missing.iter().find(|m| m.cell.method == "kid").unwrap();
    assert!(!k.whole);
    assert_eq!(k.seeds, vec![2]);
    // The seed both sides have is still compared.
    assert_eq!(row(&c, &kid(1)).seeds, vec![1]);
    let md = c.to_markdown();
    assert!(md.contains("## Missing in new"), "{md}");
    assert!(md.contains("- gkd, benchmark synth"), "{md}");
    assert!(md.contains("| gkd | — |"), "{md}");
    assert!(md.contains("**FAIL**: missing in new (seed 2)"), "{md}");
}

#[test]
fn an_extra_cell_in_new_is_reported_and_passes() {
    let b = vec![run("base", kid(1), &v(200, 150), 1.0)];
    let n = vec![
        run("new", kid(1), &v(200, 150), 1.0),
        run("new", kid(2), &v(200, 150), 1.0),
        run("new", key("fkd", &[], 1), &v(200, 10), 1.0),
    ];
    let c = cmp(&b, &n);
    assert!(c.passed(), "{:?}", c.failures());
    assert_eq!(c.extra.len(), 2);
    assert!(c.extra.iter().any(|e| e.cell.method == "fkd" && e.whole));
    assert!(c
        .extra
        .iter()
        .any(|e| e.cell.method == "kid" && !e.whole && e.seeds == vec![2]));
    let md = c.to_markdown();
    assert!(md.contains("## Only in new"), "{md}");
    assert!(md.contains("fkd, benchmark synth"), "{md}");
}

#[test]
fn a_method_that_failed_in_new_fails_and_failed_on_both_sides_is_a_note() {
    let b = vec![
        run("base", kid(1), &v(200, 150), 1.0),
        failed("base", key("gkd", &[], 1), "out of memory"),
    ];
    let n = vec![
        failed("new", kid(1), "loss is NaN"),
        failed("new", key("gkd", &[], 1), "out of memory"),
    ];
    let c = cmp(&b, &n);
    let f = c.failures();
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(c.failing[0].rule, Rule::FailedInNew);
    assert!(f[0].starts_with("kid (alpha=0.3)"), "{}", f[0]);
    assert!(f[0].contains("seed 1: failed in new") && f[0].contains("loss is NaN"));
    assert!(c
        .notes
        .iter()
        .any(|n| n.contains("gkd") && n.contains("failed on both sides")));
    // Failed the other way round is only a note.
    let c = cmp(
        &[failed("base", kid(1), "loss is NaN")],
        &[run("new", kid(1), &v(200, 150), 1.0)],
    );
    assert!(c.passed());
    assert!(c.notes[0].contains("failed in baseline, scored in new"));
}

#[test]
fn questions_on_one_side_only_are_counted_and_left_out() {
    // Baseline: ids 0..=200 (question 200 right); new: ids 0..=199 and "x" (wrong). On the 200
    // common questions both sides have 150 right.
    let mut bv = verdicts(&v(201, 150), None);
    bv[200].ex = true;
    let mut nv = verdicts(&v(201, 150), None);
    nv[200].id = "x".into();
    let c = cmp(
        &[loaded("base", kid(1), bv, 1.0)],
        &[loaded("new", kid(1), nv, 1.0)],
    );
    let r = row(&c, &kid(1));
    assert_eq!(
        (r.questions, r.baseline_only_questions, r.new_only_questions),
        (200, 1, 1)
    );
    assert_eq!(r.ex.unwrap().paired.diff.estimate, 0.0);
    assert!(c.passed());
    assert!(c
        .to_markdown()
        .contains("200 (left out: 1 baseline-only, 1 new-only)"));
}

#[test]
fn runs_that_share_no_question_fail() {
    let mut nv = verdicts(&v(10, 5), None);
    for (i, q) in nv.iter_mut().enumerate() {
        q.id = format!("other-{i}");
    }
    let c = cmp(
        &[run("base", kid(1), &v(10, 5), 1.0)],
        &[loaded("new", kid(1), nv, 1.0)],
    );
    assert_eq!(c.failing.len(), 1);
    assert_eq!(c.failing[0].rule, Rule::NoCommonQuestions);
}

#[test]
fn ts_is_shown_but_not_gated_on() {
    let all = vec![true; 200];
    let none = vec![false; 200];
    let ex = v(200, 150);
    let c = cmp(
        &[loaded("base", kid(1), verdicts(&ex, Some(&all)), 1.0)],
        &[loaded("new", kid(1), verdicts(&ex, Some(&none)), 1.0)],
    );
    let ts = row(&c, &kid(1)).ts.unwrap();
    assert_eq!((ts.baseline, ts.new), (1.0, 0.0));
    assert_eq!(ts.paired.diff.estimate, -1.0);
    assert!(c.passed(), "{:?}", c.failures());
    assert!(c.to_markdown().contains("-100.0 [-100.0, -100.0]"));
    // No TS on one side: no TS column.
    let c = cmp(
        &[loaded("base", kid(1), verdicts(&ex, Some(&all)), 1.0)],
        &[run("new", kid(1), &ex, 1.0)],
    );
    assert_eq!(row(&c, &kid(1)).ts, None);
}

#[test]
fn holm_adjusts_the_ex_p_values_over_rows() {
    // Two rows with McNemar p = 2 * 2^-5 = 0.0625 and 1: Holm gives 0.125 and 1.
    let b = vec![
        run("base", kid(1), &v(20, 15), 1.0),
        run("base", sft(1), &v(20, 15), 1.0),
    ];
    let n = vec![
        run("new", kid(1), &v(20, 10), 1.0),
        run("new", sft(1), &v(20, 15), 1.0),
    ];
    let c = cmp(&b, &n);
    let h = row(&c, &kid(1)).ex_p_holm.unwrap();
    assert!((h - 0.125).abs() < 1e-12, "{h}");
    assert_eq!(row(&c, &sft(1)).ex_p_holm, Some(1.0));
}

#[test]
fn repeated_question_ids_are_an_error_naming_the_record_file() {
    let mut vs = verdicts(&v(3, 1), None);
    vs[2].id = "0".into();
    let e = compare(
        &[loaded("base", kid(1), vs, 1.0)],
        &[run("new", kid(1), &v(3, 1), 1.0)],
        &CompareOptions::default(),
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("/base/records/kidalpha0.3-s1.json") && msg.contains("\"0\""),
        "{msg}"
    );
}

#[test]
fn two_different_records_of_one_run_are_an_error_naming_both_files() {
    let mut other = run("base", kid(1), &v(10, 2), 1.0);
    other.path = PathBuf::from("/base/cells/b/records/kid.json");
    let e = compare(
        &[run("base", kid(1), &v(10, 5), 1.0), other],
        &[run("new", kid(1), &v(10, 5), 1.0)],
        &CompareOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("baseline")
            && e.contains("/base/records/kidalpha0.3-s1.json")
            && e.contains("/base/cells/b/records/kid.json"),
        "{e}"
    );
    // The same record twice (a cached teacher copied into two cells) counts once.
    let mut copy = run("base", teacher(), &v(10, 5), 1.0);
    copy.path = PathBuf::from("/base/cells/b/records/teacher.json");
    let c = cmp(
        &[run("base", teacher(), &v(10, 5), 1.0), copy],
        &[run("new", teacher(), &v(10, 5), 1.0)],
    );
    assert!(c.passed());
}

#[test]
fn bad_input_gets_clear_errors() {
    let one = [run("base", kid(1), &v(10, 5), 1.0)];
    let e = compare(&[], &one, &CompareOptions::default()).unwrap_err();
    assert_eq!(e.to_string(), "baseline: no records to compare");
    let e = compare(&one, &[], &CompareOptions::default()).unwrap_err();
    assert_eq!(e.to_string(), "new: no records to compare");
    let opts = CompareOptions {
        alpha: 0.0,
        ..CompareOptions::default()
    };
    let e = compare(&one, &one, &opts).unwrap_err().to_string();
    assert!(e.contains("alpha = 0"), "{e}");
    let opts = CompareOptions {
        max_latency_growth: -0.1,
        ..CompareOptions::default()
    };
    let e = compare(&one, &one, &opts).unwrap_err().to_string();
    assert!(e.contains("max_latency_growth"), "{e}");
    let empty = [loaded("new", kid(1), vec![], 1.0)];
    let e = compare(&one, &empty, &CompareOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("/new/records/kidalpha0.3-s1.json") && e.contains("no question"),
        "{e}"
    );
}

fn write_side(dir: &Path, runs: &[Loaded]) {
    for l in runs {
        write_record(dir, &l.record, &l.verdicts).unwrap();
    }
}

#[test]
fn folders_written_and_loaded_back_compare_like_the_records() {
    let base_dir = tempfile::tempdir().unwrap();
    let new_dir = tempfile::tempdir().unwrap();
    write_side(base_dir.path(), &baseline());
    write_side(
        &new_dir.path().join("cells/c1"),
        &[
            run("new", teacher(), &v(200, 180), 0.5),
            run("new", sft(1), &v(200, 100), 1.0),
            run("new", kid(1), &v(200, 120), 1.5),
        ],
    );
    let b = load_records(&[base_dir.path().to_path_buf()]).unwrap();
    let n = load_records(&[new_dir.path().to_path_buf()]).unwrap();
    assert_eq!((b.len(), n.len()), (3, 3));
    let c = cmp(&b, &n);
    assert!(!c.passed());
    assert_eq!(c.failing.len(), 1);
    assert_eq!(c.failing[0].rule, Rule::ExDrop);
    assert_eq!(c.failing[0].cell, kid(1).without_seed());
    assert_eq!(
        row(&c, &kid(1)).latency,
        Latency::Compared {
            baseline: 1.5,
            new: 1.5,
            seeds: 1
        }
    );
    // Unchanged against itself.
    assert!(cmp(&b, &b).passed());
}

fn on(mut side: Vec<Loaded>, cpu: &str) -> Vec<Loaded> {
    let m = kidbench_results::Machine {
        cpu: cpu.into(),
        flags: vec!["avx2".into()],
        threads: 1,
        device: "cpu".into(),
        env: BTreeMap::new(),
    };
    for l in &mut side {
        if let Outcome::Scored(s) = &mut l.record.outcome {
            s.training.as_mut().unwrap().machine = Some(m.clone());
        }
    }
    side
}

#[test]
fn runs_made_on_other_machines_are_noted_and_not_failed() {
    let c = cmp(&on(baseline(), "CPU A"), &on(baseline(), "CPU B"));
    assert!(c.passed(), "{:?}", c.failures());
    let notes: Vec<&String> = c
        .notes
        .iter()
        .filter(|n| n.contains("machines differ"))
        .collect();
    assert_eq!(notes.len(), 1, "{:?}", c.notes);
    assert!(notes[0].contains("CPU A [avx2], 1 thread, cpu"));
    assert!(notes[0].contains("new on CPU B [avx2]"));
    assert!(c.to_markdown().contains("machines differ"));
}

#[test]
fn one_machine_gives_no_note_and_a_side_that_does_not_say_is_named() {
    let same = cmp(&on(baseline(), "CPU A"), &on(baseline(), "CPU A"));
    assert!(
        same.notes.iter().all(|n| !n.contains("machine")),
        "{:?}",
        same.notes
    );
    let old = cmp(&baseline(), &on(baseline(), "CPU A"));
    assert!(
        old.notes
            .iter()
            .any(|n| n.starts_with("the baseline's records do not say") && n.contains("CPU A")),
        "{:?}",
        old.notes
    );
    let neither = cmp(&baseline(), &baseline());
    assert!(neither.notes.iter().all(|n| !n.contains("machine")));
}
